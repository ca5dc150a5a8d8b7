// LinearKernel's body for x86-64 without FMA, and the reference the others
// are checked against in spirit (see core/linear_kernel_isa.h): per output,
// the bias, then each product added in order of k, rounded twice (product,
// then sum). Built with -ffp-contract=off so that no compiler fuses them
// where FMA exists; the compiler may vectorise across the 16 lanes of a
// slab, which changes nothing per output.
#include <cstddef>

#include "core/linear_kernel_isa.h"

namespace seqserve::linear_internal {

void RunGeneric(const PackedLinear& layer, const float* x, size_t rows, float* y) {
  const size_t in = layer.in, out = layer.out;
  for (size_t r = 0; r < rows; ++r) {
    const float* row = x + r * in;
    float* result = y + r * out;
    for (size_t s = 0; s < layer.slab_count; ++s) {
      const float* w = layer.slabs + s * in * kSlabWidth;
      float acc[kSlabWidth];
      for (size_t l = 0; l < kSlabWidth; ++l) acc[l] = layer.bias[s * kSlabWidth + l];
      for (size_t k = 0; k < in; ++k) {
        const float xk = row[k];
        for (size_t l = 0; l < kSlabWidth; ++l) acc[l] = acc[l] + xk * w[k * kSlabWidth + l];
      }
      const size_t column = s * kSlabWidth;
      const size_t lanes = out - column < kSlabWidth ? out - column : kSlabWidth;
      for (size_t l = 0; l < lanes; ++l) {
        // As std::max(acc, 0.0f): a NaN stays.
        result[column + l] = layer.relu && acc[l] < 0.0f ? 0.0f : acc[l];
      }
    }
  }
}

}  // namespace seqserve::linear_internal
