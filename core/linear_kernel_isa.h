// Internal to core/linear_kernel.cc: the packed layout of a Linear layer and
// the bodies that run it, one per instruction set. Each body lives in its
// own file built for its instruction set (linear_kernel_avx512.cc,
// linear_kernel_avx2.cc, linear_kernel_generic.cc), so this header holds
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

}  // namespace seqserve::linear_internal
