#include "core/linear_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/linear_kernel_isa.h"

namespace seqserve {
namespace {

using linear_internal::kQuadBytes;
using linear_internal::kSlabWidth;
using linear_internal::PackedInt8Linear;
using linear_internal::PackedLinear;
using linear_internal::QuantizedRows;

// 64-byte aligned arrays, freed with std::free.
struct FreeAligned {
  void operator()(void* values) const { std::free(values); }
};
template <typename T>
using Aligned = std::unique_ptr<T[], FreeAligned>;
using AlignedFloats = Aligned<float>;

template <typename T = float>
Aligned<T> AllocateAligned(size_t count) {
  const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
  return Aligned<T>(static_cast<T*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64)));
}

LinearKernel::Isa DetectIsa() {
  __builtin_cpu_init();
  LinearKernel::Isa isa = LinearKernel::Isa::kGeneric;
  if (__builtin_cpu_supports("avx512f")) {
    isa = LinearKernel::Isa::kAvx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    isa = LinearKernel::Isa::kAvx2Fma;
  }
  // A cap, to run what a CPU without AVX-512 (or without AVX2) would run.
  if (const char* cap = std::getenv("SEQSERVE_LINEAR_ISA"); cap != nullptr) {
    for (LinearKernel::Isa lower :
         {LinearKernel::Isa::kGeneric, LinearKernel::Isa::kAvx2Fma, LinearKernel::Isa::kAvx512}) {
      if (std::strcmp(cap, LinearKernel::IsaName(lower)) == 0 &&
          static_cast<int>(lower) < static_cast<int>(isa)) {
        isa = lower;
      }
    }
  }
  return isa;
}

}  // namespace

struct LinearKernel::Packed {
  AlignedFloats slabs;
  AlignedFloats bias;
  PackedLinear layout;
  // INT8 only: the body and the weights in its layout.
  Int8Body int8_body = Int8Body::kGeneric;
  Aligned<int8_t> int8_slabs;
  Aligned<int16_t> pair_slabs;
  AlignedFloats weight_scales;
  Aligned<int32_t> column_sums;
  PackedInt8Linear int8_layout;
};

bool LinearKernel::HasVnni() {
  static const bool vnni = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
  }();
  return vnni;
}

LinearKernel::Isa LinearKernel::BestIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

const char* LinearKernel::IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2Fma:
      return "avx2+fma";
    case Isa::kGeneric:
      return "x86-64";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<LinearKernel>> LinearKernel::Create(const Layer& layer,
                                                                   bool fuse_relu,
                                                                   Precision precision) {
  return Create(layer, fuse_relu, BestIsa(), precision);
}

absl::StatusOr<std::unique_ptr<LinearKernel>> LinearKernel::Create(const Layer& layer,
                                                                   bool fuse_relu, Isa isa,
                                                                   Precision precision) {
  if (static_cast<int>(isa) > static_cast<int>(BestIsa())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this CPU cannot run the ", IsaName(isa), " kernel (best: ", IsaName(BestIsa()), ")"));
  }
  // INT8 on AVX512_VNNI, else on AVX2's or SSE2's int16 multiply-adds.
  const Int8Body body = isa == Isa::kAvx512 && HasVnni() ? Int8Body::kVnni
                        : isa != Isa::kGeneric           ? Int8Body::kAvx2
                                                         : Int8Body::kGeneric;
  auto packed = precision == Precision::kInt8 ? PackInt8(layer, fuse_relu, body)
                                              : PackFp32(layer, fuse_relu);
  if (!packed.ok()) return packed.status();
  return std::unique_ptr<LinearKernel>(new LinearKernel(isa, precision, std::move(*packed)));
}

absl::StatusOr<std::unique_ptr<LinearKernel::Packed>> LinearKernel::PackFp32(const Layer& layer,
                                                                             bool fuse_relu) {
  const size_t in = static_cast<size_t>(layer.in_features);
  const size_t out = static_cast<size_t>(layer.out_features);
  const size_t slab_count = (out + kSlabWidth - 1) / kSlabWidth;
  auto packed = std::make_unique<Packed>();
  packed->slabs = AllocateAligned(slab_count * in * kSlabWidth);
  packed->bias = AllocateAligned(slab_count * kSlabWidth);
  if (packed->slabs == nullptr || packed->bias == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no memory for the packed weights of ", layer.Describe(), " (",
        slab_count * (in + 1) * kSlabWidth * sizeof(float), " bytes)"));
  }
  // Slab s holds columns 16s .. 16s+15 of W^T, k-major; columns past `out`
  // are 0, so every kernel reads whole slabs and stores only real columns.
  float* slabs = packed->slabs.get();
  for (size_t s = 0; s < slab_count; ++s) {
    for (size_t l = 0; l < kSlabWidth; ++l) {
      const size_t o = s * kSlabWidth + l;
      float* column = slabs + s * in * kSlabWidth + l;
      for (size_t k = 0; k < in; ++k) {
        column[k * kSlabWidth] = o < out ? layer.weight[o * in + k] : 0.0f;
      }
    }
  }
  float* bias = packed->bias.get();
  std::fill(bias, bias + slab_count * kSlabWidth, 0.0f);
  std::copy(layer.bias.begin(), layer.bias.end(), bias);
  packed->layout.slabs = slabs;
  packed->layout.bias = bias;
  packed->layout.in = in;
  packed->layout.out = out;
  packed->layout.slab_count = slab_count;
  packed->layout.relu = fuse_relu;
  return packed;
}

