// LinearKernel's INT8 body for any x86-64 (see core/linear_kernel_isa.h for
// the arithmetic): the integer sums in plain C++, the float steps as
// written. Built with -ffp-contract=off so that the multiply and the add
// of the last step stay two roundings, as in the VNNI body.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/linear_kernel_isa.h"

namespace seqserve::linear_internal {

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
    const float zero = std::clamp(std::nearbyint(0.0f - low / step), 0.0f, 255.0f);
    for (size_t k = 0; k < in; ++k) {
      xq[k] = static_cast<uint8_t>(std::clamp(std::nearbyint(x[k] / step) + zero, 0.0f, 255.0f));
    }
    scales[r] = step;
    zeros[r] = static_cast<int32_t>(zero);
  }
}

void RunInt8Generic(const PackedInt8Linear& layer, const QuantizedRows& x, size_t rows,
                    float* y) {
  const size_t slab_bytes = layer.quads * kSlabWidth * kQuadBytes;
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* xq = x.xq + r * x.stride;
    float* row = y + r * layer.out;
    for (size_t s = 0; s < layer.slab_count; ++s) {
      int32_t sums[kSlabWidth] = {};
      const int8_t* w = layer.slabs + s * slab_bytes;
      for (size_t q = 0; q < layer.quads; ++q) {
        const uint8_t* xs = xq + q * kQuadBytes;
        const int8_t* wq = w + q * kSlabWidth * kQuadBytes;
        for (size_t l = 0; l < kSlabWidth; ++l) {
          const int8_t* lane = wq + l * kQuadBytes;
          sums[l] += xs[0] * lane[0] + xs[1] * lane[1] + xs[2] * lane[2] + xs[3] * lane[3];
        }
      }
      for (size_t l = 0; l < kSlabWidth; ++l) {
        const size_t o = s * kSlabWidth + l;
        if (o >= layer.out) break;
        // Wraps as the VNNI body's lanes do; the true sum fits in int32
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
