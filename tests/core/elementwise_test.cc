// The elementwise layer (arithmetic with constants, as a normalisation
// module written in PyTorch exports): its steps' float32 bits, its
// gradient, its checks, the text format, and the models of
// tests/data/reference/normalize/ against numpy's step-by-step numbers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/layer.h"
#include "core/model_file.h"
#include "core/sequential.h"
#include "core/text_loader.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Json = nlohmann::json;

ElementwiseStep Step(ElementwiseOp op, std::vector<float> values, bool constant_first = false) {
  ElementwiseStep step;
  step.op = op;
  step.values = std::move(values);
  step.constant_first = constant_first;
  return step;
}

ElementwiseStep Reciprocal() { return Step(ElementwiseOp::kReciprocal, {}); }

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// The float32 each step gives, written out: what torch's kernels compute.
TEST(Elementwise, EachStepRoundsToFloatAsTorchDoes) {
  const std::vector<float> mean = {0.1f, -2.5f, 3.0f};
  const std::vector<float> std = {0.3f, 1.7f, 7.0f};
  Layer layer = Layer::Elementwise({Step(ElementwiseOp::kSub, mean),
                                    Step(ElementwiseOp::kDiv, std),
                                    Step(ElementwiseOp::kMul, {0.7f}),
                                    Step(ElementwiseOp::kAdd, {-0.125f}),
                                    Step(ElementwiseOp::kSub, {10.0f}, true),
                                    Reciprocal(),
                                    Step(ElementwiseOp::kDiv, {3.0f}, true)});
  const std::vector<float> rows = {1.0f, 2.0f, 3.0f, -0.3f, 1e-3f, 1e7f};
  std::vector<float> values = rows;
  RunActivation(layer, values.data(), 2, 3);
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t c = i % 3;
    volatile float v = rows[i];  // one rounding per step, nothing fused
    v = v - mean[c];
    v = v / std[c];
    v = v * 0.7f;
    v = v + -0.125f;
    v = 10.0f - v;
    v = 1.0f / v;
    v = 3.0f / v;
    EXPECT_TRUE(SameBits(values[i], v)) << i << ": " << values[i] << " vs " << v;
  }
  // Folding (x - m) / s into x * (1 / s) + (-m / s) changes bits: the
  // layer must not, and this row shows the difference exists.
  const float x = 1.7f, m = 0.3f, s = 0.7f;
  std::vector<float> one = {x};
  RunActivation(Layer::Elementwise({Step(ElementwiseOp::kSub, {m}),
                                    Step(ElementwiseOp::kDiv, {s})}),
                one.data(), 1, 1);
  volatile float folded_scale = 1.0f / s;
  volatile float folded_shift = -m / s;
  volatile float folded = x * folded_scale;
  folded = folded + folded_shift;
  volatile float stepwise = x - m;
  stepwise = stepwise / s;
  EXPECT_TRUE(SameBits(one[0], stepwise));
  EXPECT_FALSE(SameBits(folded, stepwise)) << "pick values whose folding rounds differently";
}

TEST(Elementwise, DescribesItsStepsAsAnExpression) {
  EXPECT_EQ(Layer::Elementwise({Step(ElementwiseOp::kSub, {1, 2, 3, 4}),
                                Step(ElementwiseOp::kDiv, {1, 2, 3, 4})})
                .Describe(),
            "Elementwise((x - c[4]) / c[4])");
  EXPECT_EQ(Layer::Elementwise({Step(ElementwiseOp::kSub, {10.0f}, true), Reciprocal(),
                                Step(ElementwiseOp::kMul, {0.5f})})
                .Describe(),
            "Elementwise((1 / (10.0 - x)) * 0.5)");
  const Layer layer = Layer::Elementwise({Step(ElementwiseOp::kAdd, {1, 2})});
  EXPECT_EQ(layer.in_features, 2);
  EXPECT_EQ(layer.out_features, 2);
  EXPECT_EQ(layer.ParameterCount(), 0u);  // constants are buffers, not parameters
  EXPECT_EQ(Layer::Elementwise({Step(ElementwiseOp::kMul, {2.0f})}).out_features, 0);
}

