#include "core/text_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/model_file.h"

namespace seqserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kMammal[] = R"pb(
  # 3 inputs (limbs, lays eggs, has hair) -> 2 hidden -> 1 sigmoid output.
  input_width: 3
  layers { linear { in_features: 3 out_features: 2
                    weight: [1, 0, 0, 0, 1, -1] bias: [0.5, -0.5] } }
  layers { relu {} }
  layers { linear { in_features: 2 out_features: 1 weight: [2, -3] bias: 0.25 } }
  head: HEAD_SIGMOID
)pb";

void ExpectInvalid(const absl::StatusOr<std::unique_ptr<Sequential>>& result,
                   const std::string& fragment) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("mammal.textproto: "));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(fragment));
}

TEST(TextLoader, LoadsAHandWrittenModel) {
  auto model = ParseTextModel(kMammal, "mammal.textproto");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->default_head(), Head::kSigmoid);
  EXPECT_EQ((*model)->input_width(), 3);
  EXPECT_EQ((*model)->output_width(), 1);
  const float row[] = {4, 0, 1};
  EXPECT_THAT(*(*model)->Predict(row, 1, Head::kLogits), ElementsAre(9.25f));
}

TEST(TextLoader, EveryActivationKindLoadsWithTorchDefaults) {
  auto model = ParseTextModel(R"pb(
    input_width: 1
    layers { linear { in_features: 1 out_features: 1 weight: 1 } }
    layers { leaky_relu {} }
    layers { leaky_relu { negative_slope: 0.3 } }
    layers { elu {} }
    layers { elu { alpha: 0.5 } }
    layers { tanh {} }
    layers { sigmoid {} }
    layers { relu {} }
  )pb", "all.textproto");
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::string> names;
  for (const auto& layer : (*model)->layers()) names.push_back(layer.Describe());
  EXPECT_THAT(names, ElementsAre("Linear(1, 1, bias=False)", "LeakyReLU(0.01)",
                                 "LeakyReLU(0.3)", "ELU(1)", "ELU(0.5)", "Tanh",
                                 "Sigmoid", "ReLU"));
  EXPECT_EQ((*model)->default_head(), Head::kLogits);
}

TEST(TextLoader, TheNewerLayersLoadWithTorchDefaults) {
  auto model = ParseTextModel(R"pb(
    input_width: 2
    layers { linear { in_features: 2 out_features: 2 weight: [1, 0, 0, 1] } }
    layers { batch_norm { num_features: 2 weight: [1, 2] bias: [0, 1]
                          running_mean: [0, 0] running_var: [1, 1] } }
    layers { layer_norm { normalized_shape: 2 } }
    layers { gelu {} }
    layers { gelu { approximate: "tanh" } }
    layers { silu {} }
    layers { hardtanh {} }
    layers { relu_six {} }
    layers { prelu { weight: 0.25 } }
    layers { prelu { weight: [0.1, 0.2] } }
    layers { selu {} }
    layers { celu {} }
    layers { softplus {} }
    layers { softsign {} }
    layers { hardsigmoid {} }
    layers { hardswish {} }
    layers { mish {} }
    layers { dropout { p: 0.5 } }
    layers { identity {} }
    head: HEAD_LOG_SOFTMAX
  )pb", "all.textproto");
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::string> names;
  for (const auto& layer : (*model)->layers()) names.push_back(layer.Describe());
  EXPECT_THAT(names,
              ElementsAre("Linear(2, 2, bias=False)", "BatchNorm1d(2, eps=1e-05)",
                          "LayerNorm((2,), eps=1e-05, elementwise_affine=False)", "GELU",
                          "GELU(approximate='tanh')", "SiLU",
                          "Hardtanh(min_val=-1.0, max_val=1.0)", "ReLU6",
                          "PReLU(num_parameters=1)", "PReLU(num_parameters=2)", "SELU",
                          "CELU(alpha=1.0)", "Softplus(beta=1.0, threshold=20.0)", "Softsign",
                          "Hardsigmoid", "Hardswish", "Mish", "Dropout(p=0.5) (no-op at inference)",
                          "Identity (no-op at inference)"));
  EXPECT_TRUE((*model)->layers()[1].folded);
  EXPECT_EQ((*model)->default_head(), Head::kLogSoftmax);
}

