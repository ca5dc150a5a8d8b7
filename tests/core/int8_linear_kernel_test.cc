// The INT8 Linear kernel (core/linear_kernel_isa.h): each output is the
// documented arithmetic of ONNX Runtime's quantize_dynamic to the bit,
// computed here again from the formulas alone; the VNNI, AVX2 and plain
// bodies agree bit for bit; a row's bits do not depend on its batch; and the
// answers stay close to float32's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/linear_kernel.h"
#include "core/sequential.h"
#include "tests/support/random_layers.h"

namespace seqserve {
namespace {

using Isa = LinearKernel::Isa;

// Weights and bias uniform in [-1, 1].
Layer RandomLinear(int in, int out, unsigned seed) {
  return testing::RandomLinear(in, out, /*bias=*/true, seed);
}

// Rows mostly positive, some negative: the zero point varies.
std::vector<float> RandomRows(size_t rows, int width, unsigned seed) {
  return testing::RandomRows(rows, width, seed, 0.5f);
}

std::vector<float> Outputs(const LinearKernel& kernel, const float* x, size_t rows, int out) {
  std::vector<float> y(rows * out, -7.0f);
  kernel.Run(x, rows, y.data());
  return y;
}

std::unique_ptr<LinearKernel> MakeInt8(const Layer& layer, bool relu, Isa isa) {
  auto kernel = LinearKernel::Create(layer, relu, isa, Precision::kInt8);
  EXPECT_TRUE(kernel.ok()) << kernel.status();
  return kernel.ok() ? std::move(*kernel) : nullptr;
}

// One row through the formulas, step by step, in the types they name.
std::vector<float> Formula(const Layer& layer, const float* x, bool relu) {
  const int in = layer.in_features, out = layer.out_features;
  float low = 0, high = 0;
  for (int k = 0; k < in; ++k) {
    low = std::min(low, x[k]);
    high = std::max(high, x[k]);
  }
  const float x_scale = (high - low) / 255.0f;
  std::vector<int64_t> xq(in, 0);
  int64_t zero = 0;
  if (x_scale > 0) {
    zero = static_cast<int64_t>(std::clamp(std::nearbyint(0.0f - low / x_scale), 0.0f, 255.0f));
    for (int k = 0; k < in; ++k) {
      xq[k] = static_cast<int64_t>(std::clamp(
          std::nearbyint(x[k] / x_scale) + static_cast<float>(zero), 0.0f, 255.0f));
    }
  }
  std::vector<float> y(out);
  for (int o = 0; o < out; ++o) {
    float largest = 0;
    for (int k = 0; k < in; ++k) largest = std::max(largest, std::fabs(layer.weight[o * in + k]));
    const float w_scale = largest > 0 ? largest / 127.0f : 1.0f;
    int64_t sum = 0;
    for (int k = 0; k < in; ++k) {
      const int64_t q = static_cast<int64_t>(
          std::clamp(std::nearbyint(layer.weight[o * in + k] / w_scale), -127.0f, 127.0f));
      sum += (xq[k] - zero) * q;
    }
    const float scale = x_scale * w_scale;
    volatile float product = static_cast<float>(sum) * scale;  // rounded here, not fused
    const float value = product + layer.bias[o];
    y[o] = relu && value < 0 ? 0.0f : value;
  }
  return y;
}

// Every instruction set this CPU runs: plain x86-64's INT8 body, AVX2's
// and, on AVX-512, VNNI's when the CPU has it (else AVX2's again).
using testing::RunnableIsas;

// Equal bits, NaN included.
bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

TEST(Int8LinearKernel, EveryOutputIsTheFormulaBitForBit) {
  for (const auto& [in, out] : std::vector<std::pair<int, int>>{{3, 3}, {37, 50}, {130, 17}}) {
    const Layer layer = RandomLinear(in, out, 11 + in);
    const std::vector<float> x = RandomRows(9, in, 5 + out);
    for (Isa isa : RunnableIsas()) {
      for (bool relu : {false, true}) {
        auto kernel = MakeInt8(layer, relu, isa);
        ASSERT_NE(kernel, nullptr);
        const std::vector<float> y = Outputs(*kernel, x.data(), 9, out);
        for (size_t r = 0; r < 9; ++r) {
          const std::vector<float> expected = Formula(layer, x.data() + r * in, relu);
          for (int o = 0; o < out; ++o) {
            ASSERT_TRUE(SameBits(y[r * out + o], expected[o]))
                << LinearKernel::IsaName(isa) << " relu " << relu << " " << in << "x" << out
                << " row " << r << " output " << o << ": " << y[r * out + o] << " vs "
                << expected[o];
          }
        }
      }
    }
  }
}

// Halves round to even, on every body: with a row from 0 to 255 the step
// is 1, and 2.5, 3.5 and 100.5 are ties.
TEST(Int8LinearKernel, TiesRoundToEvenOnEveryBody) {
  const Layer layer = RandomLinear(7, 3, 17);
  const std::vector<float> x = {0, 255, 2.5f, 3.5f, 100.5f, -0.0f, 7};
  const std::vector<float> expected = Formula(layer, x.data(), false);
  for (Isa isa : RunnableIsas()) {
    auto kernel = MakeInt8(layer, false, isa);
    ASSERT_NE(kernel, nullptr);
    const std::vector<float> y = Outputs(*kernel, x.data(), 1, 3);
    for (int o = 0; o < 3; ++o) {
      EXPECT_TRUE(SameBits(y[o], expected[o])) << LinearKernel::IsaName(isa) << " " << o;
    }
  }
}

TEST(Int8LinearKernel, EveryBodyGivesTheSameBits) {
  const Layer layer = RandomLinear(785, 100, 3);
  const std::vector<float> x = RandomRows(67, 785, 4);
  auto plain = MakeInt8(layer, true, Isa::kGeneric);
  ASSERT_NE(plain, nullptr);
  const std::vector<float> expected = Outputs(*plain, x.data(), 67, 100);
  for (Isa isa : RunnableIsas()) {
    auto kernel = MakeInt8(layer, true, isa);
    ASSERT_NE(kernel, nullptr);
    const std::vector<float> y = Outputs(*kernel, x.data(), 67, 100);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_TRUE(SameBits(y[i], expected[i])) << LinearKernel::IsaName(isa) << " " << i;
    }
  }
  if (LinearKernel::BestIsa() == Isa::kAvx512 && !LinearKernel::HasVnni()) {
    GTEST_SKIP() << "this CPU has no AVX512_VNNI: its body was not run";
  }
}

TEST(Int8LinearKernel, ARowGivesTheSameBitsInEveryBatch) {
  const Layer layer = RandomLinear(70, 83, 8);
  auto kernel = MakeInt8(layer, false, LinearKernel::BestIsa());
  ASSERT_NE(kernel, nullptr);
  const size_t rows = 23;
  const std::vector<float> x = RandomRows(rows, 70, 9);
  const std::vector<float> together = Outputs(*kernel, x.data(), rows, 83);
  for (size_t first = 0; first < rows; first += 5) {
    const size_t count = std::min<size_t>(5 + first % 3, rows - first);
    const std::vector<float> part = Outputs(*kernel, x.data() + first * 70, count, 83);
    for (size_t i = 0; i < part.size(); ++i) {
      ASSERT_TRUE(SameBits(part[i], together[first * 83 + i])) << first << " " << i;
    }
  }
}

TEST(Int8LinearKernel, StaysCloseToFloat32) {
  const Layer layer = RandomLinear(256, 64, 21);
  auto int8 = MakeInt8(layer, false, LinearKernel::BestIsa());
  auto fp32 = LinearKernel::Create(layer, false);
  ASSERT_NE(int8, nullptr);
  ASSERT_TRUE(fp32.ok());
  const std::vector<float> x = RandomRows(40, 256, 22);
  const std::vector<float> a = Outputs(*int8, x.data(), 40, 64);
  const std::vector<float> b = Outputs(**fp32, x.data(), 40, 64);
  double largest = 0, error = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(b[i])));
    error = std::max(error, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  // 8 bits each side: errors of a few hundredths of the outputs' range.
  EXPECT_LT(error, 0.03 * largest) << error << " of " << largest;
  EXPECT_GT(error, 0.0);  // it is quantized
}

