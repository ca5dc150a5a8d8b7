// The ONNX loader: what it accepts beyond the reference set, and every
// refusal with its status code and a message naming the problem.
#include "core/onnx_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "absl/strings/str_cat.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::OnnxBuilder;
using testing::SetFloat;
using testing::SetInt;
using testing::SmallClassifier;

constexpr float kSmallLogits[] = {6.0f, 13.36f};  // SmallClassifier at {1,2,3}

absl::StatusOr<std::unique_ptr<Sequential>> Parse(const OnnxBuilder& builder) {
  return ParseOnnxModel(builder.Serialize(), "test.onnx");
}

void ExpectSmallLogits(const Sequential& model) {
  const float row[] = {1, 2, 3};
  auto logits = model.Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ(logits->size(), 2u);
  EXPECT_NEAR((*logits)[0], kSmallLogits[0], 1e-5);
  EXPECT_NEAR((*logits)[1], kSmallLogits[1], 1e-5);
}

void ExpectRefused(const absl::StatusOr<std::unique_ptr<Sequential>>& result,
                   absl::StatusCode code, const std::string& fragment) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), code) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(fragment));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("test.onnx"));
}

TEST(OnnxLoader, AcceptsGemmWithTransposedWeights) {
  auto model = Parse(SmallClassifier());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->default_head(), Head::kSoftmax);
  ExpectSmallLogits(**model);
}

TEST(OnnxLoader, AcceptsEveryOpsetFrom7To23) {
  for (int opset = 7; opset <= 23; ++opset) {
    OnnxBuilder builder = SmallClassifier(opset);
    if (opset >= 18) builder.model().set_ir_version(10);  // as today's exporter writes
    auto model = Parse(builder);
    ASSERT_TRUE(model.ok()) << "opset " << opset << ": " << model.status();
    ExpectSmallLogits(**model);
  }
}

TEST(OnnxLoader, GemmWithoutTransBAlphaAndBetaFoldIntoTheLayer) {
  OnnxBuilder builder(2);
  // B is in x out = 2 x 1: y = alpha * (x . B) + beta * C.
  builder.Weight("w", {2, 1}, {1.0f, 2.0f}).Weight("c", {1}, {3.0f});
  auto* gemm = builder.Node("Gemm", {"features", "w", "c"}, {"scores"});
  SetFloat(gemm, "alpha", 2.0f);
  SetFloat(gemm, "beta", 0.5f);
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  const float row[] = {1.0f, 1.0f};
  auto out = (*model)->Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(out.ok());
  EXPECT_FLOAT_EQ((*out)[0], 2.0f * 3.0f + 0.5f * 3.0f);
}

TEST(OnnxLoader, MatMulThenAddIsALinearWithBias) {
  OnnxBuilder builder(3);
  // The first layer of SmallClassifier as MatMul (weights in x out) + Add.
  std::vector<float> w1(12), w2(8);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 3; ++j) w1[j * 4 + i] = 0.1f * (i * 3 + j + 1);
  }
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) w2[j * 2 + i] = 0.1f * (i * 4 + j + 1);
  }
  builder.Weight("w1", {3, 4}, w1).Weight("b1", {4}, {0.5f, 0.5f, 0.5f, 0.5f});
  builder.Weight("w2", {4, 2}, w2).Weight("b2", {2}, {0.5f, 0.5f});
  builder.Node("MatMul", {"features", "w1"}, {"m1"});
  builder.Node("Add", {"m1", "b1"}, {"h1"});
  builder.Node("Relu", {"h1"}, {"a1"});
  builder.Node("MatMul", {"a1", "w2"}, {"m2"});
  builder.Node("Add", {"b2", "m2"}, {"scores"});  // constant first works too
  builder.Output("scores", 2);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->default_head(), Head::kLogits);
  ExpectSmallLogits(**model);
}

TEST(OnnxLoader, MatMulWithoutBiasIsALinearWithoutBias) {
  OnnxBuilder builder(2);
  builder.Weight("w", {2, 1}, {1.0f, -1.0f});
  builder.Node("MatMul", {"features", "w"}, {"scores"});
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE((*model)->layers()[0].bias.empty());
  const float row[] = {5.0f, 2.0f};
  EXPECT_FLOAT_EQ((*(*model)->Predict(row, 1, Head::kLogits))[0], 3.0f);
}

TEST(OnnxLoader, IdentityDropoutAndFlattenAreNoOps) {
  OnnxBuilder builder(2);
  builder.Weight("w", {1, 2}, {1.0f, 1.0f});
  builder.Node("Flatten", {"features"}, {"f"});
  builder.Node("Identity", {"f"}, {"i"});
  SetInt(builder.Node("Gemm", {"i", "w"}, {"g"}), "transB", 1);
  builder.Node("Dropout", {"g"}, {"d"});
  builder.Node("Sigmoid", {"d"}, {"scores"});
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->layers().size(), 1u);
  EXPECT_EQ((*model)->default_head(), Head::kSigmoid);
}

