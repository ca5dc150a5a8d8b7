// How one Linear layer runs: the kernel chosen at load for its shape, with
// its weights packed once into the layout that kernel reads.
#pragma once

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/layer.h"

namespace seqserve {

// Immutable once created; Run() is safe from many threads at once (each
// thread keeps its own oneDNN stream and scratchpad).
//
// The choice, from bench/gemm_libs_bench (BENCHMARKS.md):
//   one row                      OpenBLAS sgemv on torch's layout
//   more rows, small weights     OpenBLAS sgemm (a oneDNN call costs a few
//                                microseconds more than these layers take)
//   more rows, larger weights    oneDNN matmul on weights reordered once to
//                                the primitive's own blocked layout, with
//                                bias and a following ReLU applied in it
class LinearKernel {
 public:
  // Weight matrices with at least this many values take the packed path.
  static constexpr size_t kPackedMinWeights = 64 * 64;

  // `layer` is a checked Linear and must outlive the kernel. With
  // `fuse_relu`, Run() also applies the ReLU that follows the layer.
  // INTERNAL when oneDNN cannot build the primitive.
  static absl::StatusOr<std::unique_ptr<LinearKernel>> Create(const Layer& layer,
                                                              bool fuse_relu);
  ~LinearKernel();

  LinearKernel(const LinearKernel&) = delete;
  LinearKernel& operator=(const LinearKernel&) = delete;

  // y = x W^T + b (then ReLU when fused) for `rows` rows. x and y must not
  // overlap. INTERNAL if oneDNN fails to run.
  absl::Status Run(const float* x, size_t rows, float* y) const;

  // Whether many rows go through the packed oneDNN primitive.
  bool packed() const { return packed_ != nullptr; }

 private:
  struct Packed;  // the oneDNN primitive and the weights in its layout

  LinearKernel(const Layer& layer, bool fuse_relu, std::unique_ptr<Packed> packed);
  void RunBlas(const float* x, size_t rows, float* y) const;

  const Layer& layer_;
  const bool fuse_relu_;
  std::unique_ptr<Packed> packed_;
};

}  // namespace seqserve
