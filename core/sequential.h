// The Sequential model: a stack of layers mapping feature rows to logits,
// with a default head kept apart so callers can ask for any head.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/head.h"
#include "core/layer.h"
#include "core/linear_kernel.h"
#include "core/precision.h"

namespace seqserve {

// Immutable once created. Forward() is const and safe to call from many
// threads at once: per-call scratch lives in thread-local buffers that are
// reused, so a warm thread allocates nothing.
class Sequential {
 public:
  // Widest row any layer may take or give: wider is not a classifier's
  // features, and it keeps every width inside the layers' int arguments.
  static constexpr int kMaxWidth = 1 << 24;
  // A forward pass runs in chunks of rows whose hidden activations fit in
  // this many bytes per scratch buffer, so a wide model's scratch stays
  // bounded however many rows a call brings.
  static constexpr size_t kScratchBudgetBytes = size_t{16} << 20;

  // Validates and builds a model, packing each Linear's weights for its
  // kernel (core/linear_kernel.h). Fails with INVALID_ARGUMENT when widths
  // do not chain, weight counts do not match, a value is NaN/Inf, or there
  // is no Linear layer; RESOURCE_EXHAUSTED when the packed weights cannot
  // be allocated.
  // `precision` chooses the Linear layers' arithmetic (core/precision.h);
  // every other layer runs in float32 either way.
  static absl::StatusOr<std::unique_ptr<Sequential>> Create(
      int input_width, std::vector<Layer> layers, Head default_head,
      Precision precision = Precision::kFp32);

  // The same layers, head and tensor names in another precision (the
  // layers keep their float32 weights, so any precision can be made from
  // any other; layers stored in int8 keep their int8 weights for INT8).
  absl::StatusOr<std::unique_ptr<Sequential>> WithPrecision(Precision precision) const;

  Sequential(const Sequential&) = delete;
  Sequential& operator=(const Sequential&) = delete;

  // Runs the body on `rows` rows of `input_width()` features (row-major) and
  // writes rows x `output_width()` logits. INVALID_ARGUMENT on size mismatch,
  // RESOURCE_EXHAUSTED when scratch cannot be allocated. A row's logits have
  // the same bits whatever the other rows of the call, their number, or the
  // row's place among them (core/linear_kernel.h; every other layer works
  // row by row). A pass runs in chunks of rows; `stop`, when given, is
  // asked before each chunk after the first, and a true answer ends the
  // pass with CANCELLED (the logits then incomplete): how a long pass
  // yields to a shutdown.
  absl::Status Forward(absl::Span<const float> features, size_t rows, absl::Span<float> logits,
                       const std::function<bool()>& stop = nullptr) const;

  // Forward() followed by ApplyHead(head).
  absl::Status Predict(absl::Span<const float> features, size_t rows,
                       Head head, absl::Span<float> scores) const;

  // Convenience for tools and tests: allocates the result.
  absl::StatusOr<std::vector<float>> Predict(absl::Span<const float> features,
                                             size_t rows, Head head) const;

  // The backward pass (core/gradient.cc). For each row r, the score of class
  // targets[r] under `head` (ClassScore of the head's scores: the same bits
  // Predict() gives) into scores[r], and its gradient with respect to the
  // row's features into gradients (rows x input_width()). The forward part
  // runs the same kernels as Forward(); the backward part runs in double, so
  // the gradient is as close to an exact one as the float forward allows.
  // INVALID_ARGUMENT on size mismatch, a target outside ClassCount(), or a
  // softmax or log-softmax head on one output; RESOURCE_EXHAUSTED when the
  // activations cannot be kept; FAILED_PRECONDITION for a model not in
  // float32 (its answers are not the weights' float arithmetic); `stop` as
  // for Forward().
  absl::Status ScoreGradients(absl::Span<const float> features, size_t rows, Head head,
                              absl::Span<const int> targets, absl::Span<float> scores,
                              absl::Span<double> gradients,
                              const std::function<bool()>& stop = nullptr) const;

  // The input and output tensors' names: the graph's for ONNX, "input" and
  // "output" for the text format. Protocols that name tensors (the Open
  // Inference Protocol) show them; loaders set them before sharing the model.
  struct TensorNames {
    std::string input = "input";
    std::string output = "output";
  };
  const TensorNames& tensor_names() const { return tensor_names_; }
  void set_tensor_names(TensorNames names) { tensor_names_ = std::move(names); }

  int input_width() const { return input_width_; }
  int output_width() const { return output_width_; }
  Head default_head() const { return default_head_; }
  Precision precision() const { return precision_; }
  // The precision the model's file stores: INT8 when a Linear layer holds
  // int8 weights (an ONNX Runtime quantize_dynamic file), else FP32.
  Precision stored_precision() const;
  const std::vector<Layer>& layers() const { return layers_; }
  size_t ParameterCount() const { return parameter_count_; }
  // The widest row anywhere in the model (input, hidden or output).
  size_t widest() const { return widest_; }

  // Scratch bytes the calling thread holds for forward passes (for tests:
  // what a pass leaves behind once it is over): two buffers of activations
  // within the budget, and INT8 kernels' quantized rows (3 bytes per input
  // value and 8 per row of a chunk).
  static size_t ThreadScratchBytes();

 private:
  Sequential(int input_width, std::vector<Layer> layers, Head default_head,
             Precision precision);
  // One kernel per Linear; a ReLU right after a Linear (folded layers
  // aside) runs inside that Linear's kernel.
  absl::Status BuildKernels();
  // Forward() over rows that fit the scratch budget (or a single row).
  absl::Status ForwardChunk(const float* features, size_t rows, float* logits,
                    float* scratch0, float* scratch1) const;
  // ScoreGradients() over rows whose activations fit the scratch budget.
  void ScoreGradientsChunk(const float* features, size_t rows, Head head, const int* targets,
                           float* scores, double* gradients, std::vector<float>& activations,
                           std::vector<double>& upstream) const;

  int input_width_;
  int output_width_;
  std::vector<Layer> layers_;
  // Indexed like layers_: the kernel of each Linear (null elsewhere), and
  // whether a layer already ran inside the kernel before it.
  std::vector<std::unique_ptr<LinearKernel>> kernels_;
  std::vector<bool> fused_;
  Head default_head_;
  Precision precision_;
  size_t widest_ = 0;  // widest row anywhere, to size scratch once per call
  size_t last_linear_ = 0;  // this layer writes straight into the output
  size_t parameter_count_ = 0;
  TensorNames tensor_names_;
};

}  // namespace seqserve
