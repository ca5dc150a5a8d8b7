// The Linear kernel: every instruction set this CPU runs computes x W^T + b
// as closely as float sums can (tests/data/reference/packed checks whole
// models against PyTorch's own numbers), each output is exactly the sum the
// kernel promises (core/linear_kernel_isa.h: bias, then one FMA per k in
// order), and so a row's bits do not depend on the rows beside it.
#include "core/linear_kernel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/random_layers.h"

namespace seqserve {
namespace {

using Isa = LinearKernel::Isa;

using testing::RandomLinear;
using testing::RandomRows;
using testing::RunnableIsas;

std::unique_ptr<LinearKernel> MakeKernel(const Layer& layer, bool relu, Isa isa) {
  auto kernel = LinearKernel::Create(layer, relu, isa);
  EXPECT_TRUE(kernel.ok()) << kernel.status();
  return kernel.ok() ? std::move(*kernel) : nullptr;
}

std::vector<float> Outputs(const LinearKernel& kernel, const Layer& layer, const float* x,
                       size_t rows) {
  std::vector<float> y(rows * layer.out_features, -7.0f);
  kernel.Run(x, rows, y.data());
  return y;
}

// Index of the first output further from x W^T + b (summed in double) than
// float sums in any order stay: 1e-5 of the sum of the terms' magnitudes.
// -1 when none is.
long FirstInexact(const Layer& layer, const std::vector<float>& x, size_t rows, bool relu,
                  const std::vector<float>& y) {
  const size_t in = layer.in_features, out = layer.out_features;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t o = 0; o < out; ++o) {
      double sum = layer.bias.empty() ? 0.0 : layer.bias[o];
      double magnitude = std::fabs(sum);
      for (size_t k = 0; k < in; ++k) {
        const double term = static_cast<double>(layer.weight[o * in + k]) * x[r * in + k];
        sum += term;
        magnitude += std::fabs(term);
      }
      if (relu) sum = std::max(sum, 0.0);
      if (std::fabs(y[r * out + o] - sum) > 1e-5 * magnitude) {
        return static_cast<long>(r * out + o);
      }
    }
  }
  return -1;
}

// The kernel's formula written out one output at a time: the bias, then
// each product in order of k, fused (std::fma) on the FMA instruction sets
// and rounded twice on plain x86-64.
std::vector<float> Formula(const Layer& layer, const std::vector<float>& x, size_t rows,
                           bool relu, Isa isa) {
  const size_t in = layer.in_features, out = layer.out_features;
  std::vector<float> y(rows * out);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t o = 0; o < out; ++o) {
      float acc = layer.bias.empty() ? 0.0f : layer.bias[o];
      for (size_t k = 0; k < in; ++k) {
        const float w = layer.weight[o * in + k], v = x[r * in + k];
        if (isa == Isa::kGeneric) {
          volatile float product = v * w;  // rounded on its own, never fused
          acc = acc + product;
        } else {
          acc = std::fma(v, w, acc);
        }
      }
      y[r * out + o] = relu ? std::max(acc, 0.0f) : acc;
    }
  }
  return y;
}

// Index of the first value whose bits differ, -1 when none does.
long FirstDifferentBits(const std::vector<float>& a, const float* b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<long>(i);
  }
  return -1;
}

// Shapes that reach every tile: widths under, at and past a slab (16) and a
// 256-bit register (8), several slabs, one output, long sums.
const std::pair<int, int> kShapes[] = {{3, 16}, {16, 3},  {37, 129}, {129, 5}, {1, 1},
                                       {8, 17}, {64, 64}, {300, 70}, {1024, 10}, {5, 200}};
const size_t kRowCounts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 25, 33, 300};

