#include "core/sequential.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <thread>

#include "core/onnx_loader.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The lesson's mammal classifier by hand: 3 inputs -> 2 hidden -> 1 output.
std::unique_ptr<Sequential> TinyModel(Head head = Head::kSigmoid) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(3, 2, {1, 0, 0, 0, 1, -1}, {0.5f, -0.5f}));
  layers.push_back(Layer::Relu());
  layers.push_back(Layer::Linear(2, 1, {2, -3}, {0.25f}));
  auto model = Sequential::Create(3, std::move(layers), head);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(*model);
}

void ExpectInvalid(const absl::StatusOr<std::unique_ptr<Sequential>>& result,
                   const std::string& fragment) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(fragment));
}

TEST(Sequential, ComputesLinearReluLinear) {
  auto model = TinyModel();
  // Row {4, 0, 1}: hidden = relu({4.5, -1.5}) = {4.5, 0}; logit = 9.25.
  // Row {0, 2, 1}: hidden = relu({0.5, 0.5}); logit = 1 - 1.5 + 0.25 = -0.25.
  const std::vector<float> rows = {4, 0, 1, 0, 2, 1};
  auto logits = model->Predict(rows, 2, Head::kLogits);
  ASSERT_TRUE(logits.ok());
  EXPECT_THAT(*logits, ElementsAre(9.25f, -0.25f));
  auto probabilities = model->Predict(rows, 2, Head::kSigmoid);
  ASSERT_TRUE(probabilities.ok());
  EXPECT_FLOAT_EQ((*probabilities)[0], 1.0f / (1.0f + std::exp(-9.25f)));
  EXPECT_EQ(model->ParameterCount(), 6u + 2u + 2u + 1u);
  EXPECT_EQ(model->layers()[0].Describe(), "Linear(3, 2)");
}

TEST(Sequential, LinearWithoutBias) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(2, 1, {1, 2}, {}));
  auto model = Sequential::Create(2, std::move(layers), Head::kLogits);
  ASSERT_TRUE(model.ok());
  const float row[] = {3, 4};
  EXPECT_THAT(*(*model)->Predict(row, 1, Head::kLogits), ElementsAre(11.0f));
  EXPECT_EQ((*model)->layers()[0].Describe(), "Linear(2, 1, bias=False)");
}

TEST(Sequential, ActivationBeforeTheFirstLinearLeavesTheInputAlone) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Relu());
  layers.push_back(Layer::Linear(2, 1, {1, 1}, {}));
  auto model = Sequential::Create(2, std::move(layers), Head::kLogits);
  ASSERT_TRUE(model.ok());
  const std::vector<float> row = {-3, 4};
  EXPECT_THAT(*(*model)->Predict(row, 1, Head::kLogits), ElementsAre(4.0f));
  EXPECT_THAT(row, ElementsAre(-3.0f, 4.0f));
}

TEST(Sequential, ActivationsAfterTheLastLinearApplyToTheOutput) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(1, 2, {1, -1}, {}));
  layers.push_back(Layer::Relu());
  auto model = Sequential::Create(1, std::move(layers), Head::kLogits);
  ASSERT_TRUE(model.ok());
  const float row[] = {2};
  EXPECT_THAT(*(*model)->Predict(row, 1, Head::kLogits), ElementsAre(2.0f, 0.0f));
}

TEST(Sequential, ZeroRowsIsAnEmptyAnswer) {
  auto model = TinyModel();
  auto out = model->Predict({}, 0, Head::kSigmoid);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->empty());
}

