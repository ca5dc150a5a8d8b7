// LinearKernel's INT8 body for CPUs with AVX-512F and AVX512_VNNI (see
// core/linear_kernel_isa.h for the arithmetic). One VPDPBUSD multiplies 64
// uint8 inputs by 64 int8 weights and adds them, four per lane, into 16
// int32 sums: exact, so any blocking gives the generic body's sums. Built
// with -mavx512f -mavx512vnni -ffp-contract=off; like the other bodies it
// calls no inline function of a header (<cmath>'s among them: compiler
// builtins instead), so it emits no code the rest of the program shares.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/linear_kernel_isa.h"

namespace seqserve::linear_internal {
namespace {

constexpr int kMaxRows = 6;
constexpr int kMaxVectors = 4;

// acc += the four products of each lane's bytes, u8 from `x`, s8 from `w`:
// VPDPBUSD. Written as an instruction whose accumulator is its output,
// because GCC 12 copies the accumulator for the intrinsic at every use.
inline __m512i DotAdd(__m512i acc, __m512i x, __m512i w) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
  return acc;
}

using TileFn = void (*)(const PackedInt8Linear& layer, const QuantizedRows& x, size_t row,
                        size_t slab, float* y, __mmask16 last);

// Rows row .. row + kRows - 1 times slabs slab .. slab + kVectors - 1.
template <int kRows, int kVectors>
void Tile(const PackedInt8Linear& layer, const QuantizedRows& x, size_t row, size_t slab,
          float* y, __mmask16 last) {
  const size_t slab_bytes = layer.quads * kSlabWidth * kQuadBytes;
  const int8_t* w = layer.slabs + slab * slab_bytes;
  const uint8_t* xq = x.xq + row * x.stride;
  __m512i acc[kRows][kVectors];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_setzero_si512();
  }
  for (size_t q = 0; q < layer.quads; ++q) {
    __m512i wq[kVectors];
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      wq[v] = _mm512_load_si512(w + v * slab_bytes + q * kSlabWidth * kQuadBytes);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      int32_t quad;
      std::memcpy(&quad, xq + r * x.stride + q * kQuadBytes, sizeof(quad));
      const __m512i xb = _mm512_set1_epi32(quad);
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) acc[r][v] = DotAdd(acc[r][v], xb, wq[v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    const __m512i zero_point = _mm512_set1_epi32(x.zeros[row + r]);
    const __m512 x_scale = _mm512_set1_ps(x.scales[row + r]);
    float* out_row = y + (row + r) * layer.out + slab * kSlabWidth;
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      const size_t column = (slab + v) * kSlabWidth;
      const __m512i sum = _mm512_sub_epi32(
          acc[r][v],
          _mm512_mullo_epi32(zero_point, _mm512_load_si512(layer.column_sums + column)));
      const __m512 scale = _mm512_mul_ps(x_scale, _mm512_load_ps(layer.weight_scales + column));
      // The masked form: GCC 12 warns of the plain one's undefined source.
      const __m512 sum_float = _mm512_maskz_cvtepi32_ps(static_cast<__mmask16>(0xFFFF), sum);
      const __m512 value = _mm512_add_ps(_mm512_mul_ps(sum_float, scale),
                                         _mm512_load_ps(layer.bias + column));
      // value < 0 ? 0 : value, as std::max(value, 0.0f): a NaN and -0 stay.
      const __m512 result =
          layer.relu
              ? _mm512_mask_mov_ps(value, _mm512_cmp_ps_mask(value, zero, _CMP_LT_OQ), zero)
              : value;
      if (v + 1 < kVectors) {
        _mm512_storeu_ps(out_row + v * kSlabWidth, result);
      } else {
        _mm512_mask_storeu_ps(out_row + v * kSlabWidth, last, result);
      }
    }
  }
}

#define SEQSERVE_INT8_TILE_ROW(R) \
  { &Tile<R, 1>, &Tile<R, 2>, &Tile<R, 3>, &Tile<R, 4> }
// [rows - 1][vectors - 1]: every one fits the 32 registers (6 x 4 sums, 4
// weight vectors, a broadcast).
constexpr TileFn kTiles[kMaxRows][kMaxVectors] = {
    SEQSERVE_INT8_TILE_ROW(1), SEQSERVE_INT8_TILE_ROW(2), SEQSERVE_INT8_TILE_ROW(3),
    SEQSERVE_INT8_TILE_ROW(4), SEQSERVE_INT8_TILE_ROW(5), SEQSERVE_INT8_TILE_ROW(6)};
