#include "core/linear_kernel.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "core/linear_kernel_isa.h"

namespace seqserve {
namespace {

using linear_internal::kSlabWidth;
using linear_internal::PackedLinear;

// 64-byte aligned floats, freed with std::free.
struct FreeFloats {
  void operator()(float* values) const { std::free(values); }
};
using AlignedFloats = std::unique_ptr<float[], FreeFloats>;

AlignedFloats AllocateAligned(size_t count) {
  const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  return AlignedFloats(static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64)));
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
};

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
                                                                   bool fuse_relu) {
  return Create(layer, fuse_relu, BestIsa());
}

absl::StatusOr<std::unique_ptr<LinearKernel>> LinearKernel::Create(const Layer& layer,
                                                                   bool fuse_relu, Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(BestIsa())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this CPU cannot run the ", IsaName(isa), " kernel (best: ", IsaName(BestIsa()), ")"));
  }
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
  return std::unique_ptr<LinearKernel>(new LinearKernel(isa, std::move(packed)));
}

LinearKernel::LinearKernel(Isa isa, std::unique_ptr<Packed> packed)
    : isa_(isa), packed_(std::move(packed)) {}

LinearKernel::~LinearKernel() = default;

size_t LinearKernel::packed_bytes() const {
  return packed_->layout.slab_count * (packed_->layout.in + 1) * kSlabWidth * sizeof(float);
}

void LinearKernel::Run(const float* x, size_t rows, float* y) const {
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