// A row of zeros gives the bias; a row that is not finite, or whose range
// is not (max - min beyond float32), NaN; on every body.
TEST(Int8LinearKernel, AZeroRowGivesTheBiasAndANonFiniteRowNan) {
  const Layer layer = RandomLinear(5, 4, 2);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {0, 0, 0, 0, 0,  1, inf, 2, 3, 4,  1, 2, 3, 4, 5,
                                -2e38f, 2e38f, 0, 1, 2};
  for (Isa isa : RunnableIsas()) {
    auto kernel = MakeInt8(layer, false, isa);
    ASSERT_NE(kernel, nullptr);
    const std::vector<float> y = Outputs(*kernel, x.data(), 4, 4);
    for (int o = 0; o < 4; ++o) {
      EXPECT_EQ(y[o], layer.bias[o]);
      EXPECT_TRUE(std::isnan(y[4 + o]));
      EXPECT_TRUE(std::isfinite(y[8 + o]));
      EXPECT_TRUE(std::isnan(y[12 + o])) << LinearKernel::IsaName(isa);
    }
  }
}

// Weights too small for a scale (largest / 127 underflows) quantize to
// zeros: the layer answers its bias.
TEST(Int8LinearKernel, WeightsTooSmallForAScaleAnswerTheBias) {
  const Layer layer = Layer::Linear(3, 2, {1e-44f, -1e-44f, 0, 0, 0, 0}, {0.5f, -0.25f});
  const std::vector<float> x = {1, 2, 3};
  for (Isa isa : RunnableIsas()) {
    auto kernel = MakeInt8(layer, false, isa);
    ASSERT_NE(kernel, nullptr);
    EXPECT_EQ(Outputs(*kernel, x.data(), 1, 2), (std::vector<float>{0.5f, -0.25f}))
        << LinearKernel::IsaName(isa);
  }
}