std::unique_ptr<Sequential> Model(std::vector<ElementwiseStep> steps) {
  // Elementwise on 3 features, then Linear(3, 2).
  auto model = Sequential::Create(
      3,
      {Layer::Elementwise(std::move(steps)),
       Layer::Linear(3, 2, {0.5f, -1.25f, 2.0f, 3.0f, 0.25f, -0.75f}, {0.1f, -0.2f})},
      Head::kLogits);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// d logit_t / d x_k = W[t][k] * d step(x_k) / d x_k, the step's derivative
// in closed form at the row's values.
TEST(Elementwise, GradientsFollowTheClosedForm) {
  const std::vector<float> w = {0.5f, -1.25f, 2.0f, 3.0f, 0.25f, -0.75f};
  const std::vector<float> mean = {0.5f, -1.0f, 2.0f};
  const std::vector<float> std = {2.0f, 0.25f, 4.0f};
  const std::vector<float> row = {1.5f, -2.0f, 4.0f};
  struct Case {
    const char* name;
    std::vector<ElementwiseStep> steps;
    double (*derivative)(double x, size_t k);
  };
  static const std::vector<float>* m = &mean;
  static const std::vector<float>* s = &std;
  const std::vector<Case> cases = {
      {"(x - m) / s",
       {Step(ElementwiseOp::kSub, mean), Step(ElementwiseOp::kDiv, std)},
       [](double, size_t k) { return 1.0 / (*s)[k]; }},
      {"x * s + m",
       {Step(ElementwiseOp::kMul, std), Step(ElementwiseOp::kAdd, mean)},
       [](double, size_t k) { return double{(*s)[k]}; }},
      {"m - x", {Step(ElementwiseOp::kSub, mean, true)}, [](double, size_t) { return -1.0; }},
      {"s / x",
       {Step(ElementwiseOp::kDiv, std, true)},
       [](double x, size_t k) { return -(*s)[k] / (x * x); }},
      {"1 / (x + 10)",
       {Step(ElementwiseOp::kAdd, {10.0f}), Reciprocal()},
       [](double x, size_t) { return -1.0 / ((x + 10.0) * (x + 10.0)); }},
      {"1 / (x - m) * 2",
       {Step(ElementwiseOp::kSub, mean), Reciprocal(), Step(ElementwiseOp::kMul, {2.0f})},
       [](double x, size_t k) {
         const double d = x - (*m)[k];
         return -2.0 / (d * d);
       }},
  };
  for (const Case& c : cases) {
    auto model = Model(c.steps);
    ASSERT_NE(model, nullptr) << c.name;
    for (int target : {0, 1}) {
      float score = 0.0f;
      std::vector<double> gradient(3);
      ASSERT_TRUE((*model)
                      .ScoreGradients(row, 1, Head::kLogits, std::vector<int>{target},
                                      absl::MakeSpan(&score, 1), absl::MakeSpan(gradient))
                      .ok());
      for (size_t k = 0; k < 3; ++k) {
        const double want = w[target * 3 + k] * c.derivative(row[k], k);
        EXPECT_NEAR(gradient[k], want, 1e-6 * std::fabs(want) + 1e-12)
            << c.name << " target " << target << " feature " << k;
      }
    }
  }
}

// The gradient against central differences of the float model itself, on
// a model with a hidden layer and arithmetic between the Linears.
TEST(Elementwise, GradientsMatchFiniteDifferences) {
  auto model = Sequential::Create(
      2,
      {Layer::Elementwise({Step(ElementwiseOp::kSub, {1.0f, -2.0f}),
                           Step(ElementwiseOp::kDiv, {3.0f, 0.5f})}),
       Layer::Linear(2, 3, {0.5f, -0.25f, 1.0f, 0.75f, -1.5f, 0.2f}, {0.0f, 0.1f, -0.1f}),
       Layer::Tanh(),
       Layer::Elementwise({Step(ElementwiseOp::kSub, {4.0f}, true), Reciprocal()}),
       Layer::Linear(3, 2, {1.0f, -2.0f, 0.5f, 0.3f, 0.7f, -1.1f}, {})},
      Head::kSoftmax);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<float> row = {0.8f, -1.3f};
  float score = 0.0f;
  std::vector<double> gradient(2);
  ASSERT_TRUE((*model)
                  ->ScoreGradients(row, 1, Head::kSoftmax, std::vector<int>{1},
                                   absl::MakeSpan(&score, 1), absl::MakeSpan(gradient))
                  .ok());
  for (size_t k = 0; k < 2; ++k) {
    const float h = 1e-2f;
    std::vector<float> up = row, down = row;
    up[k] += h;
    down[k] -= h;
    auto p_up = (*model)->Predict(up, 1, Head::kSoftmax);
    auto p_down = (*model)->Predict(down, 1, Head::kSoftmax);
    ASSERT_TRUE(p_up.ok() && p_down.ok());
    const double numeric = (double{(*p_up)[1]} - (*p_down)[1]) / (double{up[k]} - down[k]);
    EXPECT_NEAR(gradient[k], numeric, 2e-3 * std::fabs(numeric) + 1e-4) << "feature " << k;
  }
}

void ExpectRefused(std::vector<ElementwiseStep> steps, const std::string& fragment) {
  auto model = Sequential::Create(
      3, {Layer::Elementwise(std::move(steps)), Layer::Linear(3, 1, {1, 1, 1}, {})},
      Head::kLogits);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr(fragment));
}

