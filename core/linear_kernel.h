// How one Linear layer runs: weights packed once at load into the layout
// the kernel reads, and a kernel whose every output is the same sequence of
// roundings whatever the batch.
#pragma once

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"
#include "core/layer.h"
#include "core/precision.h"

namespace seqserve {

// Immutable once created; Run() is safe from many threads at once and
// allocates nothing (INT8: once the thread's buffers are large enough).
//
// Batch invariance (float32; INT8's arithmetic is in
// core/linear_kernel_isa.h, per row and exact in its sums): each output
// y[r][o] is computed as
//   acc = b[o]; for k = 0 .. in-1: acc = fma(x[r][k], W[o][k], acc)
// (then max(acc, 0) with a fused ReLU), in that order, whether row r comes
// alone or among any number of rows, at any position. The kernel vectorises
// across outputs and blocks rows in registers, never splits a sum over k,
// so the rows of a call, and how many there are, choose only which
// registers hold a row's sums (core/linear_kernel_isa.h). A row's outputs
// are therefore bit-identical at every batch size.
//
// The instruction set is chosen once per process from the CPU (AVX-512F,
// else AVX2 with FMA, else plain x86-64), never from the call. AVX-512 and
// AVX2 give the same bits; plain x86-64 has no FMA and rounds the product
// and the sum apart (same order, its own bits).
class LinearKernel {
 public:
  enum class Isa { kGeneric, kAvx2Fma, kAvx512 };

  // The best instruction set this CPU runs: what Create() uses. The
  // environment variable SEQSERVE_LINEAR_ISA, read once, can cap it at
  // "avx2+fma" or "x86-64" (to run, and test, what a CPU without AVX-512 or
  // AVX2 would); other values change nothing.
  static Isa BestIsa();
  // "avx512", "avx2+fma", "x86-64".
  static const char* IsaName(Isa isa);

  // `layer` is a checked Linear. With `fuse_relu`, Run() also applies the
  // ReLU that follows the layer. RESOURCE_EXHAUSTED when the packed copy of
  // the weights cannot be allocated. INT8 (core/linear_kernel_isa.h) takes
  // at most kMaxInt8Inputs inputs, so that its int32 sums cannot overflow
  // (INVALID_ARGUMENT beyond); it runs on AVX512_VNNI when the CPU has it
  // and the instruction set is AVX-512, else on AVX2 (also on AVX-512
  // without VNNI), else in plain x86-64, all with the same bits. Batch invariance holds for INT8 too: a row's quantization
  // is its own, and its integer sums are exact.
  static constexpr size_t kMaxInt8Inputs = size_t{1} << 16;
  static absl::StatusOr<std::unique_ptr<LinearKernel>> Create(
      const Layer& layer, bool fuse_relu, Precision precision = Precision::kFp32);
  // The same on a given instruction set, for tests: FAILED_PRECONDITION when
  // the CPU lacks it.
  static absl::StatusOr<std::unique_ptr<LinearKernel>> Create(
      const Layer& layer, bool fuse_relu, Isa isa, Precision precision = Precision::kFp32);
  // Whether this CPU has AVX512_VNNI (what the INT8 body on AVX-512 uses).
  static bool HasVnni();
  ~LinearKernel();

  LinearKernel(const LinearKernel&) = delete;
  LinearKernel& operator=(const LinearKernel&) = delete;

  // y = x W^T + b (then ReLU when fused) for `rows` rows, on the calling
  // thread alone. x and y must not overlap. INT8 quantizes the rows into
  // buffers of the thread's, kept for its next call (about 3 bytes per
  // input value), and throws std::bad_alloc when they cannot grow.
  void Run(const float* x, size_t rows, float* y) const;

  // The calling thread's INT8 buffers: their bytes, and giving them back.
  static size_t ThreadInt8ScratchBytes();
  static void ReleaseThreadInt8Scratch();

  Isa isa() const { return isa_; }
  Precision precision() const { return precision_; }
  // Bytes of the packed weights and bias.
  size_t packed_bytes() const;

 private:
  struct Packed;

  LinearKernel(Isa isa, Precision precision, std::unique_ptr<Packed> packed);
  static absl::StatusOr<std::unique_ptr<Packed>> PackFp32(const Layer& layer, bool fuse_relu);
  // Which INT8 body runs: VPDPBUSD on 4-byte quads, or 16-bit pair
  // multiply-adds in AVX2 or SSE2 (core/linear_kernel_isa.h's layouts).
  enum class Int8Body { kVnni, kAvx2, kGeneric };
  static absl::StatusOr<std::unique_ptr<Packed>> PackInt8(const Layer& layer, bool fuse_relu,
                                                          Int8Body body);
  void RunInt8(const float* x, size_t rows, float* y) const;

  const Isa isa_;
  const Precision precision_;
  std::unique_ptr<Packed> packed_;
};

}  // namespace seqserve
