// Internal to core/linear_kernel.cc: the packed layout of a Linear layer and
// the bodies that run it, one per instruction set. Each body lives in its
// own file built for its instruction set (linear_kernel_avx512.cc,
// linear_kernel_avx2.cc, linear_kernel_generic.cc; for INT8
// linear_kernel_int8_vnni.cc, _avx2.cc, _generic.cc), so this header holds
// plain types and declarations only: nothing here may become code that a
// file built for AVX-512 and one built for plain x86-64 would both emit
// (the linker keeps one copy of such code, maybe the AVX-512 one).
//
// The arithmetic every body performs, for each output y[r][o] of
// y = x W^T + b (then ReLU when fused):
//
//   acc = b[o]  (0 without bias)
//   for k = 0, 1, ..., in - 1:  acc = fma(x[r][k], W[o][k], acc)
//   y[r][o] = relu ? max(acc, 0) : acc
//
// one rounding per step, the steps in this order, whatever the number of
// rows in the call or the row's place among them: bodies vectorise across
// outputs (the lanes of a register are different o) and block rows in
// registers (different r), never across k. So a row's outputs do not depend
// on its batch, and the AVX-512 and AVX2 bodies give the same bits. The
// generic body, for x86-64 without FMA, rounds the product and the sum
// separately (acc = acc + x * w): the same order, its own bits.
#pragma once

#include <cstddef>
#include <cstdint>

namespace seqserve::linear_internal {

// Outputs are packed in slabs of this many columns.
constexpr size_t kSlabWidth = 16;

// A Linear layer's weights and bias in the kernels' layout.
struct PackedLinear {
  // slab_count slabs of in x kSlabWidth floats: value [s][k][l] is
  // W[s * kSlabWidth + l][k], W being torch's out x in weight; 0 for
  // columns past `out`. 64-byte aligned.
  const float* slabs = nullptr;
  // slab_count * kSlabWidth floats: the bias, 0 past `out` (all 0 without
  // bias). 64-byte aligned.
  const float* bias = nullptr;
  size_t in = 0;
  size_t out = 0;
  size_t slab_count = 0;
  bool relu = false;  // a ReLU fused after the layer
};

// y (rows x out, row-major) from x (rows x in, row-major); x and y must not
// overlap. Each needs the CPU features in its name.
void RunGeneric(const PackedLinear& layer, const float* x, size_t rows, float* y);
void RunAvx2Fma(const PackedLinear& layer, const float* x, size_t rows, float* y);
void RunAvx512(const PackedLinear& layer, const float* x, size_t rows, float* y);

// INT8: the layer as ONNX Runtime's quantize_dynamic computes it.
//
// Weights, once at load: per output o, symmetric int8 with
//   w_scale[o] = max_k |W[o][k]| / 127,  q[o][k] = round(W[o][k] / w_scale[o])
// (1 when the row is all zero or that quotient underflows to 0).
// Activations, per row of each call, as ONNX's DynamicQuantizeLinear
// (uint8, round half to even):
//   x_scale = (max(0, max x) - min(0, min x)) / 255
//   zero = clamp(round(0 - min(0, min x) / x_scale), 0, 255)
//   xq[k] = clamp(round(x[k] / x_scale) + zero, 0, 255)
// Two functions quantize (QuantizeRowsGeneric, QuantizeRowsAvx512, below);
// they must give the same bytes, which the tests check. Then per output,
// in this order, each float step rounded on its own:
//   sum = sum_k xq[k] * q[o][k] - zero * column_sum[o]   (exact, in int32)
//   y = float(sum) * (x_scale * w_scale[o]) + b[o]
// (int32 to float, the scales' product, the product, the sum), then
// max(y, 0) with a fused ReLU. The sum is exact whatever the order, and the
// rest is per row, so a row's outputs are bit-identical at every batch size
// and on every body. A row that is not finite, or whose max - min is not
// finite in float32, gives NaN.
constexpr size_t kQuadBytes = 4;  // inputs per 32-bit lane of a dot product

// The weights in one of two layouts, by body. `slabs` (VNNI): slab_count
// slabs of quads x kSlabWidth x 4 bytes, byte [s][q][l][j] being
// q[s * kSlabWidth + l][4q + j]. `pair_slabs` (AVX2 and plain x86-64, whose
// multiply-adds take int16 pairs): slab_count slabs of pairs x kSlabWidth
// x 2 int16, [s][p][l][j] being q[s * kSlabWidth + l][2p + j]. 0 past `in`
// and past `out`; 64-byte aligned; the other layout null.
struct PackedInt8Linear {
  const int8_t* slabs = nullptr;
  const int16_t* pair_slabs = nullptr;
  // slab_count * kSlabWidth each, 0 past `out`; 64-byte aligned.
  const float* weight_scales = nullptr;
  const int32_t* column_sums = nullptr;
  const float* bias = nullptr;
  size_t in = 0;
  size_t quads = 0;  // (in + 3) / 4
  size_t pairs = 0;  // (in + 1) / 2
  size_t out = 0;
  size_t slab_count = 0;
  bool relu = false;
};

// A call's rows quantized: row r's quads * 4 bytes at xq + r * stride
// (0 past `in`), its scale and zero point; for the pair layout also each
// pair of bytes as one int32, xq[2p] | xq[2p + 1] << 16, at
// pairs + r * pair_stride.
struct QuantizedRows {
  const uint8_t* xq = nullptr;
  size_t stride = 0;
  const int32_t* pairs = nullptr;
  size_t pair_stride = 0;
  const float* scales = nullptr;
  const int32_t* zeros = nullptr;
};

// Quantize `rows` rows of `in` floats at x as above, row r into
// xq + r * stride (0 past `in`), scales[r] and zeros[r]. A row that is not
// finite gets scale NaN (its outputs are NaN), a row of zeros scale 0.
// Both give the same bytes; the second needs AVX-512F.
void QuantizeRowsGeneric(const float* x, size_t rows, size_t in, uint8_t* xq, size_t stride,
                         float* scales, int32_t* zeros);
void QuantizeRowsAvx512(const float* x, size_t rows, size_t in, uint8_t* xq, size_t stride,
                        float* scales, int32_t* zeros);

// The pair layout's bodies; the second needs AVX2.
void RunInt8Generic(const PackedInt8Linear& layer, const QuantizedRows& x, size_t rows,
                    float* y);
void RunInt8Avx2(const PackedInt8Linear& layer, const QuantizedRows& x, size_t rows, float* y);
// Needs AVX-512F and AVX512_VNNI.
void RunInt8Vnni(const PackedInt8Linear& layer, const QuantizedRows& x, size_t rows, float* y);

}  // namespace seqserve::linear_internal