TEST(Sequential, APassAskedToStopEndsBetweenChunksOfRows) {
  // 4096 wide: the scratch budget holds 1024 rows, so 2050 rows run in
  // three chunks.
  constexpr int kWidth = 4096;
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(kWidth, 1, std::vector<float>(kWidth, 1.0f), {0.0f}));
  auto model = Sequential::Create(kWidth, std::move(layers), Head::kLogits);
  ASSERT_TRUE(model.ok()) << model.status();
  constexpr size_t kRows = 2050;
  const std::vector<float> rows(kRows * kWidth, 1.0f);
  std::vector<float> logits(kRows, -1.0f);
  int asked = 0;
  const absl::Status status = (*model)->Forward(rows, kRows, absl::MakeSpan(logits), [&] {
    ++asked;
    return true;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("after 1024 of 2050 rows"));
  EXPECT_EQ(asked, 1);  // not before the first chunk
  EXPECT_EQ(logits[0], static_cast<float>(kWidth));
  EXPECT_EQ(logits[1024], -1.0f);  // the second chunk never ran

  // Never asked to stop: the whole pass.
  ASSERT_TRUE((*model)->Forward(rows, kRows, absl::MakeSpan(logits), [] { return false; }).ok());
  EXPECT_EQ(logits[kRows - 1], static_cast<float>(kWidth));
}

TEST(Sequential, ForwardRefusesBuffersOfTheWrongSize) {
  auto model = TinyModel();
  const std::vector<float> rows = {1, 2, 3, 4};
  std::vector<float> out(1);
  absl::Status status = model->Forward(rows, 1, absl::MakeSpan(out));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("got 4 feature values for 1 rows of 3"));
  status = model->Forward(absl::MakeConstSpan(rows).subspan(0, 3), 1,
                          absl::MakeSpan(out.data(), 0));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("need 1 rows of 1"));
}

TEST(Sequential, CreateRefusesWidthsThatDoNotChain) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(3, 2, std::vector<float>(6), {}));
  layers.push_back(Layer::Linear(4, 1, std::vector<float>(4), {}));
  ExpectInvalid(Sequential::Create(3, std::move(layers), Head::kLogits),
                "layer 1 (Linear(4, 1, bias=False)): expects 4 features but "
                "the previous layer gives 2");
}

TEST(Sequential, CreateRefusesAFirstLayerThatDoesNotFitTheInput) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(3, 2, std::vector<float>(6), {}));
  ExpectInvalid(Sequential::Create(4, std::move(layers), Head::kLogits),
                "expects 3 features but the input has 4");
}

TEST(Sequential, CreateRefusesWrongWeightAndBiasCounts) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(3, 2, std::vector<float>(5), {}));
  ExpectInvalid(Sequential::Create(3, std::move(layers), Head::kLogits),
                "weight has 5 values, expected 2 x 3 = 6");
  layers.clear();
  layers.push_back(Layer::Linear(3, 2, std::vector<float>(6), {1, 2, 3}));
  ExpectInvalid(Sequential::Create(3, std::move(layers), Head::kLogits),
                "bias has 3 values, expected 2");
}

TEST(Sequential, CreateRefusesNanAndInf) {
  std::vector<Layer> layers;
  layers.push_back(
      Layer::Linear(1, 1, {std::numeric_limits<float>::infinity()}, {}));
  ExpectInvalid(Sequential::Create(1, std::move(layers), Head::kLogits),
                "weights hold NaN or Inf");
  layers.clear();
  layers.push_back(Layer::Linear(1, 1, {1}, {}));
  layers.push_back(Layer::LeakyRelu(std::nanf("")));
  ExpectInvalid(Sequential::Create(1, std::move(layers), Head::kLogits),
                "parameter is NaN or Inf");
}

TEST(Sequential, CreateRefusesModelsWithoutALinearOrInput) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Relu());
  ExpectInvalid(Sequential::Create(2, std::move(layers), Head::kLogits),
                "at least one Linear layer");
  ExpectInvalid(Sequential::Create(0, {}, Head::kLogits),
                "input width must be 1 to");
  layers.clear();
  layers.push_back(Layer::Linear(0, 0, {}, {}));
  ExpectInvalid(Sequential::Create(1, std::move(layers), Head::kLogits),
                "must be 1 to 16777216");
}

