// The Linear kernel core/ had before its batch-invariant one, kept here only
// so that bench/forward_bench can time both in the same run (BENCHMARKS.md,
// "Batch-invariant Linear kernels"). A copy of core/linear_kernel.{h,cc} as
// they were, renamed; nothing outside bench/ uses it. Its answers for a row
// depend on the rows beside it: oneDNN's sgemm and its packed matmul sum in
// different orders, and which one runs depends on the rows of the call.
#pragma once

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/layer.h"

namespace seqserve::bench {

// Immutable once created; Run() is safe from many threads at once (each
// thread keeps its own oneDNN stream and scratchpad).
//
// Both paths are oneDNN's, chosen from bench/gemm_libs_bench and
// bench/compare_engines.py (BENCHMARKS.md):
//   a small layer, or few   oneDNN's sgemm on torch's layout: a matmul
//   rows of a mid-sized one primitive call costs about a microsecond more
//                           than such a product takes
//   more work per call      oneDNN matmul on weights reordered once to the
//   (784 x 1024: any rows)  primitive's own blocked layout, with bias and a
//                           following ReLU applied in it
class OneDnnLinearKernel {
 public:
  // Weight matrices with at least this many values are packed at load...
  static constexpr size_t kPackedMinWeights = 64 * 64;
  // ...and used for calls of at least this many rows x weights (64 x 64
  // at 32 rows, 784 x 1024 from one row).
  static constexpr size_t kPackedMinWork = size_t{1} << 17;

  // `layer` is a checked Linear and must outlive the kernel. With
  // `fuse_relu`, Run() also applies the ReLU that follows the layer.
  // INTERNAL when oneDNN cannot build the primitive.
  static absl::StatusOr<std::unique_ptr<OneDnnLinearKernel>> Create(const Layer& layer,
                                                              bool fuse_relu);
  ~OneDnnLinearKernel();

  OneDnnLinearKernel(const OneDnnLinearKernel&) = delete;
  OneDnnLinearKernel& operator=(const OneDnnLinearKernel&) = delete;

  // y = x W^T + b (then ReLU when fused) for `rows` rows, on the calling
  // thread alone. x and y must not overlap. INTERNAL if oneDNN fails to run.
  absl::Status Run(const float* x, size_t rows, float* y) const;

  // Whether the weights were packed for oneDNN.
  bool packed() const { return packed_ != nullptr; }
  // Whether a call of `rows` rows runs on the packed weights.
  bool RunsPacked(size_t rows) const;

 private:
  struct Packed;  // the oneDNN primitive and the weights in its layout

  OneDnnLinearKernel(const Layer& layer, bool fuse_relu, std::unique_ptr<Packed> packed);
  absl::Status RunUnpacked(const float* x, size_t rows, float* y) const;

  const Layer& layer_;
  const bool fuse_relu_;
  std::unique_ptr<Packed> packed_;
};

}  // namespace seqserve::bench
