// Attributions against PyTorch autograd (tests/data/reference/explanations/,
// float64 references written by tests/data/make_explanation_references.py),
// and the properties each method has by definition.
#include "core/attribution.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/model_file.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using Json = nlohmann::json;
using testing::ReferenceDir;

// The reference set's tolerance, on double values.
bool Close(double actual, double expected) {
  return std::fabs(actual - expected) <= 1e-5 * std::fabs(expected) + 1e-6;
}

std::vector<std::string> ExplanationFiles() {
  std::vector<std::string> names;
  const std::filesystem::path dir = std::filesystem::path(ReferenceDir()) / "explanations";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ExplanationReferenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::ifstream file(std::filesystem::path(ReferenceDir()) / "explanations" /
                       (GetParam() + ".json"));
    ASSERT_TRUE(file) << GetParam();
    reference_ = Json::parse(file);
    auto model = LoadModelFile(
        (std::filesystem::path(ReferenceDir()) / reference_["model"].get<std::string>())
            .string());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    for (const auto& row : reference_["inputs"]) {
      for (double value : row) inputs_.push_back(static_cast<float>(value));
    }
    rows_ = reference_["inputs"].size();
    for (double value : reference_["baseline"]) baseline_.push_back(static_cast<float>(value));
  }

  Json reference_;
  std::unique_ptr<Sequential> model_;
  std::vector<float> inputs_;
  std::vector<float> baseline_;
  size_t rows_ = 0;
};

TEST_P(ExplanationReferenceTest, EveryMethodMatchesPyTorchAutograd) {
  ASSERT_EQ(model_->input_width(), reference_["feature_count"].get<int>());
  ASSERT_EQ(HeadName(model_->default_head()), reference_["default_head"].get<std::string>());
  ASSERT_FALSE(reference_["explanations"].empty());
  for (const Json& expected : reference_["explanations"]) {
    AttributionOptions options;
    options.method = *ParseAttributionMethod(expected["method"].get<std::string>());
    options.head = *ParseHeadName(expected["head"].get<std::string>());
    if (expected.contains("rule")) {
      options.rule = *ParseIntegrationRule(expected["rule"].get<std::string>());
      options.steps = expected["steps"].get<int>();
    }
    options.baseline = baseline_;
    const std::vector<int> targets = expected["targets"].get<std::vector<int>>();
    const std::string what = absl::StrCat(expected["method"].get<std::string>(), " ",
                                          expected.value("rule", ""), " under ",
                                          expected["head"].get<std::string>(), " of class ",
                                          targets[0], ", ...");
    auto result = Attribute(*model_, inputs_, rows_, targets, options);
    ASSERT_TRUE(result.ok()) << what << ": " << result.status();
    const size_t width = model_->input_width();
    for (size_t r = 0; r < rows_; ++r) {
      EXPECT_TRUE(Close(result->scores[r], expected["scores"][r].get<double>()))
          << what << " row " << r << " score " << result->scores[r] << " vs "
          << expected["scores"][r];
      for (size_t k = 0; k < width; ++k) {
        const double want = expected["attributions"][r][k].get<double>();
        EXPECT_TRUE(Close(result->values[r * width + k], want))
            << what << " row " << r << " feature " << k << ": " << result->values[r * width + k]
            << ", PyTorch gives " << want;
      }
      if (expected.contains("delta")) {
        // A difference of the float scores: as close as they are, by their size.
        const double scale = std::fabs(expected["scores"][r].get<double>()) +
                             std::fabs(expected["baseline_scores"][r].get<double>());
        EXPECT_LE(std::fabs(result->deltas[r] - expected["delta"][r].get<double>()),
                  1e-5 * scale + 1e-6)
            << what << " row " << r << " delta " << result->deltas[r] << " vs "
            << expected["delta"][r];
      }
    }
  }
}

// Whether every layer of the model has a continuous derivative: the
// integrand of integrated gradients is then smooth, and Gauss-Legendre
// converges fast. (At a ReLU's kink the gradient jumps, a step no
// quadrature rule integrates exactly: the references' own deltas at 50
// steps reach 0.46 of the score's change on such models.)
bool Smooth(const Sequential& model) {
  for (const Layer& layer : model.layers()) {
    switch (layer.kind) {
      case LayerKind::kLinear:
      case LayerKind::kTanh:
      case LayerKind::kSigmoid:
      case LayerKind::kBatchNorm:
      case LayerKind::kLayerNorm:
      case LayerKind::kGelu:
      case LayerKind::kSilu:
      case LayerKind::kMish:
      case LayerKind::kCelu:
      case LayerKind::kNoOp:
        continue;
      default:
        return false;
    }
  }
  return true;
}