// in -> hidden -> out, ReLU between; weights small and varied.
std::unique_ptr<Sequential> WideModel(int in, int hidden, int out) {
  std::vector<float> w1(static_cast<size_t>(hidden) * in), w2(static_cast<size_t>(out) * hidden);
  for (size_t i = 0; i < w1.size(); ++i) w1[i] = static_cast<float>(i % 7) * 0.01f - 0.02f;
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = static_cast<float>(i % 5) * 0.001f - 0.002f;
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(in, hidden, std::move(w1), {}));
  layers.push_back(Layer::Relu());
  layers.push_back(Layer::Linear(hidden, out, std::move(w2), {}));
  auto model = Sequential::Create(in, std::move(layers), Head::kLogits);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(*model);
}

// 1000 rows through a 2^20-wide layer once took 8 GiB of scratch per thread,
// kept forever; passes now run in chunks within the scratch budget.
TEST(Sequential, AWideModelRunsManyRowsWithinTheScratchBudget) {
  auto model = WideModel(3, 1 << 20, 3);
  const size_t rows = 1000;
  std::vector<float> features(rows * 3);
  for (size_t i = 0; i < features.size(); ++i) features[i] = static_cast<float>(i % 11) - 5.0f;
  std::vector<float> logits(rows * 3);
  ASSERT_TRUE(model->Forward(features, rows, absl::MakeSpan(logits)).ok());
  // The float32 activations' part (INT8 kernels run earlier in this
  // process keep buffers of their own).
  EXPECT_LE(Sequential::ThreadScratchBytes() - LinearKernel::ThreadInt8ScratchBytes(),
            2 * Sequential::kScratchBudgetBytes);
  // Chunking changes nothing: each row alone gives the same bits.
  for (size_t r : {size_t{0}, size_t{3}, size_t{4}, size_t{999}}) {
    std::vector<float> alone(3);
    ASSERT_TRUE(model->Forward(absl::MakeSpan(features).subspan(r * 3, 3), 1,
                               absl::MakeSpan(alone)).ok());
    for (int o = 0; o < 3; ++o) {
      EXPECT_EQ(std::memcmp(&logits[r * 3 + o], &alone[o], sizeof(float)), 0)
          << "row " << r << ": " << logits[r * 3 + o] << " in the call, " << alone[o] << " alone";
    }
  }
}

TEST(Sequential, ScratchBeyondTheBudgetIsFreedAfterThePass) {
  auto model = WideModel(1, 1 << 23, 1);  // one row: 2 x 32 MiB of scratch
  const float row[] = {1.0f};
  float logit = 0;
  ASSERT_TRUE(model->Forward(row, 1, absl::MakeSpan(&logit, 1)).ok());
  EXPECT_LE(Sequential::ThreadScratchBytes(), 2 * Sequential::kScratchBudgetBytes);
}

TEST(Sequential, CreateRefusesWidthsBeyondTheLimit) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(2, 1, {1, 1}, {}));
  ExpectInvalid(Sequential::Create(Sequential::kMaxWidth + 1, std::move(layers),
                                   Head::kLogits),
                "input width must be 1 to 16777216");
}

TEST(Sequential, ManyThreadsShareOneModel) {
  auto reference = testing::LoadReference("deep_tanh_leaky_elu");
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto model = LoadOnnxModel(reference->onnx_path);
  ASSERT_TRUE(model.ok()) << model.status();
  const Sequential& shared = **model;
  const size_t in = reference->input_width;
  const size_t out = reference->output_width;

  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int iteration = 0; iteration < 300; ++iteration) {
        // A random slice of the reference batch: sizes differ per call, so
        // the per-thread scratch grows and is reused.
        const size_t first = rng() % reference->rows;
        const size_t rows = 1 + rng() % (reference->rows - first);
        auto scores = shared.Predict(
            absl::MakeConstSpan(reference->inputs).subspan(first * in, rows * in),
            rows, Head::kSoftmax);
        if (!scores.ok() ||
            testing::FirstMismatch(*scores, absl::MakeConstSpan(reference->softmax)
                                                .subspan(first * out, rows * out)) != -1) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

}  // namespace
}  // namespace seqserve

