// LinearKernel's body for x86-64 without FMA (see core/linear_kernel_isa.h):
// per output, the bias, then each product added in order of k, rounded
// twice (product, then sum), in SSE2, which every x86-64 CPU has. Built with
// -ffp-contract=off so that no compiler fuses the two where FMA exists.
#include <emmintrin.h>

#include <cstddef>

#include "core/linear_kernel_isa.h"

namespace seqserve::linear_internal {
namespace {

constexpr size_t kQuarter = kSlabWidth / 4;  // floats in a 128-bit register

// kRows rows (1 or 2) of one slab; of its 16 columns only `lanes` stored.
template <int kRows>
void Tile(const float* x, size_t in, const float* w, const float* bias, float* y, size_t out,
          size_t lanes, bool relu) {
  __m128 acc[kRows][4];
  for (int v = 0; v < 4; ++v) {
    const __m128 b = _mm_load_ps(bias + v * kQuarter);
    for (int r = 0; r < kRows; ++r) acc[r][v] = b;
  }
  for (size_t k = 0; k < in; ++k) {
    __m128 wk[4];
    for (int v = 0; v < 4; ++v) wk[v] = _mm_load_ps(w + k * kSlabWidth + v * kQuarter);
    for (int r = 0; r < kRows; ++r) {
      const __m128 xk = _mm_set1_ps(x[r * in + k]);
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm_add_ps(acc[r][v], _mm_mul_ps(xk, wk[v]));
    }
  }
  for (int r = 0; r < kRows; ++r) {
    alignas(16) float values[kSlabWidth];
    for (int v = 0; v < 4; ++v) _mm_store_ps(values + v * kQuarter, acc[r][v]);
    float* row = y + r * out;
    for (size_t l = 0; l < lanes; ++l) {
      // As std::max(acc, 0.0f): a NaN and -0 stay.
      row[l] = relu && values[l] < 0.0f ? 0.0f : values[l];
    }
  }
}

}  // namespace

void RunGeneric(const PackedLinear& layer, const float* x, size_t rows, float* y) {
  const size_t in = layer.in, out = layer.out;
  for (size_t s = 0; s < layer.slab_count; ++s) {
    const float* w = layer.slabs + s * in * kSlabWidth;
    const float* bias = layer.bias + s * kSlabWidth;
    const size_t column = s * kSlabWidth;
    const size_t lanes = out - column < kSlabWidth ? out - column : kSlabWidth;
    size_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      Tile<2>(x + r * in, in, w, bias, y + r * out + column, out, lanes, layer.relu);
    }
    if (r < rows) Tile<1>(x + r * in, in, w, bias, y + r * out + column, out, lanes, layer.relu);
  }
}

}  // namespace seqserve::linear_internal
