// LinearKernel's body for CPUs with AVX2 and FMA but not AVX-512 (see
// core/linear_kernel_isa.h for the arithmetic every body shares: this one
// gives the same bits as the AVX-512 body). Built with -mavx2 -mfma
// -ffp-contract=off; it includes no header that could emit code shared with
// the rest of the program, and keeps its templates in an anonymous
// namespace.
#include <immintrin.h>

#include <cstddef>

#include "core/linear_kernel_isa.h"

namespace seqserve::linear_internal {
namespace {

constexpr int kMaxRows = 6;
constexpr int kMaxSlabs = 4;
constexpr size_t kHalf = kSlabWidth / 2;  // floats in a 256-bit register

// Accumulators (two per slab and row) leave room in the 16 registers for a
// broadcast and some weights; the rest come from memory operands.
constexpr bool Fits(int rows, int slabs) { return rows * slabs * 2 <= 12; }

// kRows rows of x times kSlabs slabs; of the last slab only `last_lanes`
// columns are stored.
using TileFn = void (*)(const float* x, size_t in, const float* w, const float* bias, float* y,
                        size_t out, size_t last_lanes, bool relu);

template <int kRows, int kSlabs>
void Tile(const float* x, size_t in, const float* w, const float* bias, float* y, size_t out,
          size_t last_lanes, bool relu) {
  constexpr int kVectors = 2 * kSlabs;
  const size_t slab = in * kSlabWidth;
  __m256 acc[kRows][kVectors];
#pragma GCC unroll 16
  for (int v = 0; v < kVectors; ++v) {
    const __m256 b = _mm256_load_ps(bias + v * kHalf);
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) acc[r][v] = b;
  }
  for (size_t k = 0; k < in; ++k) {
    __m256 wk[kVectors];
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) {
      wk[v] = _mm256_load_ps(w + (v / 2) * slab + k * kSlabWidth + (v % 2) * kHalf);
    }
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const __m256 xk = _mm256_broadcast_ss(x + r * in + k);
#pragma GCC unroll 16
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm256_fmadd_ps(xk, wk[v], acc[r][v]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i low = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(last_lanes)), lane);
  const __m256i high =
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(last_lanes) - 8), lane);
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
    float* row = y + r * out;
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) {
      // acc < 0 ? 0 : acc, as std::max(acc, 0.0f): a NaN and -0 stay.
      const __m256 value =
          relu ? _mm256_blendv_ps(acc[r][v], zero, _mm256_cmp_ps(acc[r][v], zero, _CMP_LT_OQ))
               : acc[r][v];
      if (v + 2 < kVectors) {
        _mm256_storeu_ps(row + v * kHalf, value);
      } else {
        _mm256_maskstore_ps(row + v * kHalf, v % 2 == 0 ? low : high, value);
      }
    }
  }
}

template <int kRows, int kSlabs>
constexpr TileFn TileOrNull() {
  if constexpr (Fits(kRows, kSlabs)) {
    return &Tile<kRows, kSlabs>;
  } else {
    return nullptr;
  }
}

#define SEQSERVE_TILE_ROW(R) \
  { TileOrNull<R, 1>(), TileOrNull<R, 2>(), TileOrNull<R, 3>(), TileOrNull<R, 4>() }
constexpr TileFn kTiles[kMaxRows][kMaxSlabs] = {SEQSERVE_TILE_ROW(1), SEQSERVE_TILE_ROW(2),
                                                SEQSERVE_TILE_ROW(3), SEQSERVE_TILE_ROW(4),
                                                SEQSERVE_TILE_ROW(5), SEQSERVE_TILE_ROW(6)};
#undef SEQSERVE_TILE_ROW

struct Blocking {
  int rows;
  int slabs;
};

constexpr Blocking kByRows[] = {{1, 4}, {2, 2}, {3, 2}, {4, 1}, {5, 1}, {6, 1}};
constexpr size_t kMostRows = sizeof(kByRows) / sizeof(kByRows[0]);

// A tile at the edge has fewer rows or slabs, so it fits too.
constexpr bool EveryBlockingFits() {
  for (const Blocking& blocking : kByRows) {
    if (blocking.rows > kMaxRows || blocking.slabs > kMaxSlabs ||
        !Fits(blocking.rows, blocking.slabs)) {
      return false;
    }
  }
  return true;
}
static_assert(EveryBlockingFits(), "a blocking has no tile");

// Rows and slabs per tile for a call of `rows` rows (see the AVX-512 body).
Blocking ChooseBlocking(size_t rows) {
  return kByRows[(rows < kMostRows ? rows : kMostRows) - 1];
}

inline size_t Min(size_t a, size_t b) { return a < b ? a : b; }

}  // namespace

void RunAvx2Fma(const PackedLinear& layer, const float* x, size_t rows, float* y) {
  if (rows == 0) return;
  const Blocking blocking = ChooseBlocking(rows);
  const size_t in = layer.in, out = layer.out;
  const size_t slab = in * kSlabWidth;
  size_t chunk = (size_t{64} << 10) / (in > 0 ? in : 1);
  chunk = chunk < static_cast<size_t>(blocking.rows)
              ? blocking.rows
              : chunk / blocking.rows * blocking.rows;
  for (size_t first = 0; first < rows; first += chunk) {
    const size_t end = Min(rows, first + chunk);
    for (size_t s = 0; s < layer.slab_count; s += blocking.slabs) {
      const size_t slabs = Min(blocking.slabs, layer.slab_count - s);
      const size_t column = s * kSlabWidth;
      const size_t last_lanes = Min(kSlabWidth, out - (column + (slabs - 1) * kSlabWidth));
      for (size_t r = first; r < end; r += blocking.rows) {
        const size_t tile_rows = Min(blocking.rows, end - r);
        kTiles[tile_rows - 1][slabs - 1](x + r * in, in, layer.slabs + s * slab,
                                         layer.bias + column, y + r * out + column, out,
                                         last_lanes, layer.relu);
      }
    }
  }
}

}  // namespace seqserve::linear_internal