absl::StatusOr<std::unique_ptr<LinearKernel::Packed>> LinearKernel::PackInt8(const Layer& layer,
                                                                             bool fuse_relu,
                                                                             Int8Body body) {
  const size_t in = static_cast<size_t>(layer.in_features);
  const size_t out = static_cast<size_t>(layer.out_features);
  if (in > kMaxInt8Inputs) {
    return absl::InvalidArgumentError(absl::StrCat(
        layer.Describe(), " has ", in, " inputs; INT8 takes at most ", kMaxInt8Inputs,
        " (its int32 sums would overflow)"));
  }
  const size_t slab_count = (out + kSlabWidth - 1) / kSlabWidth;
  const size_t quads = (in + kQuadBytes - 1) / kQuadBytes;
  const size_t pairs = (in + 1) / 2;
  const size_t columns = slab_count * kSlabWidth;
  const bool vnni = body == Int8Body::kVnni;
  const size_t weight_bytes = vnni ? columns * quads * kQuadBytes : columns * pairs * 2 * 2;
  auto packed = std::make_unique<Packed>();
  packed->int8_body = body;
  if (vnni) {
    packed->int8_slabs = AllocateAligned<int8_t>(weight_bytes);
  } else {
    packed->pair_slabs = AllocateAligned<int16_t>(weight_bytes / 2);
  }
  packed->weight_scales = AllocateAligned(columns);
  packed->column_sums = AllocateAligned<int32_t>(columns);
  packed->bias = AllocateAligned(columns);
  if ((vnni ? packed->int8_slabs == nullptr : packed->pair_slabs == nullptr) ||
      packed->weight_scales == nullptr || packed->column_sums == nullptr ||
      packed->bias == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no memory for the int8 weights of ", layer.Describe(), " (",
                     weight_bytes + columns * 12, " bytes)"));
  }
  int8_t* slabs = packed->int8_slabs.get();
  int16_t* pair_slabs = packed->pair_slabs.get();
  if (vnni) {
    std::fill(slabs, slabs + weight_bytes, int8_t{0});
  } else {
    std::fill(pair_slabs, pair_slabs + weight_bytes / 2, int16_t{0});
  }
  float* scales = packed->weight_scales.get();
  int32_t* sums = packed->column_sums.get();
  std::fill(scales, scales + columns, 0.0f);
  std::fill(sums, sums + columns, 0);
  // A layer its file stores in int8 runs those weights and scales as they are.
  const bool stored = !layer.int8_weight.empty();
  for (size_t o = 0; o < out; ++o) {
    const float* row = layer.weight.data() + o * in;
    float scale;
    if (stored) {
      scale = layer.int8_scales[o];
    } else {
      float largest = 0.0f;
      for (size_t k = 0; k < in; ++k) largest = std::max(largest, std::fabs(row[k]));
      // Symmetric, [-127, 127]: ONNX Runtime's per-channel int8 weights. A
      // row too small for a scale (all zero, or a quotient that underflows)
      // quantizes to zeros.
      scale = largest / 127.0f;
      if (!(scale > 0.0f)) scale = 1.0f;
    }
    scales[o] = scale;
    const size_t s = o / kSlabWidth, l = o % kSlabWidth;
    int32_t sum = 0;
    for (size_t k = 0; k < in; ++k) {
      const int8_t value =
          stored ? layer.int8_weight[o * in + k]
                 : static_cast<int8_t>(
                       std::clamp(std::nearbyint(row[k] / scale), -127.0f, 127.0f));
      if (vnni) {
        slabs[((s * quads + k / kQuadBytes) * kSlabWidth + l) * kQuadBytes + k % kQuadBytes] =
            value;
      } else {
        pair_slabs[((s * pairs + k / 2) * kSlabWidth + l) * 2 + k % 2] = value;
      }
      sum += value;
    }
    sums[o] = sum;
  }
  float* bias = packed->bias.get();
  std::fill(bias, bias + columns, 0.0f);
  std::copy(layer.bias.begin(), layer.bias.end(), bias);
  PackedInt8Linear& layout = packed->int8_layout;
  layout.slabs = slabs;
  layout.pair_slabs = pair_slabs;
  layout.weight_scales = scales;
  layout.column_sums = sums;
  layout.bias = bias;
  layout.in = in;
  layout.quads = quads;
  layout.pairs = pairs;
  layout.out = out;
  layout.slab_count = slab_count;
  layout.relu = fuse_relu;
  return packed;
}