std::vector<std::string> Described(const Sequential& model) {
  std::vector<std::string> out;
  for (const Layer& layer : model.layers()) out.push_back(layer.Describe());
  return out;
}

// torch 1.13's exporter names each node after its module ("/3/Gemm") and
// leaves no node for a Dropout or an Identity: the gap in the indices is
// listed as a no-op, so the list's indices are print(model)'s.
TEST(OnnxLoader, AModuleLeftOutOfTheGraphIsListedAtItsIndex) {
  OnnxBuilder builder(3);
  builder.Weight("w1", {4, 3}, std::vector<float>(12, 0.1f));
  builder.Weight("b1", {4}, std::vector<float>(4, 0.5f));
  builder.Weight("w2", {2, 4}, {0.1f, 0.2f, 0.3f, 0.4f, -0.1f, -0.2f, -0.3f, -0.4f});
  auto* gemm = builder.Node("Gemm", {"features", "w1", "b1"}, {"h"});
  SetInt(gemm, "transB", 1);
  gemm->set_name("/0/Gemm");
  builder.Node("Relu", {"h"}, {"r"})->set_name("/1/Relu");
  // (2) Dropout: no node.
  auto* last = builder.Node("Gemm", {"r", "w2"}, {"logits"});
  SetInt(last, "transB", 1);
  last->set_name("/3/Gemm");
  // (4) Dropout, (5) Identity: no node; (6) the head.
  builder.Node("Softmax", {"logits"}, {"scores"})->set_name("/6/Softmax");
  builder.Output("scores", 2);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string omitted = "Dropout or Identity (no-op at inference, not in the graph)";
  EXPECT_THAT(Described(**model),
              ::testing::ElementsAre("Linear(3, 4)", "ReLU", omitted, "Linear(4, 2, bias=False)", omitted,
                                     omitted));
  EXPECT_FALSE((*model)->layers()[2].Runs());
  EXPECT_EQ((*model)->ParameterCount(), 12u + 4u + 8u);
  EXPECT_EQ((*model)->default_head(), Head::kSoftmax);
  const float row[] = {1, 2, 3};
  auto logits = (*model)->Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const float hidden = 0.1f * 6 + 0.5f;  // every hidden unit
  EXPECT_NEAR((*logits)[0], hidden, 1e-6);
  EXPECT_NEAR((*logits)[1], -hidden, 1e-6);
}

TEST(OnnxLoader, NoOpNodesWithAnIndexAreListedAsThemselves) {
  OnnxBuilder builder(2);
  builder.Weight("w", {1, 2}, {1.0f, 1.0f});
  builder.Node("Flatten", {"features"}, {"f"})->set_name("/0/Flatten");
  builder.Node("Identity", {"f"}, {"i"})->set_name("/1/Identity");
  auto* gemm = builder.Node("Gemm", {"i", "w"}, {"g"});
  SetInt(gemm, "transB", 1);
  gemm->set_name("/3/Gemm");
  builder.Node("Dropout", {"g"}, {"d"})->set_name("/4/Dropout");
  builder.Node("Sigmoid", {"d"}, {"scores"})->set_name("/5/Sigmoid");
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(Described(**model),
              ::testing::ElementsAre("Flatten (no-op: rows are already flat)",
                                     "Identity (no-op at inference)",
                                     "Dropout or Identity (no-op at inference, not in the graph)",
                                     "Linear(2, 1, bias=False)", "Dropout (no-op at inference)"));
  EXPECT_EQ((*model)->default_head(), Head::kSigmoid);
  const float row[] = {2.0f, 3.0f};
  EXPECT_FLOAT_EQ((*(*model)->Predict(row, 1, Head::kLogits))[0], 5.0f);
}

// Names without an index (today's exporter, a nested Sequential, a graph
// written by hand) or indices that do not rise: the list stays the layers
// the graph computes.
TEST(OnnxLoader, WithoutModuleIndicesTheListIsTheGraphsLayers) {
  const std::vector<std::vector<std::string>> namings = {
      {"node_Gemm_2", "node_Relu_4", "node_Gemm_8"},  // today's exporter
      {"/net/0/Gemm", "/net/1/Relu", "/net/3/Gemm"},  // a Sequential inside a module
      {"/0/Gemm", "", "/3/Gemm"},                     // one node without
      {"/0/Gemm", "/3/Relu", "/2/Gemm"},              // not rising
      {"/0/Gemm", "/1/Relu", "/99999/Gemm"},          // beyond any Sequential
      {"/00/Gemm", "/1/Relu", "/3/Gemm"},
  };
  for (const auto& names : namings) {
    OnnxBuilder builder(2);
    builder.Weight("w", {2, 2}, {1, 0, 0, 1});
    auto* first = builder.Node("Gemm", {"features", "w"}, {"g"});
    SetInt(first, "transB", 1);
    first->set_name(names[0]);
    builder.Node("Relu", {"g"}, {"r"})->set_name(names[1]);
    auto* last = builder.Node("Gemm", {"r", "w"}, {"scores"});
    SetInt(last, "transB", 1);
    last->set_name(names[2]);
    builder.Output("scores", 2);
    auto model = Parse(builder);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_THAT(Described(**model),
                ::testing::ElementsAre("Linear(2, 2, bias=False)", "ReLU",
                                       "Linear(2, 2, bias=False)"))
        << names[0] << " " << names[1] << " " << names[2];
  }
}

