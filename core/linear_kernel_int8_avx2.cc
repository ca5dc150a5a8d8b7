// LinearKernel's INT8 body for CPUs with AVX2 (see core/linear_kernel_isa.h
// for the arithmetic): VPMADDWD on the pair layout multiplies 16 int16
// pairs and sums each pair into int32, exactly, so its sums are the other
// bodies'. Built with -mavx2 -ffp-contract=off; like the other bodies it
// includes no header that could emit code shared with the rest of the
// program.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "core/linear_kernel_isa.h"

namespace seqserve::linear_internal {
namespace {

constexpr int kMaxRows = 4;
constexpr size_t kHalf = kSlabWidth / 2;  // int32 sums in a 256-bit register

using TileFn = void (*)(const PackedInt8Linear& layer, const QuantizedRows& x, size_t row,
                        size_t slab, float* y);

// Rows row .. row + kRows - 1 of one slab: two registers of sums per row,
// two of weights and a broadcast fit the 16 registers.
template <int kRows>
void Tile(const PackedInt8Linear& layer, const QuantizedRows& x, size_t row, size_t slab,
          float* y) {
  const int16_t* w = layer.pair_slabs + slab * layer.pairs * kSlabWidth * 2;
  __m256i acc[kRows][2];
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (size_t p = 0; p < layer.pairs; ++p) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + p * kSlabWidth * 2));
    const __m256i w1 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(w + p * kSlabWidth * 2 + kSlabWidth));
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m256i pair = _mm256_set1_epi32(x.pairs[(row + r) * x.pair_stride + p]);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(pair, w0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(pair, w1));
    }
  }
  const size_t column = slab * kSlabWidth;
  const size_t lanes = layer.out - column < kSlabWidth ? layer.out - column : kSlabWidth;
  const __m256 zero = _mm256_setzero_ps();
  for (int r = 0; r < kRows; ++r) {
    const __m256i zero_point = _mm256_set1_epi32(x.zeros[row + r]);
    const __m256 x_scale = _mm256_set1_ps(x.scales[row + r]);
    alignas(32) float values[kSlabWidth];
    for (int h = 0; h < 2; ++h) {
      const size_t at = column + h * kHalf;
      const __m256i sum = _mm256_sub_epi32(
          acc[r][h], _mm256_mullo_epi32(zero_point, _mm256_load_si256(reinterpret_cast<const __m256i*>(
                                                        layer.column_sums + at))));
      const __m256 scale = _mm256_mul_ps(x_scale, _mm256_load_ps(layer.weight_scales + at));
      const __m256 value = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum), scale),
                                         _mm256_load_ps(layer.bias + at));
      // value < 0 ? 0 : value, as std::max(value, 0.0f): a NaN and -0 stay.
      const __m256 result =
          layer.relu ? _mm256_blendv_ps(value, zero, _mm256_cmp_ps(value, zero, _CMP_LT_OQ))
                     : value;
      _mm256_store_ps(values + h * kHalf, result);
    }
    float* out_row = y + (row + r) * layer.out + column;
    for (size_t l = 0; l < lanes; ++l) out_row[l] = values[l];
  }
}

constexpr TileFn kTiles[kMaxRows] = {&Tile<1>, &Tile<2>, &Tile<3>, &Tile<4>};

}  // namespace

void RunInt8Avx2(const PackedInt8Linear& layer, const QuantizedRows& x, size_t rows, float* y) {
  for (size_t s = 0; s < layer.slab_count; ++s) {
    for (size_t r = 0; r < rows; r += kMaxRows) {
      const size_t tile_rows = rows - r < kMaxRows ? rows - r : kMaxRows;
      kTiles[tile_rows - 1](layer, x, r, s, y);
    }
  }
}

}  // namespace seqserve::linear_internal