INSTANTIATE_TEST_SUITE_P(Explanations, ExplanationReferenceTest,
                         ::testing::ValuesIn(ExplanationFiles()));

// Integrated gradients at 50 Gauss-Legendre steps on every smooth model of
// the reference set: the attributions sum to the score's change within
// 1e-3 of it.
TEST(Attribution, IntegratedGradientsAreCompleteAtFiftyStepsOnSmoothModels) {
  int smooth_models = 0;
  for (const std::string& name : ExplanationFiles()) {
    std::ifstream file(std::filesystem::path(ReferenceDir()) / "explanations" / (name + ".json"));
    const Json reference = Json::parse(file);
    auto model = LoadModelFile(
        (std::filesystem::path(ReferenceDir()) / reference["model"].get<std::string>()).string());
    ASSERT_TRUE(model.ok()) << model.status();
    if (!Smooth(**model)) continue;
    ++smooth_models;
    std::vector<float> inputs;
    for (const auto& row : reference["inputs"]) {
      for (double value : row) inputs.push_back(static_cast<float>(value));
    }
    const size_t rows = reference["inputs"].size();
    AttributionOptions options;
    options.head = (*model)->default_head();
    auto result = Attribute(**model, inputs, rows, {}, options);
    ASSERT_TRUE(result.ok()) << result.status();
    for (size_t r = 0; r < rows; ++r) {
      const double change = double{result->scores[r]} - result->baseline_scores[r];
      EXPECT_LE(std::fabs(result->deltas[r]), 1e-3 * std::fabs(change) + 1e-6)
          << name << " row " << r << " delta " << result->deltas[r] << " of a change " << change;
    }
  }
  // GELU, SiLU, Mish, CELU, LayerNorm with Tanh, ...: the check has models to check.
  EXPECT_GE(smooth_models, 6);
}

// A model whose body is one Linear: the gradient of class t's logit is W[t].
std::unique_ptr<Sequential> LinearModel() {
  auto model = Sequential::Create(
      3, {Layer::Linear(3, 2, {0.5f, -1.25f, 2.0f, 3.0f, 0.25f, -0.75f}, {0.1f, -0.2f})},
      Head::kSoftmax);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(*model);
}

TEST(Attribution, IntegratedGradientsOfALinearModelAreInputMinusBaselineTimesWeight) {
  auto model = LinearModel();
  const std::vector<float> row = {1.5f, -2.0f, 4.0f};
  for (IntegrationRule rule : {IntegrationRule::kGaussLegendre, IntegrationRule::kRiemannLeft,
                               IntegrationRule::kRiemannMiddle}) {
    AttributionOptions options;
    options.head = Head::kLogits;
    options.rule = rule;
    options.steps = 7;
    options.baseline = {0.5f, 1.0f, -1.0f};
    auto result = Attribute(*model, row, 1, std::vector<int>{1}, options);
    ASSERT_TRUE(result.ok()) << result.status();
    const float w[3] = {3.0f, 0.25f, -0.75f};
    for (int k = 0; k < 3; ++k) {
      // Exact but for the rounding of the rule's weights, which sum to one.
      const double want = (double{row[k]} - options.baseline[k]) * w[k];
      EXPECT_NEAR(result->values[k], want, 1e-14 * std::fabs(want))
          << IntegrationRuleName(rule) << " feature " << k;
    }
  }
}