TEST(LinearKernel, EveryInstructionSetComputesTheLayer) {
  for (Isa isa : RunnableIsas()) {
    for (const auto& [in, out] : kShapes) {
      for (bool bias : {true, false}) {
        for (bool relu : {true, false}) {
          const Layer layer = RandomLinear(in, out, bias, in * 131 + out);
          auto kernel = MakeKernel(layer, relu, isa);
          ASSERT_NE(kernel, nullptr);
          EXPECT_EQ(kernel->isa(), isa);
          for (size_t rows : kRowCounts) {
            const std::vector<float> x = RandomRows(rows, in, static_cast<unsigned>(rows));
            const std::vector<float> y = Outputs(*kernel, layer, x.data(), rows);
            EXPECT_EQ(FirstInexact(layer, x, rows, relu, y), -1)
                << LinearKernel::IsaName(isa) << " " << layer.Describe() << " rows " << rows
                << " relu " << relu;
          }
        }
      }
    }
  }
}

TEST(LinearKernel, EveryOutputIsTheFormulaBitForBit) {
  for (Isa isa : RunnableIsas()) {
    for (const auto& [in, out] : kShapes) {
      for (bool relu : {true, false}) {
        const Layer layer = RandomLinear(in, out, /*bias=*/true, in * 7 + out);
        auto kernel = MakeKernel(layer, relu, isa);
        ASSERT_NE(kernel, nullptr);
        for (size_t rows : {size_t{1}, size_t{8}, size_t{13}, size_t{33}}) {
          const std::vector<float> x = RandomRows(rows, in, static_cast<unsigned>(rows + in));
          const std::vector<float> y = Outputs(*kernel, layer, x.data(), rows);
          EXPECT_EQ(FirstDifferentBits(Formula(layer, x, rows, relu, isa), y.data()), -1)
              << LinearKernel::IsaName(isa) << " " << layer.Describe() << " rows " << rows;
        }
      }
    }
  }
}

// The property itself, at the kernel: each of 300 rows sent alone, then in
// calls of every size from 1 to 300 rows, starting at a different row each
// time so a row sits at many positions (and many places in the tiles).
TEST(LinearKernel, ARowGivesTheSameBitsInEveryBatch) {
  constexpr size_t kRows = 300;
  for (Isa isa : RunnableIsas()) {
    for (const auto& [in, out] : {std::pair{37, 129}, std::pair{3, 16}, std::pair{16, 3},
                                  std::pair{200, 53}}) {
      const Layer layer = RandomLinear(in, out, /*bias=*/true, 99);
      auto kernel = MakeKernel(layer, /*relu=*/true, isa);
      ASSERT_NE(kernel, nullptr);
      // Twice the rows, so that a call may start anywhere and run 300 rows.
      std::vector<float> x = RandomRows(kRows, in, 5);
      x.insert(x.end(), x.begin(), x.end());
      std::vector<float> alone(2 * kRows * out);
      for (size_t r = 0; r < 2 * kRows; ++r) {
        kernel->Run(x.data() + r * in, 1, alone.data() + r * out);
      }
      std::vector<float> y(kRows * out);
      long bad_batch = -1;
      for (size_t batch = 1; batch <= kRows && bad_batch < 0; ++batch) {
        const size_t first = (batch * 37) % kRows;
        kernel->Run(x.data() + first * in, batch, y.data());
        if (std::memcmp(y.data(), alone.data() + first * out, batch * out * sizeof(float)) != 0) {
          bad_batch = static_cast<long>(batch);
        }
      }
      EXPECT_EQ(bad_batch, -1) << LinearKernel::IsaName(isa) << " " << layer.Describe();
    }
  }
}

TEST(LinearKernel, Avx2AndAvx512GiveTheSameBits) {
  if (LinearKernel::BestIsa() != Isa::kAvx512) {
    GTEST_SKIP() << "this CPU has no AVX-512 (best: "
                 << LinearKernel::IsaName(LinearKernel::BestIsa()) << ")";
  }
  for (const auto& [in, out] : kShapes) {
    const Layer layer = RandomLinear(in, out, /*bias=*/true, 3);
    auto avx2 = MakeKernel(layer, /*relu=*/false, Isa::kAvx2Fma);
    auto avx512 = MakeKernel(layer, /*relu=*/false, Isa::kAvx512);
    ASSERT_NE(avx2, nullptr);
    ASSERT_NE(avx512, nullptr);
    for (size_t rows : kRowCounts) {
      const std::vector<float> x = RandomRows(rows, in, 17);
      EXPECT_EQ(FirstDifferentBits(Outputs(*avx2, layer, x.data(), rows),
                                   Outputs(*avx512, layer, x.data(), rows).data()),
                -1)
          << layer.Describe() << " rows " << rows;
    }
  }
}