LinearKernel::LinearKernel(Isa isa, Precision precision, std::unique_ptr<Packed> packed)
    : isa_(isa), precision_(precision), packed_(std::move(packed)) {}

LinearKernel::~LinearKernel() = default;

size_t LinearKernel::packed_bytes() const {
  if (precision_ == Precision::kInt8) {
    const PackedInt8Linear& layout = packed_->int8_layout;
    const size_t weights = packed_->int8_body == Int8Body::kVnni ? layout.quads * kQuadBytes
                                                                 : layout.pairs * 2 * 2;
    return layout.slab_count * kSlabWidth * (weights + sizeof(float) * 2 + sizeof(int32_t));
  }
  return packed_->layout.slab_count * (packed_->layout.in + 1) * kSlabWidth * sizeof(float);
}

namespace {

// The calling thread's INT8 buffers, grown when a call needs more.
struct Int8Scratch {
  std::vector<uint8_t> quantized;
  std::vector<int32_t> pairs;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
};

Int8Scratch& ThreadInt8Scratch() {
  thread_local Int8Scratch scratch;
  return scratch;
}

}  // namespace

size_t LinearKernel::ThreadInt8ScratchBytes() {
  const Int8Scratch& scratch = ThreadInt8Scratch();
  return scratch.quantized.capacity() + scratch.pairs.capacity() * sizeof(int32_t) +
         scratch.scales.capacity() * sizeof(float) + scratch.zeros.capacity() * sizeof(int32_t);
}

void LinearKernel::ReleaseThreadInt8Scratch() { ThreadInt8Scratch() = Int8Scratch(); }

void LinearKernel::RunInt8(const float* x, size_t rows, float* y) const {
  const PackedInt8Linear& layout = packed_->int8_layout;
  const Int8Body body = packed_->int8_body;
  // Rows packed tight: the bodies read bytes, quads and pairs at any
  // address. At most a quarter of x's bytes (and twice that in pairs).
  const size_t stride = layout.quads * kQuadBytes;
  const size_t pair_stride = layout.pairs;
  Int8Scratch& scratch = ThreadInt8Scratch();
  std::vector<uint8_t>& quantized = scratch.quantized;
  std::vector<int32_t>& pairs = scratch.pairs;
  std::vector<float>& scales = scratch.scales;
  std::vector<int32_t>& zeros = scratch.zeros;
  if (quantized.size() < rows * stride) quantized.resize(rows * stride);
  if (scales.size() < rows) {
    scales.resize(rows);
    zeros.resize(rows);
  }
  if (body == Int8Body::kVnni) {
    linear_internal::QuantizeRowsAvx512(x, rows, layout.in, quantized.data(), stride,
                                        scales.data(), zeros.data());
  } else {
    linear_internal::QuantizeRowsGeneric(x, rows, layout.in, quantized.data(), stride,
                                         scales.data(), zeros.data());
    if (pairs.size() < rows * pair_stride) pairs.resize(rows * pair_stride);
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t* xq = quantized.data() + r * stride;
      int32_t* row = pairs.data() + r * pair_stride;
      for (size_t p = 0; p < layout.pairs; ++p) {
        row[p] = static_cast<int32_t>(xq[2 * p] | (static_cast<uint32_t>(xq[2 * p + 1]) << 16));
      }
    }
  }
  QuantizedRows view;
  view.xq = quantized.data();
  view.stride = stride;
  view.pairs = pairs.data();
  view.pair_stride = pair_stride;
  view.scales = scales.data();
  view.zeros = zeros.data();
  switch (body) {
    case Int8Body::kVnni:
      return linear_internal::RunInt8Vnni(layout, view, rows, y);
    case Int8Body::kAvx2:
      return linear_internal::RunInt8Avx2(layout, view, rows, y);
    case Int8Body::kGeneric:
      return linear_internal::RunInt8Generic(layout, view, rows, y);
  }
}

void LinearKernel::Run(const float* x, size_t rows, float* y) const {
  if (precision_ == Precision::kInt8) return RunInt8(x, rows, y);
  switch (isa_) {
    case Isa::kAvx512:
      return linear_internal::RunAvx512(packed_->layout, x, rows, y);
    case Isa::kAvx2Fma:
      return linear_internal::RunAvx2Fma(packed_->layout, x, rows, y);
    case Isa::kGeneric:
      return linear_internal::RunGeneric(packed_->layout, x, rows, y);
  }
}

}  // namespace seqserve