TEST(OnnxLoader, HiddenActivationsKeepTheirParameters) {
  OnnxBuilder builder(2);
  builder.Weight("w", {2, 2}, {1, 0, 0, 1});
  SetInt(builder.Node("Gemm", {"features", "w"}, {"g"}), "transB", 1);
  SetFloat(builder.Node("LeakyRelu", {"g"}, {"l"}), "alpha", 0.2f);
  SetFloat(builder.Node("Elu", {"l"}, {"e"}), "alpha", 0.7f);
  builder.Node("Tanh", {"e"}, {"t"});
  builder.Node("Sigmoid", {"t"}, {"s"});
  SetInt(builder.Node("Gemm", {"s", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto& layers = (*model)->layers();
  ASSERT_EQ(layers.size(), 6u);
  EXPECT_EQ(layers[1].Describe(), "LeakyReLU(0.2)");
  EXPECT_EQ(layers[2].Describe(), "ELU(0.7)");
  EXPECT_EQ(layers[4].Describe(), "Sigmoid");  // hidden, not the head
  const float row[] = {-1.0f, 2.0f};
  auto out = (*model)->Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(out.ok());
  auto chain = [](float x) {
    x = x > 0 ? x : 0.2f * x;
    x = x > 0 ? x : 0.7f * std::expm1(x);
    x = std::tanh(x);
    return 1.0f / (1.0f + std::exp(-x));
  };
  EXPECT_NEAR((*out)[0], chain(-1.0f), 1e-6);
  EXPECT_NEAR((*out)[1], chain(2.0f), 1e-6);
}

TEST(OnnxLoader, ConstantNodesServeAsWeights) {
  OnnxBuilder builder(2);
  auto* constant = builder.Node("Constant", {}, {"w"});
  auto* value = constant->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  value->mutable_t()->add_dims(1);
  value->mutable_t()->add_dims(2);
  value->mutable_t()->add_float_data(2.0f);
  value->mutable_t()->add_float_data(3.0f);
  SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  const float row[] = {1.0f, 1.0f};
  EXPECT_FLOAT_EQ((*(*model)->Predict(row, 1, Head::kLogits))[0], 5.0f);
}

TEST(OnnxLoader, RefusesAMissingFile) {
  auto result = LoadOnnxModel("/nonexistent/model.onnx");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("/nonexistent/model.onnx"));
}

TEST(OnnxLoader, RefusesATruncatedFile) {
  const std::string bytes = testing::ReadReferenceBytes("species");
  ASSERT_GT(bytes.size(), 200u);
  ExpectRefused(ParseOnnxModel(bytes.substr(0, bytes.size() - 200), "test.onnx"),
                absl::StatusCode::kInvalidArgument, "not an ONNX model");
}

TEST(OnnxLoader, RefusesAFileThatIsNotOnnx) {
  ExpectRefused(ParseOnnxModel("name,limbs\ncat,4\n", "test.onnx"),
                absl::StatusCode::kInvalidArgument, "not an ONNX model");
  ExpectRefused(ParseOnnxModel("", "test.onnx"),
                absl::StatusCode::kInvalidArgument, "not an ONNX model");
}

TEST(OnnxLoader, RefusesAGraphTheCheckerRejects) {
  OnnxBuilder builder = SmallClassifier();
  builder.model().mutable_graph()->mutable_node(1)->set_input(0, "undefined");
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "ONNX checker");
}

TEST(OnnxLoader, RefusesAnUnsupportedOp) {
  OnnxBuilder builder(2);
  builder.Weight("w", {1, 2}, {1.0f, 1.0f});
  builder.Node("Abs", {"features"}, {"a"});
  SetInt(builder.Node("Gemm", {"a", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented,
                "node 'Abs_0' (Abs): op Abs is not supported");
}

TEST(OnnxLoader, RefusesABranchingGraph) {
  OnnxBuilder builder(2);
  builder.Weight("w", {1, 2}, {1.0f, 1.0f});
  builder.Node("Relu", {"features"}, {"r"});
  builder.Node("Tanh", {"features"}, {"t"});
  SetInt(builder.Node("Gemm", {"r", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "not a chain: tensor 'features' feeds 2 nodes");
  // Two activations side by side are no layer PyTorch has.
  EXPECT_THAT(std::string(Parse(builder).status().message()),
              ::testing::Not(HasSubstr("looks like")));
}

// Layers seqserve does not run, each as an exporter writes it between two
// Linears (h -> ... -> a): the refusal names the PyTorch layer and where
// the README says what to do.
struct UnsupportedForm {
  const char* name;
  const char* layer;
  int64_t opset;
  void (*build)(OnnxBuilder& b);  // reads "h", writes "a"
};

const UnsupportedForm kUnsupportedForms[] = {
    {"SoftshrinkTorch113", "nn.Softshrink", 13,
     [](OnnxBuilder& b) {
       b.Node("Greater", {"h", "lambd"}, {"gt"});
       b.Node("Sub", {"h", "lambd"}, {"minus"});
       b.Node("Where", {"gt", "minus", "zero"}, {"upper"});
       b.Node("Less", {"h", "neg_lambd"}, {"lt"});
       b.Node("Add", {"h", "lambd"}, {"plus"});
       b.Node("Where", {"lt", "plus", "zero"}, {"lower"});
       b.Node("Add", {"upper", "lower"}, {"a"});
     }},
    {"SoftshrinkOpset18", "nn.Softshrink", 18,
     [](OnnxBuilder& b) {
       b.Node("Abs", {"h"}, {"abs"});
       b.Node("Greater", {"abs", "lambd"}, {"outside"});
       b.Node("Sign", {"h"}, {"sign"});
       b.Node("Mul", {"sign", "lambd"}, {"shift"});
       b.Node("Sub", {"h", "shift"}, {"shifted"});
       b.Node("Mul", {"h", "zero"}, {"zeros"});
       b.Node("Where", {"outside", "shifted", "zeros"}, {"a"});
     }},
    {"HardshrinkTorch113", "nn.Hardshrink", 13,
     [](OnnxBuilder& b) {
       b.Node("Greater", {"h", "lambd"}, {"gt"});
       b.Node("Less", {"h", "neg_lambd"}, {"lt"});
       b.Node("Or", {"gt", "lt"}, {"outside"});
       b.Node("Where", {"outside", "h", "zero"}, {"a"});
     }},
    {"HardshrinkOpset18", "nn.Hardshrink", 18,
     [](OnnxBuilder& b) {
       b.Node("Abs", {"h"}, {"abs"});
       b.Node("LessOrEqual", {"abs", "lambd"}, {"inside"});
       b.Node("Where", {"inside", "zero", "h"}, {"a"});
     }},
    {"HardshrinkAsShrink", "nn.Hardshrink", 13,
     [](OnnxBuilder& b) { SetFloat(b.Node("Shrink", {"h"}, {"a"}), "lambd", 0.5f); }},
    {"SoftshrinkAsShrink", "nn.Softshrink", 13,
     [](OnnxBuilder& b) {
       onnx::NodeProto* shrink = b.Node("Shrink", {"h"}, {"a"});
       SetFloat(shrink, "lambd", 0.5f);
       SetFloat(shrink, "bias", 0.5f);
     }},
    {"ThresholdOpset18", "nn.Threshold", 18,
     [](OnnxBuilder& b) {
       b.Node("LessOrEqual", {"h", "lambd"}, {"below"});
       b.Node("Where", {"below", "zero", "h"}, {"a"});
     }},
    {"Tanhshrink", "nn.Tanhshrink", 13,
     [](OnnxBuilder& b) {
       b.Node("Tanh", {"h"}, {"t"});
       b.Node("Sub", {"h", "t"}, {"a"});
     }},
    {"Glu", "nn.GLU", 13,
     [](OnnxBuilder& b) {
       SetInt(b.Node("Split", {"h"}, {"first", "second"}), "axis", 1);
       b.Node("Sigmoid", {"second"}, {"gate"});
       b.Node("Mul", {"first", "gate"}, {"a"});
     }},
    {"LogSigmoid", "nn.LogSigmoid", 13,
     [](OnnxBuilder& b) {
       b.Node("Sigmoid", {"h"}, {"p"});
       b.Node("Log", {"p"}, {"a"});
     }},
    {"Softmin", "nn.Softmin", 13,
     [](OnnxBuilder& b) {
       b.Node("Neg", {"h"}, {"negated"});
       SetInt(b.Node("Softmax", {"negated"}, {"a"}), "axis", -1);
     }},
    {"Lstm", "nn.LSTM", 13,
     [](OnnxBuilder& b) {
       SetInt(b.Node("LSTM", {"h", "lambd", "lambd"}, {"a"}), "hidden_size", 2);
     }},
};

class UnsupportedLayer : public ::testing::TestWithParam<UnsupportedForm> {};

TEST_P(UnsupportedLayer, IsNamedWithTheReadmeSection) {
  const UnsupportedForm& form = GetParam();
  OnnxBuilder builder(2, form.opset);
  if (form.opset >= 18) builder.model().set_ir_version(10);
  builder.Weight("w1", {2, 2}, {1, 0, 0, 1});
  builder.Weight("w2", {1, 2}, {1, 1});
  builder.Weight("lambd", {}, {0.5f});
  builder.Weight("neg_lambd", {}, {-0.5f});
  builder.Weight("zero", {}, {0.0f});
  SetInt(builder.Node("Gemm", {"features", "w1"}, {"h"}), "transB", 1);
  form.build(builder);
  SetInt(builder.Node("Gemm", {"a", "w2"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  auto result = Parse(builder);
  ASSERT_FALSE(result.ok());
  const std::string message(result.status().message());
  EXPECT_THAT(message, HasSubstr(absl::StrCat("this looks like PyTorch's ", form.layer,
                                              ", which seqserve does not run")));
  EXPECT_THAT(message, HasSubstr("Layers seqserve does not run, and what to do until it does"));
  EXPECT_THAT(message, HasSubstr("test.onnx"));
}

INSTANTIATE_TEST_SUITE_P(Forms, UnsupportedLayer, ::testing::ValuesIn(kUnsupportedForms),
                         [](const ::testing::TestParamInfo<UnsupportedForm>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(OnnxLoader, AConvolutionIsNamedByItsRank) {
  OnnxBuilder builder(4);
  builder.Weight("kernel", {1, 1, 3}, {1, 1, 1});
  builder.Weight("w", {1, 2}, {1, 1});
  builder.Node("Conv", {"features", "kernel"}, {"c"});
  builder.Node("Flatten", {"c"}, {"flat"});
  SetInt(builder.Node("Gemm", {"flat", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented,
                "op Conv is not supported in a Sequential model; this looks like PyTorch's "
                "nn.Conv1d");
}

TEST(OnnxLoader, RefusesNodesOffTheChain) {
  OnnxBuilder builder = SmallClassifier();
  builder.Weight("extra_in", {2}, {1.0f, 2.0f});
  builder.Node("Relu", {"extra_in"}, {"dangling"});
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "is not on the chain");
}

TEST(OnnxLoader, RefusesLayersWhoseWidthsDoNotLineUp) {
  OnnxBuilder builder(3);
  builder.Weight("w1", {4, 3}, std::vector<float>(12, 0.1f));
  builder.Weight("w2", {2, 5}, std::vector<float>(10, 0.1f));
  SetInt(builder.Node("Gemm", {"features", "w1"}, {"h"}), "transB", 1);
  SetInt(builder.Node("Gemm", {"h", "w2"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "expects 5 features but the previous layer gives 4");
}

TEST(OnnxLoader, RefusesAFirstLayerThatDoesNotFitTheInput) {
  OnnxBuilder builder(3);
  builder.Weight("w", {2, 4}, std::vector<float>(8, 0.1f));
  SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "expects 4 features but the input has 3");
}

TEST(OnnxLoader, RefusesAnOutputWidthThatDisagreesWithTheLastLayer) {
  OnnxBuilder builder(3);
  builder.Weight("w", {2, 3}, std::vector<float>(6, 0.1f));
  SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 7);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "declares 7 values but the last layer gives 2");
}

TEST(OnnxLoader, RefusesAWeightThatIsNotAnInitializer) {
  OnnxBuilder builder(2);
  // A second graph input used as the weight: data, not a constant.
  auto* input = builder.model().mutable_graph()->add_input();
  input->set_name("w");
  auto* type = input->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  type->mutable_shape()->add_dim()->set_dim_value(1);
  type->mutable_shape()->add_dim()->set_dim_value(2);
  SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "graph has 2 data inputs");
}

TEST(OnnxLoader, RefusesAMissingInitializer) {
  OnnxBuilder builder(2);
  SetInt(builder.Node("Gemm", {"features", "w_missing"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "w_missing");
}

TEST(OnnxLoader, RefusesNonFloatWeights) {
  OnnxBuilder builder(2);
  auto* tensor = builder.model().mutable_graph()->add_initializer();
  tensor->set_name("w");
  tensor->set_data_type(onnx::TensorProto::DOUBLE);
  tensor->add_dims(1);
  tensor->add_dims(2);
  tensor->add_double_data(1.0);
  tensor->add_double_data(2.0);
  SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "initializer 'w' has data type DOUBLE; weights are float32, float16 or bfloat16");
}

TEST(OnnxLoader, RefusesNonFloatInput) {
  OnnxBuilder builder = SmallClassifier();
  builder.model().mutable_graph()->mutable_input(0)->mutable_type()
      ->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT64);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "inputs are float32, float16 or bfloat16");
}

TEST(OnnxLoader, RefusesNanAndInfWeights) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    OnnxBuilder builder(2);
    builder.Weight("w", {1, 2}, {1.0f, bad});
    SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
    builder.Output("scores", 1);
    ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                  "initializer 'w' holds NaN or Inf");
  }
}

TEST(OnnxLoader, RefusesWeightsWithTheWrongNumberOfValues) {
  OnnxBuilder builder(2);
  builder.Weight("w", {1, 2}, {1.0f, 2.0f, 3.0f});
  SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "holds 3 values for 2");
}

TEST(OnnxLoader, RefusesABiasOfTheWrongLength) {
  OnnxBuilder builder(2);
  builder.Weight("w", {2, 2}, {1, 2, 3, 4}).Weight("b", {3}, {1, 2, 3});
  SetInt(builder.Node("Gemm", {"features", "w", "b"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "bias 'b' does not match 2 outputs");
}

// A weight with a zero dim has zero elements, so no value count can give
// it away: [0, 2^62] once reached a 2^62-float allocation for its bias.
TEST(OnnxLoader, RefusesZeroElementWeightsWithHugeDims) {
  OnnxBuilder builder(2);
  builder.Weight("w", {0, int64_t{1} << 62}, {}).Weight("b", {1}, {0.5f});
  builder.Node("Gemm", {"features", "w", "b"}, {"scores"});
  builder.Output("scores");
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "initializer 'w' has shape [0, 4611686018427387904]");
}

TEST(OnnxLoader, RefusesNegativeAndOversizedWeightDims) {
  for (std::vector<int64_t> dims :
       {std::vector<int64_t>{-1, 2}, std::vector<int64_t>{2, int64_t{1} << 25},
        std::vector<int64_t>{1 << 20, 1 << 20}}) {
    OnnxBuilder builder(2);
    builder.Weight("w", dims, {1.0f, 2.0f});
    SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
    builder.Output("scores");
    ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                  "every dimension must be 1 to 16777216");
  }
}

// [N, 3, 6148914691236517206] once wrapped around to a width of 2.
TEST(OnnxLoader, RefusesInputDimsWhoseProductOverflows) {
  OnnxBuilder builder(3);
  auto* shape = builder.model().mutable_graph()->mutable_input(0)
                    ->mutable_type()->mutable_tensor_type()->mutable_shape();
  shape->add_dim()->set_dim_value(6148914691236517206);
  builder.Node("Flatten", {"features"}, {"flat"});
  builder.Weight("w", {2, 2}, {1, 2, 3, 4});
  SetInt(builder.Node("Gemm", {"flat", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "is wider than 16777216 features");
}

TEST(OnnxLoader, RefusesADirectoryNamedLikeAModel) {
  const std::string path = ::testing::TempDir() + "/dir_model.onnx";
  std::filesystem::create_directories(path);
  auto result = LoadOnnxModel(path);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("is a directory"));
  std::filesystem::remove(path);
}

TEST(OnnxLoader, RefusesSoftmaxOverAnotherAxis) {
  OnnxBuilder builder = SmallClassifier();
  SetInt(builder.model().mutable_graph()->mutable_node(3), "axis", 0);
  ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented,
                "softmax over axis 0");
}

TEST(OnnxLoader, RefusesOpsAfterSoftmax) {
  OnnxBuilder builder = SmallClassifier();
  auto* graph = builder.model().mutable_graph();
  graph->mutable_node(3)->set_output(0, "probabilities");
  builder.Node("Relu", {"probabilities"}, {"scores"});
  ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented,
                "Softmax must be the last op");
}

TEST(OnnxLoader, RefusesTransposedActivations) {
  OnnxBuilder builder = SmallClassifier();
  SetInt(builder.model().mutable_graph()->mutable_node(0), "transA", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented, "transA=1");
}

// An Add of a constant before the first Linear is not a bias: it is
// arithmetic on the features, as a normalisation module exports it.
TEST(OnnxLoader, AnAddBeforeTheFirstLinearIsAnElementwiseLayer) {
  OnnxBuilder builder(2);
  builder.Weight("w", {2, 2}, {1, 0, 0, 1}).Weight("b", {2}, {1, 1});
  builder.Node("Add", {"features", "b"}, {"a"});
  SetInt(builder.Node("Gemm", {"a", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ((*model)->layers().size(), 2u);
  EXPECT_EQ((*model)->layers()[0].Describe(), "Elementwise(x + c[2])");
  const float row[] = {2.0f, -3.0f};
  auto out = (*model)->Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0], 3.0f);
  EXPECT_EQ((*out)[1], -2.0f);
}

// (x - mean) / std before the first Linear, between layers and after the
// last one; the constants as initializers or Constant nodes, per feature
// or scalar, of shape [], [1], [width] or [1, width].
TEST(OnnxLoader, ArithmeticWithConstantsLoadsAnywhereInTheChain) {
  OnnxBuilder builder(3, 20);
  builder.model().set_ir_version(10);
  builder.Weight("mean", {3}, {1.0f, 2.0f, 3.0f}).Weight("std", {1, 3}, {2.0f, 4.0f, 8.0f});
  builder.Weight("w1", {2, 3}, {1, 0, 0, 0, 1, 1}).Weight("b1", {2}, {0.5f, -0.5f});
  builder.Weight("shift", {1}, {0.25f}).Weight("w2", {1, 2}, {1, -1});
  auto* constant = builder.Node("Constant", {}, {"temperature"});
  auto* value = constant->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  value->mutable_t()->add_float_data(2.0f);  // rank 0
  builder.Node("Sub", {"features", "mean"}, {"centered"});
  builder.Node("Div", {"centered", "std"}, {"scaled"});
  SetInt(builder.Node("Gemm", {"scaled", "w1", "b1"}, {"h"}), "transB", 1);
  builder.Node("Relu", {"h"}, {"r"});
  builder.Node("Add", {"r", "shift"}, {"shifted"});
  SetInt(builder.Node("Gemm", {"shifted", "w2"}, {"z"}), "transB", 1);
  builder.Node("Div", {"z", "temperature"}, {"scores"});
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::string> layers;
  for (const Layer& layer : (*model)->layers()) layers.push_back(layer.Describe());
  EXPECT_THAT(layers, ::testing::ElementsAre("Elementwise((x - c[3]) / c[3])", "Linear(3, 2)",
                                             "ReLU", "Elementwise(x + 0.25)",
                                             "Linear(2, 1, bias=False)", "Elementwise(x / 2.0)"));
  const float row[] = {3.0f, 6.0f, 11.0f};  // scaled: 1, 1, 1
  auto out = (*model)->Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(out.ok());
  // h = (1.5, 1.5), shifted (1.75, 1.75), z = 0, / 2 = 0.
  EXPECT_EQ((*out)[0], 0.0f);
  const float other[] = {1.0f, 2.0f, 3.0f};  // scaled 0: h = (0.5, -0.5) -> (0.75, 0.25)
  out = (*model)->Predict(other, 1, Head::kLogits);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0], 0.25f);
}

TEST(OnnxLoader, ConstantFirstSubDivAndReciprocalAreSteps) {
  OnnxBuilder builder(2, 20);
  builder.model().set_ir_version(10);
  builder.Weight("c", {2}, {10.0f, 20.0f}).Weight("two", {}, {2.0f});
  builder.Weight("w", {1, 2}, {1, 1});
  builder.Node("Sub", {"c", "features"}, {"a"});
  builder.Node("Reciprocal", {"a"}, {"b"});
  builder.Node("Div", {"two", "b"}, {"d"});
  SetInt(builder.Node("Gemm", {"d", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->layers()[0].Describe(), "Elementwise(2.0 / (1 / (c[2] - x)))");
  const float row[] = {6.0f, 4.0f};  // 2 / (1 / 4) + 2 / (1 / 16) = 8 + 32
  auto out = (*model)->Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0], 40.0f);
}

// torch 1.13's node names carry the module index: the steps of one module
// are one layer, steps of two modules two, and indices stay torch's.
TEST(OnnxLoader, StepsOfOneModuleAreOneLayer) {
  OnnxBuilder builder(2);
  builder.Weight("m", {2}, {1.0f, 2.0f}).Weight("s", {2}, {2.0f, 2.0f});
  builder.Weight("k", {}, {3.0f}).Weight("w", {1, 2}, {1, 1});
  builder.Node("Sub", {"features", "m"}, {"a"})->set_name("/0/Sub");
  builder.Node("Div", {"a", "s"}, {"b"})->set_name("/0/Div");
  builder.Node("Mul", {"b", "k"}, {"c"})->set_name("/1/Mul");
  auto* gemm = builder.Node("Gemm", {"c", "w"}, {"scores"});
  gemm->set_name("/3/Gemm");
  SetInt(gemm, "transB", 1);
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::string> layers;
  for (const Layer& layer : (*model)->layers()) layers.push_back(layer.Describe());
  EXPECT_THAT(layers, ::testing::ElementsAre(
                          "Elementwise((x - c[2]) / c[2])", "Elementwise(x * 3.0)",
                          "Dropout or Identity (no-op at inference, not in the graph)",
                          "Linear(2, 1, bias=False)"));
}

// A GELU window that starts with Div still matches after arithmetic.
TEST(OnnxLoader, ArithmeticLeavesAFollowingGeluWindowWhole) {
  OnnxBuilder builder(2);
  builder.Weight("m", {2}, {1.0f, 2.0f}).Weight("sqrt2", {}, {static_cast<float>(M_SQRT2)});
  builder.Weight("one", {}, {1.0f}).Weight("half", {}, {0.5f}).Weight("w", {1, 2}, {1, 1});
  builder.Node("Sub", {"features", "m"}, {"x"});
  builder.Node("Div", {"x", "sqrt2"}, {"d"});
  builder.Node("Erf", {"d"}, {"e"});
  builder.Node("Add", {"e", "one"}, {"p"});
  builder.Node("Mul", {"x", "p"}, {"xp"});
  builder.Node("Mul", {"xp", "half"}, {"g"});
  SetInt(builder.Node("Gemm", {"g", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  auto model = Parse(builder);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ((*model)->layers().size(), 3u);
  EXPECT_EQ((*model)->layers()[0].Describe(), "Elementwise(x - c[2])");
  EXPECT_EQ((*model)->layers()[1].Describe(), "GELU");
}

TEST(OnnxLoader, RefusesArithmeticWithoutAConstant) {
  {
    OnnxBuilder builder(2);
    builder.Weight("w", {1, 2}, {1, 1});
    auto* random = builder.Node("RandomNormal", {}, {"noise"});
    SetInt(random, "dtype", onnx::TensorProto::FLOAT);
    auto* shape = random->add_attribute();
    shape->set_name("shape");
    shape->set_type(onnx::AttributeProto::INTS);
    shape->add_ints(1);
    shape->add_ints(2);
    builder.Node("Mul", {"features", "noise"}, {"a"});
    SetInt(builder.Node("Gemm", {"a", "w"}, {"scores"}), "transB", 1);
    builder.Output("scores", 1);
    ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented,
                  "node 'Mul_1' (Mul): operand 'noise' is not a constant");
  }
  {
    OnnxBuilder builder(2);
    builder.Weight("w", {1, 2}, {1, 1});
    builder.Node("Mul", {"features", "features"}, {"a"});
    SetInt(builder.Node("Gemm", {"a", "w"}, {"scores"}), "transB", 1);
    builder.Output("scores", 1);
    ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented,
                  "Mul of 'features' with itself; seqserve runs Mul only with a constant");
  }
}

TEST(OnnxLoader, RefusesConstantsThatDoNotBroadcastToTheRow) {
  struct Shape {
    std::vector<int64_t> dims;
    absl::StatusCode code;
    const char* message;
  };
  const Shape shapes[] = {
      {{4, 1}, absl::StatusCode::kInvalidArgument,
       "constant 'c' has shape [4, 1]; only one value ([] or [1]) or one per feature"},
      {{2, 2}, absl::StatusCode::kInvalidArgument, "constant 'c' has shape [2, 2]"},
      {{1, 1, 4}, absl::StatusCode::kInvalidArgument, "constant 'c' has shape [1, 1, 4]"},
      {{3}, absl::StatusCode::kInvalidArgument,
       "Elementwise(x - c[3]) has 3 features but the input has 4"},
  };
  for (const Shape& shape : shapes) {
    OnnxBuilder builder(4);
    int64_t count = 1;
    for (int64_t dim : shape.dims) count *= dim;
    builder.Weight("c", shape.dims, std::vector<float>(count, 1.0f));
    builder.Weight("w", {1, 4}, {1, 1, 1, 1});
    builder.Node("Sub", {"features", "c"}, {"a"});
    SetInt(builder.Node("Gemm", {"a", "w"}, {"scores"}), "transB", 1);
    builder.Output("scores", 1);
    ExpectRefused(Parse(builder), shape.code, shape.message);
  }
}

TEST(OnnxLoader, RefusesADivisionByAZeroConstant) {
  OnnxBuilder builder(3);
  builder.Weight("std", {3}, {1.0f, 0.0f, 2.0f}).Weight("w", {1, 3}, {1, 1, 1});
  builder.Node("Div", {"features", "std"}, {"a"});
  SetInt(builder.Node("Gemm", {"a", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "node 'Div_0' (Div): divides by constant 'std', whose value 1 is zero");
  // A zero numerator is fine: 0 / x.
  OnnxBuilder numerator(3);
  numerator.Weight("zero", {}, {0.0f}).Weight("w", {1, 3}, {1, 1, 1});
  numerator.Node("Div", {"zero", "features"}, {"a"});
  SetInt(numerator.Node("Gemm", {"a", "w"}, {"scores"}), "transB", 1);
  numerator.Output("scores", 1);
  EXPECT_TRUE(Parse(numerator).ok());
}

TEST(OnnxLoader, RefusesOpsetsAndIrVersionsOutsideTheRange) {
  ExpectRefused(Parse(SmallClassifier(6)), absl::StatusCode::kUnimplemented,
                "opset 6 is not supported (7 to 23)");
  ExpectRefused(Parse(SmallClassifier(24)), absl::StatusCode::kUnimplemented,
                "opset 24 is not supported");
  OnnxBuilder builder = SmallClassifier(20);
  builder.model().set_ir_version(12);
  ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented,
                "IR version 12 is not supported (3 to 11)");
}

// Beyond the ONNX checker's range seqserve's own structure checks hold.
TEST(OnnxLoader, RefusesUndefinedInputsBeyondTheCheckersRange) {
  OnnxBuilder builder = SmallClassifier(20);
  builder.model().set_ir_version(10);
  builder.model().mutable_graph()->mutable_node(1)->set_input(0, "nowhere");
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "input 'nowhere' is not defined before it is used");
}

TEST(OnnxLoader, RefusesAGraphWithoutALinearLayer) {
  OnnxBuilder builder(2);
  builder.Node("Relu", {"features"}, {"scores"});
  builder.Output("scores", 2);
  ExpectRefused(Parse(builder), absl::StatusCode::kInvalidArgument,
                "needs at least one Linear layer");
}

TEST(OnnxLoader, RefusesFlattenThatMergesTheBatch) {
  OnnxBuilder builder(2);
  builder.Weight("w", {1, 2}, {1.0f, 1.0f});
  SetInt(builder.Node("Flatten", {"features"}, {"flat"}), "axis", 0);
  SetInt(builder.Node("Gemm", {"flat", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 1);
  ExpectRefused(Parse(builder), absl::StatusCode::kUnimplemented,
                "would merge the batch");
}

TEST(OnnxLoader, LoadsFromAFileAndNamesItInErrors) {
  const std::string path = ::testing::TempDir() + "/bad_width.onnx";
  OnnxBuilder builder(3);
  builder.Weight("w", {2, 4}, std::vector<float>(8, 0.1f));
  SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
  std::ofstream(path, std::ios::binary) << builder.Serialize();
  auto result = LoadOnnxModel(path);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr(path + ": node 'Gemm_0' (Gemm): expects 4 features"));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace seqserve