TEST(Elementwise, CreateRefusesWhatCannotRun) {
  ExpectRefused({Step(ElementwiseOp::kDiv, {1.0f, 0.0f, 2.0f})},
                "divides by zero (value 1 of the constant)");
  ExpectRefused({Step(ElementwiseOp::kDiv, {-0.0f})}, "divides by zero");
  ExpectRefused({Step(ElementwiseOp::kSub, {1.0f, 2.0f})},
                "has 2 features but the row it gets has 3");
  ExpectRefused({Step(ElementwiseOp::kSub, {1.0f, 2.0f, 3.0f}),
                 Step(ElementwiseOp::kMul, {1.0f, 2.0f})},
                "step 1 (mul): holds 2 values; needs one or one per feature (3)");
  ExpectRefused({Step(ElementwiseOp::kAdd, {})}, "holds 0 values");
  ExpectRefused({Step(ElementwiseOp::kAdd, {NAN})}, "NaN or Inf");
  ExpectRefused({Step(ElementwiseOp::kMul, {INFINITY, 1.0f, 1.0f})}, "NaN or Inf");
  ExpectRefused({Step(ElementwiseOp::kReciprocal, {2.0f})}, "takes no constant");
  ExpectRefused({}, "has no steps");
  // A zero numerator is fine: 0 / x is 0.
  EXPECT_NE(Model({Step(ElementwiseOp::kDiv, {0.0f}, true)}), nullptr);
}

constexpr char kText[] = R"pb(
  input_width: 3
  layers { elementwise {
    steps { op: OP_SUB value: [0.5, -1, 2] }
    steps { op: div value: [2, 0.25, 4] }
    steps { op: OP_SUB value: 10 constant_first: true }
    steps { op: OP_RECIPROCAL }
  } }
  layers { linear { in_features: 3 out_features: 2
                    weight: [0.5, -1.25, 2, 3, 0.25, -0.75] bias: [0.1, -0.2] } }
)pb";