namespace seqserve {
namespace {

// Each activation at the extremes a float row can reach: finite where torch
// is finite, and equal to torch's formula evaluated in double.
TEST(Activations, StayExactAtTheExtremes) {
  const std::vector<float> xs = {-1e30f, -1e4f, -100.0f, -20.5f, -3.0f, -1e-7f, 0.0f,
                                 1e-7f,  3.0f,  20.5f,   100.0f, 1e4f,  1e30f};
  const double sqrt_half = std::sqrt(0.5), beta = std::sqrt(2.0 / M_PI);
  auto softplus = [](double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); };
  const struct {
    Layer layer;
    std::function<double(double)> torch;
  } cases[] = {
      {Layer::Gelu(false), [&](double x) { return x * 0.5 * (1.0 + std::erf(x * sqrt_half)); }},
      {Layer::Gelu(true),
       [&](double x) {
         // x^3 of 1e30 overflows float but not double; torch's float kernel
         // then saturates tanh exactly as the double formula does.
         return 0.5 * x * (1.0 + std::tanh(beta * (x + 0.044715 * x * x * x)));
       }},
      {Layer::Silu(), [](double x) { return x / (1.0 + std::exp(-x)); }},
      {Layer::Mish(), [&](double x) { return x * std::tanh(std::log1p(std::exp(x))); }},
      {Layer::Softplus(1.0f, 20.0f), softplus},
      {Layer::Softplus(2.0f, 20.0f),
       [](double x) { return 2.0 * x > 20.0 ? x : std::log1p(std::exp(2.0 * x)) / 2.0; }},
      {Layer::Softsign(), [](double x) { return x / (1.0 + std::fabs(x)); }},
      {Layer::HardSwish(),
       [](double x) { return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0; }},
      {Layer::HardSigmoid(1.0f / 6.0f, 0.5f),
       [](double x) { return std::max(0.0, std::min(1.0, x / 6.0 + 0.5)); }},
      {Layer::Selu(),
       [](double x) {
         return x > 0 ? 1.0507009873554805 * x
                      : 1.0507009873554805 * 1.6732632423543772 * std::expm1(x);
       }},
      {Layer::Celu(0.7f), [](double x) { return x > 0 ? x : 0.7 * std::expm1(x / 0.7); }},
      {Layer::Hardtanh(-2.0f, 1.5f), [](double x) { return std::min(std::max(x, -2.0), 1.5); }},
  };
  for (const auto& c : cases) {
    std::vector<float> values = xs;
    RunActivation(c.layer, values.data(), 1, values.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      const double expected = c.torch(xs[i]);
      if (!std::isfinite(static_cast<float>(expected))) continue;  // beyond float range
      EXPECT_TRUE(std::isfinite(values[i])) << c.layer.Describe() << " at " << xs[i];
      EXPECT_TRUE(testing::CloseToReference(values[i], static_cast<float>(expected)))
          << c.layer.Describe() << " at " << xs[i] << ": " << values[i] << " vs " << expected;
    }
  }
}

// A row whose values are all equal has variance 0: eps keeps it finite.
TEST(Activations, LayerNormOfAConstantRowIsItsBias) {
  Layer norm = Layer::LayerNorm(3, {2.0f, 2.0f, 2.0f}, {0.5f, -0.5f, 1.0f}, 1e-5f);
  std::vector<float> row = {7.0f, 7.0f, 7.0f, 1.0f, 2.0f, 3.0f};
  RunActivation(norm, row.data(), 2, 3);
  EXPECT_THAT(std::vector<float>(row.begin(), row.begin() + 3), ElementsAre(0.5f, -0.5f, 1.0f));
  // (x - 2) / sqrt(2/3 + 1e-5) * 2 + bias
  const double rstd = 1.0 / std::sqrt(2.0 / 3.0 + 1e-5);
  EXPECT_NEAR(row[3], -rstd * 2 + 0.5, 1e-5);
  EXPECT_NEAR(row[4], -0.5, 1e-6);
  EXPECT_NEAR(row[5], rstd * 2 + 1.0, 1e-5);
}

}  // namespace
}  // namespace seqserve
