// LinearKernel's body for CPUs with AVX-512F (see core/linear_kernel_isa.h
// for the arithmetic every body shares). Built with -mavx512f -mfma
// -ffp-contract=off; like the other bodies it includes no header that could
// emit code shared with the rest of the program, and keeps its templates in
// an anonymous namespace.
#include <immintrin.h>

#include <cstddef>

#include "core/linear_kernel_isa.h"

namespace seqserve::linear_internal {
namespace {

constexpr int kMaxRows = 8;
constexpr int kMaxVectors = 8;
// Inputs per range of k when tiles share weights (see RunAvx512).
constexpr size_t kBlockInputs = 128;
// Floats of x per chunk of rows (see RunAvx512).
constexpr size_t kChunkFloats = size_t{128} << 10;

// Accumulators, weight vectors and one broadcast fit the 32 registers.
constexpr bool Fits(int rows, int vectors) { return rows * vectors + vectors + 1 <= 32; }

// kRows rows of x times kVectors slabs, over inputs k0 .. k0 + count - 1
// (x and w point at k0 already): y[r][16v + l] for l < 16, the last slab's
// lanes outside `last` neither loaded nor stored. `w` is the first slab, the
// others follow every `slab` floats. The sums start from the bias when
// `resume` is false, else from what the previous range of k left in y
// (stored and reloaded exactly, so splitting k into ranges changes no
// rounding); `relu` is applied by the call that ends the sums.
using TileFn = void (*)(const float* x, size_t ldx, const float* w, size_t slab,
                        const float* bias, float* y, size_t out, size_t count, __mmask16 last,
                        bool resume, bool relu);

template <int kRows, int kVectors>
void Tile(const float* x, size_t ldx, const float* w, size_t slab, const float* bias, float* y,
          size_t out, size_t count, __mmask16 last, bool resume, bool relu) {
  __m512 acc[kRows][kVectors];
  if (resume) {
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 16
      for (int v = 0; v < kVectors; ++v) {
        const float* from = y + r * out + v * kSlabWidth;
        acc[r][v] = v + 1 < kVectors ? _mm512_loadu_ps(from) : _mm512_maskz_loadu_ps(last, from);
      }
    }
  } else {
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) {
      const __m512 b = _mm512_load_ps(bias + v * kSlabWidth);
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) acc[r][v] = b;
    }
  }
  for (size_t k = 0; k < count; ++k) {
    __m512 wk[kVectors];
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) wk[v] = _mm512_load_ps(w + v * slab + k * kSlabWidth);
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const __m512 xk = _mm512_set1_ps(x[r * ldx + k]);
#pragma GCC unroll 16
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_fmadd_ps(xk, wk[v], acc[r][v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
    float* row = y + r * out;
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) {
      // acc < 0 ? 0 : acc, as std::max(acc, 0.0f): a NaN and -0 stay.
      const __m512 value =
          relu ? _mm512_mask_mov_ps(acc[r][v], _mm512_cmp_ps_mask(acc[r][v], zero, _CMP_LT_OQ),
                                    zero)
               : acc[r][v];
      if (v + 1 < kVectors) {
        _mm512_storeu_ps(row + v * kSlabWidth, value);
      } else {
        _mm512_mask_storeu_ps(row + v * kSlabWidth, last, value);
      }
    }
  }
}

template <int kRows, int kVectors>
constexpr TileFn TileOrNull() {
  if constexpr (Fits(kRows, kVectors)) {
    return &Tile<kRows, kVectors>;
  } else {
    return nullptr;
  }
}

#define SEQSERVE_TILE_ROW(R)                                                      \
  {                                                                               \
    TileOrNull<R, 1>(), TileOrNull<R, 2>(), TileOrNull<R, 3>(), TileOrNull<R, 4>(), \
        TileOrNull<R, 5>(), TileOrNull<R, 6>(), TileOrNull<R, 7>(), TileOrNull<R, 8>() \
  }