TEST(Elementwise, TextFormatGivesTheSameModelAsTheLayers) {
  auto text = ParseTextModel(kText, "norm.textproto");
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_EQ((*text)->layers().size(), 2u);
  EXPECT_EQ((*text)->layers()[0].Describe(), "Elementwise(1 / (10.0 - ((x - c[3]) / c[3])))");
  auto built = Model({Step(ElementwiseOp::kSub, {0.5f, -1.0f, 2.0f}),
                      Step(ElementwiseOp::kDiv, {2.0f, 0.25f, 4.0f}),
                      Step(ElementwiseOp::kSub, {10.0f}, true), Reciprocal()});
  const std::vector<float> rows = {1.5f, -2.0f, 4.0f, 0.0f, 7.0f, -3.5f};
  auto a = (*text)->Predict(rows, 2, Head::kLogits);
  auto b = built->Predict(rows, 2, Head::kLogits);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_TRUE(SameBits((*a)[i], (*b)[i])) << i;
}

TEST(Elementwise, TextFormatRefusesStepsWithoutAnOpOrValue) {
  auto no_op = ParseTextModel(R"pb(input_width: 1
    layers { elementwise { steps { value: 1 } } }
    layers { linear { in_features: 1 out_features: 1 weight: 1 } })pb",
                              "norm.textproto");
  ASSERT_FALSE(no_op.ok());
  EXPECT_THAT(std::string(no_op.status().message()),
              HasSubstr("norm.textproto: layer 0 (elementwise): step 0 names no op"));
  auto no_value = ParseTextModel(R"pb(input_width: 1
    layers { elementwise { steps { op: OP_MUL } } }
    layers { linear { in_features: 1 out_features: 1 weight: 1 } })pb",
                                 "norm.textproto");
  ASSERT_FALSE(no_value.ok());
  EXPECT_THAT(std::string(no_value.status().message()), HasSubstr("step 0 needs a value"));
  auto reciprocal_value = ParseTextModel(R"pb(input_width: 1
    layers { elementwise { steps { op: OP_RECIPROCAL value: 2 } } }
    layers { linear { in_features: 1 out_features: 1 weight: 1 } })pb",
                                         "norm.textproto");
  ASSERT_FALSE(reciprocal_value.ok());
  EXPECT_THAT(std::string(reciprocal_value.status().message()), HasSubstr("takes no value"));
  auto zero = ParseTextModel(R"pb(input_width: 1
    layers { elementwise { steps { op: OP_DIV value: 0 } } }
    layers { linear { in_features: 1 out_features: 1 weight: 1 } })pb",
                             "norm.textproto");
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("divides by zero"));
}

// ---------------------------------------------------------------------------
// tests/data/reference/normalize/: today's export form, numpy's numbers.

// The reference models; with `twin`, only those with a text twin (a
// CASE_const model shares CASE_init's twin).
std::vector<std::string> NormalizeFolders(bool twin = false) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(testing::ReferenceDir() + "/normalize")) {
    if (!entry.is_directory()) continue;
    if (twin && !fs::exists(entry.path() / "model.textproto")) continue;
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<float> Flat(const Json& rows) {
  std::vector<float> values;
  for (const auto& row : rows) {
    for (double v : row) values.push_back(static_cast<float>(v));
  }
  return values;
}

class NormalizeModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    folder_ = testing::ReferenceDir() + "/normalize/" + GetParam();
    std::ifstream file(folder_ + "/reference.json");
    ASSERT_TRUE(file) << folder_;
    reference_ = Json::parse(file);
  }

  // Every elementwise layer gives numpy's bits on its input rows, and the
  // whole model numpy's output (bit for bit with an identity Linear).
  void ExpectReference(const Sequential& model) {
    for (const auto& entry : reference_["elementwise"]) {
      const size_t index = entry["index"].get<size_t>();
      ASSERT_LT(index, model.layers().size());
      const Layer& layer = model.layers()[index];
      ASSERT_EQ(layer.kind, LayerKind::kElementwise) << layer.Describe();
      std::vector<float> values = Flat(entry["input"]);
      const std::vector<float> want = Flat(entry["output"]);
      const size_t rows = entry["input"].size();
      RunActivation(layer, values.data(), rows, values.size() / rows);
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_TRUE(SameBits(values[i], want[i]))
            << "layer " << index << " value " << i << ": " << values[i] << ", numpy gives "
            << want[i];
      }
    }
    const std::vector<float> inputs = Flat(reference_["inputs"]);
    const std::vector<float> want = Flat(reference_["output"]);
    auto got = model.Predict(inputs, reference_["inputs"].size(), Head::kLogits);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want.size());
    const bool exact = reference_["exact_output"].get<bool>();
    for (size_t i = 0; i < want.size(); ++i) {
      if (exact) {
        EXPECT_TRUE(SameBits((*got)[i], want[i])) << i << ": " << (*got)[i] << " vs " << want[i];
      } else {
        EXPECT_TRUE(testing::CloseToReference((*got)[i], want[i]))
            << i << ": " << (*got)[i] << " vs " << want[i];
      }
    }
  }

  std::string folder_;
  Json reference_;
};