#undef SEQSERVE_INT8_TILE_ROW

inline size_t Min(size_t a, size_t b) { return a < b ? a : b; }

}  // namespace

// QuantizeRowsGeneric's bytes, 16 inputs at a time: the same division,
// the same rounding to nearest even (VRNDSCALEPS), the same clamps.
void QuantizeRowsAvx512(const float* x, size_t rows, size_t in, uint8_t* xq, size_t stride,
                        float* scales, int32_t* zeros) {
  const size_t whole = in / kSlabWidth * kSlabWidth;
  const __mmask16 tail = static_cast<__mmask16>((1u << (in - whole)) - 1);
  for (size_t r = 0; r < rows; ++r, x += in, xq += stride) {
    // The masked forms throughout: GCC 12 warns of the plain ones'
    // undefined sources.
    constexpr __mmask16 kAll = 0xFFFF;
    __m512 low = _mm512_setzero_ps(), high = _mm512_setzero_ps();
    // x - x is 0 for a finite x and NaN otherwise.
    __mmask16 nonfinite = 0;
    for (size_t k = 0; k < in; k += kSlabWidth) {
      const __m512 v = k < whole ? _mm512_loadu_ps(x + k) : _mm512_maskz_loadu_ps(tail, x + k);
      low = _mm512_maskz_min_ps(kAll, low, v);
      high = _mm512_maskz_max_ps(kAll, high, v);
      const __m512 difference = _mm512_sub_ps(v, v);
      nonfinite |= _mm512_cmp_ps_mask(difference, difference, _CMP_UNORD_Q);
    }
    alignas(64) float lows[kSlabWidth], highs[kSlabWidth];
    _mm512_store_ps(lows, low);
    _mm512_store_ps(highs, high);
    float row_low = 0.0f, row_high = 0.0f;
    for (size_t l = 0; l < kSlabWidth; ++l) {
      row_low = lows[l] < row_low ? lows[l] : row_low;
      row_high = highs[l] > row_high ? highs[l] : row_high;
    }
    const float range = row_high - row_low;
    std::memset(xq, 0, stride);
    zeros[r] = 0;
    if (nonfinite != 0 || !__builtin_isfinite(range)) {
      scales[r] = __builtin_nanf("");
      continue;
    }
    if (range == 0.0f) {
      scales[r] = 0.0f;
      continue;
    }
    const float step = range / 255.0f;
    float zero = __builtin_nearbyintf(0.0f - row_low / step);
    zero = zero < 0.0f ? 0.0f : (zero > 255.0f ? 255.0f : zero);
    const __m512 step_v = _mm512_set1_ps(step), zero_v = _mm512_set1_ps(zero);
    const __m512 floor_v = _mm512_setzero_ps(), ceiling_v = _mm512_set1_ps(255.0f);
    for (size_t k = 0; k < in; k += kSlabWidth) {
      const __m512 v = k < whole ? _mm512_loadu_ps(x + k) : _mm512_maskz_loadu_ps(tail, x + k);
      __m512 q = _mm512_maskz_roundscale_ps(kAll, _mm512_div_ps(v, step_v),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, _mm512_add_ps(q, zero_v), floor_v),
                              ceiling_v);
      const __m512i as_int = _mm512_maskz_cvttps_epi32(kAll, q);
      _mm512_mask_cvtusepi32_storeu_epi8(xq + k, k < whole ? static_cast<__mmask16>(0xFFFF) : tail,
                                         as_int);
    }
    scales[r] = step;
    zeros[r] = static_cast<int32_t>(zero);
  }
}

void RunInt8Vnni(const PackedInt8Linear& layer, const QuantizedRows& x, size_t rows, float* y) {
  for (size_t s = 0; s < layer.slab_count; s += kMaxVectors) {
    const size_t vectors = Min(kMaxVectors, layer.slab_count - s);
    const size_t column = (s + vectors - 1) * kSlabWidth;
    const size_t last_lanes = Min(kSlabWidth, layer.out - column);
    const __mmask16 last = static_cast<__mmask16>((1u << last_lanes) - 1);
    for (size_t r = 0; r < rows; r += kMaxRows) {
      const size_t tile_rows = Min(kMaxRows, rows - r);
      kTiles[tile_rows - 1][vectors - 1](layer, x, r, s, y, last);
    }
  }
}

}  // namespace seqserve::linear_internal