// Dropout and Identity keep their places in the list, as print(model)
// numbers them, and change nothing: a BatchNorm1d after a Linear is still
// folded into it across a Dropout.
TEST(TextLoader, DropoutAndIdentityAreListedWhereTheSequentialHasThem) {
  auto model = ParseTextModel(R"pb(
    input_width: 2
    layers { linear { in_features: 2 out_features: 2 weight: [1, 0, 0, 1] bias: [0, 0] } }
    layers { dropout { p: 0.25 } }
    layers { batch_norm { num_features: 2 weight: [2, 3] bias: [1, -1]
                          running_mean: [0, 0] running_var: [1, 1] } }
    layers { identity {} }
    layers { relu {} }
    layers { dropout {} }
  )pb", "dropout.textproto");
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::string> names;
  for (const auto& layer : (*model)->layers()) names.push_back(layer.Describe());
  EXPECT_THAT(names, ElementsAre("Linear(2, 2)", "Dropout(p=0.25) (no-op at inference)",
                                 "BatchNorm1d(2, eps=1e-05)", "Identity (no-op at inference)",
                                 "ReLU", "Dropout (no-op at inference)"));
  EXPECT_TRUE((*model)->layers()[2].folded);
  EXPECT_EQ((*model)->ParameterCount(), 6u + 4u);
  const float row[] = {1.5f, 0.25f};
  EXPECT_THAT(*(*model)->Predict(row, 1, Head::kLogits),
              ElementsAre(::testing::FloatNear(4.0f, 1e-4f), 0.0f));
}

TEST(TextLoader, RefusesNewerLayersThatDoNotFit) {
  ExpectInvalid(ParseTextModel(R"pb(
    input_width: 2
    layers { linear { in_features: 2 out_features: 2 weight: [1, 0, 0, 1] } }
    layers { layer_norm { normalized_shape: 3 weight: [1, 1, 1] } }
  )pb", "mammal.textproto"), "LayerNorm((3,), eps=1e-05)): has 3 features but the row it gets has 2");
  ExpectInvalid(ParseTextModel(R"pb(
    input_width: 2
    layers { linear { in_features: 2 out_features: 2 weight: [1, 0, 0, 1] } }
    layers { gelu { approximate: "fast" } }
  )pb", "mammal.textproto"), "approximate 'fast' is not none or tanh");
  ExpectInvalid(ParseTextModel(R"pb(
    input_width: 2
    layers { linear { in_features: 2 out_features: 2 weight: [1, 0, 0, 1] } }
    layers { batch_norm { num_features: 3 weight: [1, 1] bias: [0, 0]
                          running_mean: [0, 0] running_var: [1, 1] } }
  )pb", "mammal.textproto"), "num_features is 3 but running_var holds 2 values");
  ExpectInvalid(ParseTextModel(R"pb(
    input_width: 2
    layers { linear { in_features: 2 out_features: 2 weight: [1, 0, 0, 1] } }
    layers { prelu { weight: [0.1, 0.2, 0.3] } }
  )pb", "mammal.textproto"), "has 3 slopes; needs one or one per feature (2)");
  ExpectInvalid(ParseTextModel(R"pb(
    input_width: 2
    layers { linear { in_features: 2 out_features: 2 weight: [1, 0, 0, 1] } }
    layers { hardtanh { min_val: 2 max_val: 1 } }
  )pb", "mammal.textproto"), "min_val is greater than max_val");
}

TEST(TextLoader, SyntaxErrorsGiveLineAndColumn) {
  ExpectInvalid(ParseTextModel("input_width: 3\nlayers { linaer {} }\n",
                               "mammal.textproto"),
                "line 2 column 17: Message type \"seqserve.v1.Layer\" has no "
                "field named \"linaer\"");
}

TEST(TextLoader, RefusesALayerWithoutAKind) {
  ExpectInvalid(ParseTextModel("input_width: 3\nlayers {}\n", "mammal.textproto"),
                "layer 0 names no kind");
}

TEST(TextLoader, RefusesWidthsThatDoNotChain) {
  ExpectInvalid(
      ParseTextModel(R"pb(
        input_width: 3
        layers { linear { in_features: 3 out_features: 2 weight: [1, 0, 0, 0, 1, -1] } }
        layers { linear { in_features: 3 out_features: 1 weight: [1, 1, 1] } }
      )pb", "mammal.textproto"),
      "expects 3 features but the previous layer gives 2");
}

TEST(TextLoader, RefusesNanWeights) {
  ExpectInvalid(
      ParseTextModel(R"pb(
        input_width: 1
        layers { linear { in_features: 1 out_features: 1 weight: nan } }
      )pb", "mammal.textproto"),
      "NaN or Inf");
}

TEST(TextLoader, RefusesAMissingInputWidth) {
  ExpectInvalid(ParseTextModel("layers { relu {} }", "mammal.textproto"),
                "input width must be 1 to");
}

TEST(TextLoader, LoadModelFileReadsTextprotoFiles) {
  const std::string path = ::testing::TempDir() + "/mammal.textproto";
  std::ofstream(path) << kMammal;
  auto model = LoadModelFile(path);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->output_width(), 1);
  std::remove(path.c_str());

  auto missing = LoadModelFile(::testing::TempDir() + "/absent.textproto");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto unknown = LoadModelFile("model.h5");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("model.h5: unknown model file type"));
}

}  // namespace
}  // namespace seqserve