TEST_P(NormalizeModel, OnnxGivesNumpysNumbers) {
  auto model = LoadModelFile(folder_ + "/model.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->tensor_names().input, "input");
  ExpectReference(**model);
}

class NormalizeTextTwin : public NormalizeModel {};

// The text twin lists the same layers and gives the ONNX file's bits.
TEST_P(NormalizeTextTwin, IsTheSameModel) {
  auto text = LoadModelFile(folder_ + "/model.textproto");
  ASSERT_TRUE(text.ok()) << text.status();
  auto onnx = LoadModelFile(folder_ + "/model.onnx");
  ASSERT_TRUE(onnx.ok()) << onnx.status();
  ExpectReference(**text);
  ASSERT_EQ((*text)->layers().size(), (*onnx)->layers().size());
  for (size_t i = 0; i < (*text)->layers().size(); ++i) {
    EXPECT_EQ((*text)->layers()[i].Describe(), (*onnx)->layers()[i].Describe());
  }
  const std::vector<float> inputs = Flat(reference_["inputs"]);
  auto a = (*text)->Predict(inputs, reference_["inputs"].size(), Head::kLogits);
  auto b = (*onnx)->Predict(inputs, reference_["inputs"].size(), Head::kLogits);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_TRUE(SameBits((*a)[i], (*b)[i])) << i;
}

INSTANTIATE_TEST_SUITE_P(Normalize, NormalizeModel, ::testing::ValuesIn(NormalizeFolders()));
INSTANTIATE_TEST_SUITE_P(Normalize, NormalizeTextTwin,
                         ::testing::ValuesIn(NormalizeFolders(/*twin=*/true)));

TEST(Elementwise, NormalizeSetListsTheLayersAsExported) {
  auto standardize =
      LoadModelFile(testing::ReferenceDir() + "/normalize/standardize_const/model.onnx");
  ASSERT_TRUE(standardize.ok()) << standardize.status();
  ASSERT_EQ((*standardize)->layers().size(), 4u);
  EXPECT_EQ((*standardize)->layers()[0].Describe(), "Elementwise((x - c[4]) / c[4])");
  EXPECT_EQ((*standardize)->layers()[1].Describe(), "Linear(4, 8)");
  auto between = LoadModelFile(testing::ReferenceDir() + "/normalize/between_init/model.onnx");
  ASSERT_TRUE(between.ok()) << between.status();
  ASSERT_EQ((*between)->layers().size(), 5u);
  EXPECT_EQ((*between)->layers()[2].Describe(), "Elementwise((x - c[6]) * c[6])");
  EXPECT_EQ((*between)->layers()[4].Describe(), "Elementwise(x / 1.5)");
  EXPECT_EQ((*between)->output_width(), 3);
  EXPECT_EQ(NormalizeFolders().size(), 12u);
}

}  // namespace
}  // namespace seqserve
