// The kernel each Linear gets, and that the packed one computes x W^T + b as
// closely as float sums can (tests/data/reference/packed checks it against
// PyTorch's own numbers).
#include "core/linear_kernel.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>


namespace seqserve {
namespace {

Layer RandomLinear(int in, int out, bool bias, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> weight(static_cast<size_t>(in) * out), b(bias ? out : 0);
  for (float& v : weight) v = uniform(rng);
  for (float& v : b) v = uniform(rng);
  return Layer::Linear(in, out, std::move(weight), std::move(b));
}

std::vector<float> RandomRows(size_t rows, int width, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> values(rows * width);
  for (float& v : values) v = normal(rng);
  return values;
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

TEST(LinearKernel, SmallWeightsStayUnpackedAndLargerOnesArePacked) {
  const Layer tiny = RandomLinear(3, 16, true, 1);
  const Layer under = RandomLinear(63, 64, true, 2);
  const Layer edge = RandomLinear(64, 64, true, 3);
  const Layer wide = RandomLinear(1024, 10, false, 4);
  for (const auto& [layer, packed] : {std::pair{&tiny, false}, std::pair{&under, false},
                                      std::pair{&edge, true}, std::pair{&wide, true}}) {
    auto kernel = LinearKernel::Create(*layer, /*fuse_relu=*/false);
    ASSERT_TRUE(kernel.ok()) << kernel.status();
    EXPECT_EQ((*kernel)->packed(), packed) << layer->Describe();
  }
}

TEST(LinearKernel, ManyRowsOfALargeLayerRunPacked) {
  const Layer layer = RandomLinear(300, 70, true, 7);  // 21000 weights
  auto kernel = LinearKernel::Create(layer, /*fuse_relu=*/false);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  EXPECT_FALSE((*kernel)->RunsPacked(1));
  EXPECT_FALSE((*kernel)->RunsPacked(6));  // 126000 row x weights
  EXPECT_TRUE((*kernel)->RunsPacked(7));   // 147000
  EXPECT_TRUE((*kernel)->RunsPacked(300));
}

TEST(LinearKernel, OneRowOfALargeLayerRunsPackedAndComputesTheLayer) {
  const Layer layer = RandomLinear(1024, 256, true, 11);  // 262144 weights
  auto kernel = LinearKernel::Create(layer, /*fuse_relu=*/false);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  ASSERT_TRUE((*kernel)->RunsPacked(1));
  const std::vector<float> x = RandomRows(1, 1024, 12);
  std::vector<float> y(256, -7.0f);
  ASSERT_TRUE((*kernel)->Run(x.data(), 1, y.data()).ok());
  EXPECT_EQ(FirstInexact(layer, x, 1, /*relu=*/false, y), -1);
}

TEST(LinearKernel, EveryPathComputesTheLayer) {
  for (bool bias : {true, false}) {
    for (bool relu : {true, false}) {
      const Layer layer = RandomLinear(300, 70, bias, 5);
      auto kernel = LinearKernel::Create(layer, relu);
      ASSERT_TRUE(kernel.ok()) << kernel.status();
      ASSERT_TRUE((*kernel)->packed());
      for (size_t rows : {1u, 2u, 9u, 300u}) {  // sgemm, sgemm, packed, packed
        const std::vector<float> x = RandomRows(rows, 300, static_cast<unsigned>(rows));
        std::vector<float> y(rows * 70, -7.0f);
        ASSERT_TRUE((*kernel)->Run(x.data(), rows, y.data()).ok());
        EXPECT_EQ(FirstInexact(layer, x, rows, relu, y), -1)
            << "rows " << rows << " bias " << bias << " relu " << relu;
        if (relu) {
          EXPECT_EQ(*std::min_element(y.begin(), y.end()), 0.0f) << "rows " << rows;
        }
      }
    }
  }
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
    alone.emplace_back(kRows * 128);
    ASSERT_TRUE((*kernel)->Run(inputs[t].data(), kRows, alone[t].data()).ok());
  }
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> y(kRows * 128);
      for (int i = 0; i < 200; ++i) {
        if (!(*kernel)->Run(inputs[t].data(), kRows, y.data()).ok() || y != alone[t]) {
          ++wrong[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
}

// oneDNN plans a primitive for the OpenMP width of the thread that makes
// it and runs it and its sgemm with the width of the thread that calls
// them: a model loaded on one thread and run on another must find one on
// both, or a pass takes both cores (and, measured, 5 to 50 times longer
// under load).
TEST(LinearKernel, ThreadsThatMakeAndRunKernelsUseOneOpenMpThread) {
  const Layer layer = RandomLinear(128, 128, true, 8);
  std::unique_ptr<LinearKernel> kernel;
  int width_at_make = 0, width_at_run = 0;
  std::thread([&] {
    auto made = LinearKernel::Create(layer, /*fuse_relu=*/false);
    ASSERT_TRUE(made.ok()) << made.status();
    kernel = std::move(*made);
    width_at_make = omp_get_max_threads();
  }).join();
  ASSERT_NE(kernel, nullptr);
  std::thread([&] {
    const std::vector<float> x = RandomRows(16, 128, 9);
    std::vector<float> y(16 * 128);
    ASSERT_TRUE(kernel->RunsPacked(16));
    ASSERT_TRUE(kernel->Run(x.data(), 16, y.data()).ok());
    width_at_run = omp_get_max_threads();
  }).join();
  int width_at_unpacked_run = 0;
  std::thread([&] {
    const std::vector<float> x = RandomRows(1, 128, 10);
    std::vector<float> y(128);
    ASSERT_FALSE(kernel->RunsPacked(1));
    ASSERT_TRUE(kernel->Run(x.data(), 1, y.data()).ok());
    width_at_unpacked_run = omp_get_max_threads();
  }).join();
  EXPECT_EQ(width_at_make, 1);
  EXPECT_EQ(width_at_run, 1);
  EXPECT_EQ(width_at_unpacked_run, 1);
}

}  // namespace
}  // namespace seqserve