// [rows - 1][vectors - 1]; null where the accumulators would not fit.
constexpr TileFn kTiles[kMaxRows][kMaxVectors] = {
    SEQSERVE_TILE_ROW(1), SEQSERVE_TILE_ROW(2), SEQSERVE_TILE_ROW(3), SEQSERVE_TILE_ROW(4),
    SEQSERVE_TILE_ROW(5), SEQSERVE_TILE_ROW(6), SEQSERVE_TILE_ROW(7), SEQSERVE_TILE_ROW(8)};
#undef SEQSERVE_TILE_ROW

// Rows and slabs per tile for a call of `rows` rows: the most accumulators
// that fit, fewer rows for few-row calls so that one row still gets
// several independent sums to hide the FMA latency.
struct Blocking {
  int rows;
  int vectors;
};

constexpr Blocking kByRows[] = {{1, 8}, {2, 8}, {3, 6}, {4, 5}, {5, 4}, {6, 4}, {7, 3}, {8, 3}};
constexpr size_t kMostRows = sizeof(kByRows) / sizeof(kByRows[0]);

// A tile at the edge has fewer rows or slabs, so it fits too.
constexpr bool EveryBlockingFits() {
  for (const Blocking& blocking : kByRows) {
    if (blocking.rows > kMaxRows || blocking.vectors > kMaxVectors ||
        !Fits(blocking.rows, blocking.vectors)) {
      return false;
    }
  }
  return true;
}
static_assert(EveryBlockingFits(), "a blocking has no tile");

Blocking ChooseBlocking(size_t rows) {
  return kByRows[(rows < kMostRows ? rows : kMostRows) - 1];
}

inline size_t Min(size_t a, size_t b) { return a < b ? a : b; }

}  // namespace

void RunAvx512(const PackedLinear& layer, const float* x, size_t rows, float* y) {
  if (rows == 0) return;
  const Blocking blocking = ChooseBlocking(rows);
  const size_t in = layer.in, out = layer.out;
  const size_t slab = in * kSlabWidth;
  // Rows per chunk: about 512 KiB of x, so that a chunk stays in L2 while
  // every tile of the chunk reads it, and the weights, read once per chunk,
  // are read from further away as few times as that allows.
  size_t chunk = kChunkFloats / (in > 0 ? in : 1);
  chunk = chunk < static_cast<size_t>(blocking.rows)
              ? blocking.rows
              : chunk / blocking.rows * blocking.rows;
  // Inputs per pass over a chunk's tiles: when several tiles share the
  // weights, a range of k whose slabs stay in L1 (24 KiB for three slabs);
  // otherwise all of them at once.
  const size_t k_step = rows > static_cast<size_t>(blocking.rows) ? kBlockInputs : in;
  for (size_t first = 0; first < rows; first += chunk) {
    const size_t end = Min(rows, first + chunk);
    for (size_t s = 0; s < layer.slab_count; s += blocking.vectors) {
      const size_t vectors = Min(blocking.vectors, layer.slab_count - s);
      const size_t column = s * kSlabWidth;
      const size_t last_lanes = Min(kSlabWidth, out - (column + (vectors - 1) * kSlabWidth));
      const __mmask16 last = static_cast<__mmask16>((1u << last_lanes) - 1);
      for (size_t k = 0; k < in || k == 0; k += k_step) {
        const size_t count = Min(k_step, in - k);
        const bool resume = k > 0, ends = k + count >= in;
        for (size_t r = first; r < end; r += blocking.rows) {
          const size_t tile_rows = Min(blocking.rows, end - r);
          kTiles[tile_rows - 1][vectors - 1](
              x + r * in + k, in, layer.slabs + s * slab + k * kSlabWidth, slab,
              layer.bias + column, y + r * out + column, out, count, last, resume,
              ends && layer.relu);
        }
        if (ends) break;
      }
    }
  }
}

}  // namespace seqserve::linear_internal
