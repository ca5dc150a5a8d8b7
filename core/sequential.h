// The Sequential model: a stack of layers mapping feature rows to logits,
// with a default head kept apart so callers can ask for any head.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/head.h"
#include "core/layer.h"

namespace seqserve {

// Immutable once created. Forward() is const and safe to call from many
// threads at once: per-call scratch lives in thread-local buffers that are
// reused, so a warm thread allocates nothing.
class Sequential {
 public:
  // Validates and builds a model. Fails with INVALID_ARGUMENT when widths do
  // not chain, weight counts do not match, a value is NaN/Inf, or there is
  // no Linear layer.
  static absl::StatusOr<std::unique_ptr<Sequential>> Create(
      int input_width, std::vector<Layer> layers, Head default_head);

  Sequential(const Sequential&) = delete;
  Sequential& operator=(const Sequential&) = delete;

  // Runs the body on `rows` rows of `input_width()` features (row-major) and
  // writes rows x `output_width()` logits. INVALID_ARGUMENT on size mismatch.
  absl::Status Forward(absl::Span<const float> features, size_t rows,
                       absl::Span<float> logits) const;

  // Forward() followed by ApplyHead(head).
  absl::Status Predict(absl::Span<const float> features, size_t rows,
                       Head head, absl::Span<float> scores) const;

  // Convenience for tools and tests: allocates the result.
  absl::StatusOr<std::vector<float>> Predict(absl::Span<const float> features,
                                             size_t rows, Head head) const;

  int input_width() const { return input_width_; }
  int output_width() const { return output_width_; }
  Head default_head() const { return default_head_; }
  const std::vector<Layer>& layers() const { return layers_; }
  size_t ParameterCount() const { return parameter_count_; }

 private:
  Sequential(int input_width, std::vector<Layer> layers, Head default_head);

  int input_width_;
  int output_width_;
  std::vector<Layer> layers_;
  Head default_head_;
  size_t widest_ = 0;  // widest row anywhere, to size scratch once per call
  size_t last_linear_ = 0;  // this layer writes straight into the output
  size_t parameter_count_ = 0;
};

}  // namespace seqserve