TEST(LinearKernel, ReluKeepsNegativeZeroAndNanAsStdMaxDoes) {
  // One input, weight 1: the outputs are the inputs plus a zero bias.
  const Layer layer = Layer::Linear(1, 1, {1.0f}, {});
  const float inputs[] = {-2.0f, -0.0f, 0.0f, 3.0f, std::nanf("")};
  for (Isa isa : RunnableIsas()) {
    auto kernel = MakeKernel(layer, /*relu=*/true, isa);
    ASSERT_NE(kernel, nullptr);
    float y[5];
    kernel->Run(inputs, 5, y);
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_FALSE(std::signbit(y[0]));
    EXPECT_EQ(y[2], 0.0f);
    EXPECT_EQ(y[3], 3.0f);
    EXPECT_TRUE(std::isnan(y[4])) << LinearKernel::IsaName(isa);
    // fma(-0, 1, +0) is +0: the zero bias makes -0 inputs +0 before the ReLU.
    EXPECT_FALSE(std::signbit(y[1])) << LinearKernel::IsaName(isa);
  }
}

TEST(LinearKernel, CreateUsesTheBestInstructionSet) {
  const Layer layer = RandomLinear(4, 4, true, 1);
  auto kernel = LinearKernel::Create(layer, /*fuse_relu=*/false);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  EXPECT_EQ((*kernel)->isa(), LinearKernel::BestIsa());
  // 1 slab of 16 columns, 4 inputs and the bias row.
  EXPECT_EQ((*kernel)->packed_bytes(), 16 * 5 * sizeof(float));
}

// The ctest entries Core.LinearFallback* run core's suites under a cap.
TEST(LinearKernel, TheEnvironmentCapsTheInstructionSet) {
  const char* cap = std::getenv("SEQSERVE_LINEAR_ISA");
  if (cap == nullptr) GTEST_SKIP() << "SEQSERVE_LINEAR_ISA is not set";
  const std::string asked = cap;
  ASSERT_TRUE(asked == "x86-64" || asked == "avx2+fma" || asked == "avx512") << asked;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const std::string expected =
      asked == "x86-64" || !avx2 ? "x86-64"
      : asked == "avx2+fma" || !__builtin_cpu_supports("avx512f") ? "avx2+fma"
                                                                  : "avx512";
  EXPECT_EQ(LinearKernel::IsaName(LinearKernel::BestIsa()), expected);
}

TEST(LinearKernel, AnInstructionSetTheCpuLacksIsRefused) {
  if (LinearKernel::BestIsa() == Isa::kAvx512) {
    GTEST_SKIP() << "this CPU runs every instruction set the kernel has";
  }
  auto kernel = LinearKernel::Create(RandomLinear(4, 4, true, 1), false, Isa::kAvx512);
  EXPECT_EQ(kernel.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(kernel.status().message().find("avx512"), std::string::npos);
}

TEST(LinearKernel, ThreadsSharingOneKernelGetTheirOwnAnswers) {
  const Layer layer = RandomLinear(256, 128, true, 6);
  auto kernel = LinearKernel::Create(layer, /*fuse_relu=*/true);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  constexpr int kThreads = 4;
  constexpr size_t kRows = 33;
  std::vector<std::vector<float>> inputs, alone;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(RandomRows(kRows, 256, 100 + t));
    alone.push_back(Outputs(**kernel, layer, inputs[t].data(), kRows));
  }
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> y(kRows * 128);
      for (int i = 0; i < 200; ++i) {
        (*kernel)->Run(inputs[t].data(), kRows, y.data());
        if (y != alone[t]) ++wrong[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace seqserve