TEST(Attribution, ShapleyValuesOfALinearModelAreInputMinusBaselineTimesWeight) {
  auto model = LinearModel();
  AttributionOptions options;
  options.method = AttributionMethod::kShapley;
  options.head = Head::kLogits;
  const std::vector<float> row = {1.5f, -2.0f, 4.0f};
  auto result = Attribute(*model, row, 1, std::vector<int>{0}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  const float w[3] = {0.5f, -1.25f, 2.0f};
  // The differences are of float logits: exact to float rounding.
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(result->values[k], row[k] * w[k], 1e-5);
}

TEST(Attribution, ShapleyValuesSumToTheScoreChange) {
  auto model = Sequential::Create(
      4,
      {Layer::Linear(4, 5, std::vector<float>(20, 0.3f), std::vector<float>(5, -0.1f)),
       Layer::Tanh(),
       Layer::Linear(5, 3, {1, -1, 0.5f, 2, 0, 0, 1, 1, -2, 0.5f, 0.25f, 0, 0, 3, -1},
                     {0, 0, 0})},
      Head::kSoftmax);
  ASSERT_TRUE(model.ok());
  AttributionOptions options;
  options.method = AttributionMethod::kShapley;
  options.head = Head::kSoftmax;
  const std::vector<float> rows = {1, 2, 3, 4, -1, 0.5f, 0, 2};
  auto result = Attribute(**model, rows, 2, {}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  for (size_t r = 0; r < 2; ++r) {
    double sum = 0.0;
    for (size_t k = 0; k < 4; ++k) sum += result->values[r * 4 + k];
    EXPECT_NEAR(sum, double{result->scores[r]} - result->baseline_scores[r], 1e-9);
  }
}

TEST(Attribution, GaussLegendreIsExactForPolynomialsUpToDegreeTwoNMinusOne) {
  for (int n : {1, 2, 5, 50}) {
    const QuadraturePoints points = Quadrature(IntegrationRule::kGaussLegendre, n);
    ASSERT_EQ(points.alphas.size(), static_cast<size_t>(n));
    EXPECT_TRUE(std::is_sorted(points.alphas.begin(), points.alphas.end()));
    for (int degree = 0; degree < 2 * n; ++degree) {
      double integral = 0.0;
      for (int i = 0; i < n; ++i) integral += points.weights[i] * std::pow(points.alphas[i], degree);
      EXPECT_NEAR(integral, 1.0 / (degree + 1), 1e-13) << n << " points, degree " << degree;
    }
  }
}

TEST(Attribution, RiemannRulesUseCaptumsPointsAndWeights) {
  const QuadraturePoints left = Quadrature(IntegrationRule::kRiemannLeft, 4);
  EXPECT_EQ(left.alphas, (std::vector<double>{0.0, 0.25, 0.5, 0.75}));
  const QuadraturePoints right = Quadrature(IntegrationRule::kRiemannRight, 4);
  EXPECT_EQ(right.alphas, (std::vector<double>{0.25, 0.5, 0.75, 1.0}));
  const QuadraturePoints middle = Quadrature(IntegrationRule::kRiemannMiddle, 4);
  EXPECT_EQ(middle.alphas, (std::vector<double>{0.125, 0.375, 0.625, 0.875}));
  EXPECT_EQ(middle.weights, (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
  // Captum's trapezoid: every step 1/n, halved at the two ends.
  const QuadraturePoints trapezoid = Quadrature(IntegrationRule::kRiemannTrapezoid, 5);
  EXPECT_EQ(trapezoid.alphas, (std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0}));
  EXPECT_EQ(trapezoid.weights, (std::vector<double>{0.1, 0.2, 0.2, 0.2, 0.1}));
}

TEST(Attribution, ARowGetsTheSameAttributionsAloneOrAmongOthers) {
  auto model = Sequential::Create(
      3, {Layer::Linear(3, 8, std::vector<float>(24, 0.2f), std::vector<float>(8, 0.1f)),
          Layer::Gelu(false), Layer::LayerNorm(8, {}, {}, 1e-5f),
          Layer::Linear(8, 2, {1, 0, -1, 0, 1, 0, -1, 0.5f, 0, 1, 0, -1, 0, 1, 0, 2}, {0, 0})},
      Head::kSoftmax);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<float> row = {0.3f, -1.0f, 2.0f};
  std::vector<float> many;
  for (int copy = 0; copy < 9; ++copy) {
    for (float v : row) many.push_back(v + (copy == 4 ? 0.0f : static_cast<float>(copy)));
  }
  for (AttributionMethod method : {AttributionMethod::kSaliency,
                                   AttributionMethod::kIntegratedGradients,
                                   AttributionMethod::kShapley}) {
    AttributionOptions options;
    options.method = method;
    options.head = Head::kSoftmax;
    auto alone = Attribute(**model, row, 1, std::vector<int>{1}, options);
    auto among = Attribute(**model, many, 9, std::vector<int>(9, 1), options);
    ASSERT_TRUE(alone.ok() && among.ok());
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(alone->values[k], among->values[4 * 3 + k]) << AttributionMethodName(method);
    }
  }
}

TEST(Attribution, PredictedClassIsTheDefaultTarget) {
  auto model = LinearModel();
  const std::vector<float> rows = {1, 0, 0, 0, 0, 1};  // logits favour 1, then 0
  auto result = Attribute(*model, rows, 2, {}, AttributionOptions{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->targets, (std::vector<int>{1, 0}));
}

TEST(Attribution, BinaryModelsExplainBothClassesWithOppositeSigns) {
  auto model = Sequential::Create(2, {Layer::Linear(2, 1, {2.0f, -1.0f}, {0.5f})},
                                  Head::kSigmoid);
  ASSERT_TRUE(model.ok());
  AttributionOptions options;
  options.method = AttributionMethod::kInputXGradient;
  options.head = Head::kSigmoid;
  const std::vector<float> row = {1.0f, 3.0f};
  auto one = Attribute(**model, row, 1, std::vector<int>{1}, options);
  auto zero = Attribute(**model, row, 1, std::vector<int>{0}, options);
  ASSERT_TRUE(one.ok() && zero.ok());
  const double p = 1.0 / (1.0 + std::exp(-(2.0 - 3.0 + 0.5)));
  EXPECT_NEAR(one->values[0], 1.0 * 2.0 * p * (1 - p), 1e-9);
  EXPECT_NEAR(zero->values[1], -(3.0 * -1.0 * p * (1 - p)), 1e-9);
  EXPECT_FLOAT_EQ(one->scores[0] + zero->scores[0], 1.0f);
}

TEST(Attribution, RefusesWhatItCannotComputeWithTheReason) {
  auto model = LinearModel();
  const std::vector<float> row = {1, 2, 3};
  AttributionOptions options;
  options.steps = 0;
  EXPECT_EQ(Attribute(*model, row, 1, {}, options).status().message(),
            "steps must be 1 to 1024 for gausslegendre, got 0 (a Riemann rule takes up to 4096)");
  options.steps = 1;
  options.rule = IntegrationRule::kRiemannTrapezoid;
  EXPECT_EQ(Attribute(*model, row, 1, {}, options).status().message(),
            "steps must be 2 to 4096 for riemann_trapezoid, got 1");
  options = AttributionOptions{};
  options.baseline = {1, 2};
  EXPECT_EQ(Attribute(*model, row, 1, {}, options).status().message(),
            "the baseline has 2 values, the model takes 3");
  options.baseline = {1, NAN, 2};
  EXPECT_EQ(Attribute(*model, row, 1, {}, options).status().message(),
            "the baseline holds NaN or Inf");
  options = AttributionOptions{};
  EXPECT_EQ(Attribute(*model, row, 1, std::vector<int>{2}, options).status().message(),
            "class 2 is not one of the model's 2 classes");

  auto wide = Sequential::Create(17, {Layer::Linear(17, 2, std::vector<float>(34, 0.1f), {})},
                                 Head::kSoftmax);
  ASSERT_TRUE(wide.ok());
  options.method = AttributionMethod::kShapley;
  const auto status = Attribute(**wide, std::vector<float>(17, 1.0f), 1, {}, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "exact Shapley values evaluate 2^n coalitions: at most 16 features, and this model "
            "has 17; use integrated_gradients");

  auto binary = Sequential::Create(2, {Layer::Linear(2, 1, {1, 1}, {})}, Head::kSigmoid);
  ASSERT_TRUE(binary.ok());
  options = AttributionOptions{};
  options.head = Head::kSoftmax;
  EXPECT_EQ(Attribute(**binary, std::vector<float>{1, 2}, 1, {}, options).status().message(),
            "softmax of one output is always the same value: explain logits or sigmoid");
}

TEST(Attribution, CostIsCountedInRowsOfEvaluations) {
  auto model = LinearModel();
  AttributionOptions options;
  options.method = AttributionMethod::kSaliency;
  EXPECT_EQ(EvaluationsPerRow(*model, options), 1u);
  options.method = AttributionMethod::kIntegratedGradients;
  options.steps = 50;
  EXPECT_EQ(EvaluationsPerRow(*model, options), 50u);
  options.method = AttributionMethod::kShapley;
  EXPECT_EQ(EvaluationsPerRow(*model, options), 8u);
}

TEST(Attribution, NamesRoundTrip) {
  for (const char* name : {"saliency", "input_x_gradient", "integrated_gradients", "shapley"}) {
    ASSERT_TRUE(ParseAttributionMethod(name).has_value()) << name;
    EXPECT_EQ(AttributionMethodName(*ParseAttributionMethod(name)), name);
  }
  for (const char* name : {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                           "riemann_trapezoid"}) {
    ASSERT_TRUE(ParseIntegrationRule(name).has_value()) << name;
    EXPECT_EQ(IntegrationRuleName(*ParseIntegrationRule(name)), name);
  }
  EXPECT_FALSE(ParseAttributionMethod("lime").has_value());
  EXPECT_FALSE(ParseIntegrationRule("simpson").has_value());
}

}  // namespace
}  // namespace seqserve
