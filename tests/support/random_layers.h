// Random Linear layers and rows for the kernel tests, and the instruction
// sets this CPU runs.
#pragma once

#include <cstddef>
#include <random>
#include <utility>
#include <vector>

#include "core/layer.h"
#include "core/linear_kernel.h"

namespace seqserve::testing {

// Weights (and the bias, when asked) uniform in [-1, 1].
inline Layer RandomLinear(int in, int out, bool bias, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> weight(static_cast<size_t>(in) * out), b(bias ? out : 0);
  for (float& v : weight) v = uniform(rng);
  for (float& v : b) v = uniform(rng);
  return Layer::Linear(in, out, std::move(weight), std::move(b));
}

// `rows` rows of `width` values, normal around `mean` with deviation 2.
inline std::vector<float> RandomRows(size_t rows, int width, unsigned seed, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(mean, 2.0f);
  std::vector<float> values(rows * width);
  for (float& v : values) v = normal(rng);
  return values;
}

// Every instruction set this CPU runs, plain x86-64 first.
inline std::vector<LinearKernel::Isa> RunnableIsas() {
  std::vector<LinearKernel::Isa> isas;
  for (LinearKernel::Isa isa :
       {LinearKernel::Isa::kGeneric, LinearKernel::Isa::kAvx2Fma, LinearKernel::Isa::kAvx512}) {
    if (static_cast<int>(isa) <= static_cast<int>(LinearKernel::BestIsa())) isas.push_back(isa);
  }
  return isas;
}

}  // namespace seqserve::testing