TEST(Int8LinearKernel, MoreInputsThanItsSumsHoldAreRefused) {
  const size_t in = LinearKernel::kMaxInt8Inputs + 1;
  const Layer layer = Layer::Linear(static_cast<int>(in), 1, std::vector<float>(in, 0.5f), {});
  auto kernel = LinearKernel::Create(layer, false, Precision::kInt8);
  ASSERT_FALSE(kernel.ok());
  EXPECT_EQ(kernel.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(kernel.status().message().find("at most 65536"), std::string::npos)
      << kernel.status();
}

TEST(Int8Sequential, AModelInInt8KeepsItsLayersAndAgreesOnTheClass) {
  std::vector<Layer> layers = {RandomLinear(20, 32, 1), Layer::Relu(), RandomLinear(32, 5, 2)};
  auto fp32 = Sequential::Create(20, layers, Head::kSoftmax);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  auto int8 = (*fp32)->WithPrecision(Precision::kInt8);
  ASSERT_TRUE(int8.ok()) << int8.status();
  EXPECT_EQ((*int8)->precision(), Precision::kInt8);
  EXPECT_EQ((*fp32)->precision(), Precision::kFp32);
  EXPECT_EQ((*int8)->ParameterCount(), (*fp32)->ParameterCount());
  const size_t rows = 200;
  const std::vector<float> x = RandomRows(rows, 20, 3);
  auto a = (*fp32)->Predict(x, rows, Head::kLogits);
  auto b = (*int8)->Predict(x, rows, Head::kLogits);
  ASSERT_TRUE(a.ok() && b.ok());
  int agree = 0;
  for (size_t r = 0; r < rows; ++r) {
    const auto top = [&](const std::vector<float>& y) {
      return std::max_element(y.begin() + r * 5, y.begin() + r * 5 + 5) - (y.begin() + r * 5);
    };
    agree += top(*a) == top(*b);
  }
  EXPECT_GE(agree, 190) << agree << " of " << rows;
  // Its quantized rows stay with the thread, counted as its scratch.
  EXPECT_GE(LinearKernel::ThreadInt8ScratchBytes(), rows * 20);
  EXPECT_GE(Sequential::ThreadScratchBytes(), LinearKernel::ThreadInt8ScratchBytes());
  // Gradients are of float32 models.
  std::vector<int> targets(rows, 0);
  std::vector<float> scores(rows);
  std::vector<double> gradients(rows * 20);
  const absl::Status refused =
      (*int8)->ScoreGradients(x, rows, Head::kLogits, targets, absl::MakeSpan(scores),
                              absl::MakeSpan(gradients));
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  // And back: the float32 layers were kept.
  auto back = (*int8)->WithPrecision(Precision::kFp32);
  ASSERT_TRUE(back.ok());
  auto c = (*back)->Predict(x, rows, Head::kLogits);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, *a);
}

}  // namespace
}  // namespace seqserve
