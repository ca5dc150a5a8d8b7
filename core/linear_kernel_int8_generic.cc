// LinearKernel's INT8 body for any x86-64 (see core/linear_kernel_isa.h for
// the arithmetic): the integer sums in SSE2's PMADDWD on the pair layout,
// the float steps as written. Built with -ffp-contract=off so that the
// multiply and the add of the last step stay two roundings, as in the
// vector bodies.
#include <emmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/linear_kernel_isa.h"

namespace seqserve::linear_internal {
namespace {

// Rounds to the nearest integer, ties to even (the default rounding mode),
// for |v| < 2^22 (quantized values lie within 256 of 0): adding and taking
// away 1.5 * 2^23 leaves no fraction bits. std::nearbyint is a library
// call on plain x86-64.
float RoundEven(float v) {
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23
  return (v + kShift) - kShift;
}

}  // namespace

void QuantizeRowsGeneric(const float* x, size_t rows, size_t in, uint8_t* xq, size_t stride,
                         float* scales, int32_t* zeros) {
  for (size_t r = 0; r < rows; ++r, x += in, xq += stride) {
    float low = 0.0f, high = 0.0f;
    bool finite = true;
    for (size_t k = 0; k < in; ++k) {
      finite = finite && std::isfinite(x[k]);
      low = std::min(low, x[k]);
      high = std::max(high, x[k]);
    }
    const float range = high - low;
    std::memset(xq, 0, stride);
    zeros[r] = 0;
    if (!finite || !std::isfinite(range)) {
      scales[r] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    if (range == 0.0f) {  // all zero: every value is the zero point, 0
      scales[r] = 0.0f;
      continue;
    }
    const float step = range / 255.0f;
    const float zero = std::clamp(RoundEven(0.0f - low / step), 0.0f, 255.0f);
    for (size_t k = 0; k < in; ++k) {
      xq[k] = static_cast<uint8_t>(std::clamp(RoundEven(x[k] / step) + zero, 0.0f, 255.0f));
    }
    scales[r] = step;
    zeros[r] = static_cast<int32_t>(zero);
  }
}

void RunInt8Generic(const PackedInt8Linear& layer, const QuantizedRows& x, size_t rows,
                    float* y) {
  constexpr size_t kQuarter = kSlabWidth / 4;  // int32 sums in a 128-bit register
  const size_t slab_values = layer.pairs * kSlabWidth * 2;
  for (size_t r = 0; r < rows; ++r) {
    const int32_t* pairs = x.pairs + r * x.pair_stride;
    float* row = y + r * layer.out;
    for (size_t s = 0; s < layer.slab_count; ++s) {
      // PMADDWD: each lane's two int16 products summed into int32, exactly.
      __m128i acc[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(),
                        _mm_setzero_si128()};
      const int16_t* w = layer.pair_slabs + s * slab_values;
      for (size_t p = 0; p < layer.pairs; ++p) {
        const __m128i pair = _mm_set1_epi32(pairs[p]);
        const int16_t* wp = w + p * kSlabWidth * 2;
        for (int v = 0; v < 4; ++v) {
          const __m128i weights =
              _mm_load_si128(reinterpret_cast<const __m128i*>(wp + v * kQuarter * 2));
          acc[v] = _mm_add_epi32(acc[v], _mm_madd_epi16(pair, weights));
        }
      }
      alignas(16) int32_t sums[kSlabWidth];
      for (int v = 0; v < 4; ++v) {
        _mm_store_si128(reinterpret_cast<__m128i*>(sums + v * kQuarter), acc[v]);
      }
      for (size_t l = 0; l < kSlabWidth; ++l) {
        const size_t o = s * kSlabWidth + l;
        if (o >= layer.out) break;
        // Wraps as the vector bodies' lanes do; the true sum fits in int32
        // (LinearKernel bounds `in`), so the result is exact.
        const int32_t sum = static_cast<int32_t>(
            static_cast<uint32_t>(sums[l]) -
            static_cast<uint32_t>(x.zeros[r]) * static_cast<uint32_t>(layer.column_sums[o]));
        const float scale = x.scales[r] * layer.weight_scales[o];
        const float product = static_cast<float>(sum) * scale;
        const float value = product + layer.bias[o];
        // As std::max(value, 0.0f): a NaN and -0 stay.
        row[o] = layer.relu && value < 0.0f ? 0.0f : value;
      }
    }
  }
}

}  // namespace seqserve::linear_internal
