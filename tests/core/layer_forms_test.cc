// Every layer in every ONNX form it is accepted in, against PyTorch's own
// numbers (tests/data/reference/layers/, written by
// tests/data/make_layer_models.py), and the near misses of each multi-node
// pattern, refused at the node where matching stopped.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "core/onnx_loader.h"
#include "core/text_loader.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::OnnxBuilder;
using testing::SetFloat;
using testing::SetInt;

std::vector<std::string> LayerCases() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(testing::ReferenceDir() + "/layers")) {
    names.push_back("layers/" + entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class LayerFormTest : public ::testing::TestWithParam<std::string> {};

void ExpectMatches(const Sequential& model, const testing::ReferenceCase& reference,
                   const std::string& what) {
  ASSERT_EQ(model.input_width(), static_cast<int>(reference.input_width));
  ASSERT_FALSE(reference.log_softmax.empty());
  for (auto [head, expected] : {std::pair{Head::kLogits, &reference.logits},
                                std::pair{Head::kSigmoid, &reference.sigmoid},
                                std::pair{Head::kSoftmax, &reference.softmax},
                                std::pair{Head::kLogSoftmax, &reference.log_softmax},
                                std::pair{model.default_head(), &reference.output}}) {
    auto scores = model.Predict(reference.inputs, reference.rows, head);
    ASSERT_TRUE(scores.ok()) << scores.status();
    const long mismatch = testing::FirstMismatch(*scores, *expected);
    EXPECT_EQ(mismatch, -1) << what << " head " << HeadName(head) << ": got "
                            << (*scores)[std::max(0L, mismatch)] << " expected "
                            << (*expected)[std::max(0L, mismatch)];
  }
}

TEST_P(LayerFormTest, MatchesPyTorch) {
  auto reference = testing::LoadReference(GetParam());
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto model = LoadOnnxModel(reference->onnx_path);
  ASSERT_TRUE(model.ok()) << model.status();
  ExpectMatches(**model, *reference, reference->onnx_path);
}

// The cases that also hold the model in the native text format.
std::vector<std::string> TextCases() {
  std::vector<std::string> names;
  for (const std::string& name : LayerCases()) {
    if (fs::exists(testing::ReferenceDir() + "/" + name + "/model.textproto")) {
      names.push_back(name);
    }
  }
  return names;
}

class TextFormTest : public ::testing::TestWithParam<std::string> {};

// The same nn.Sequential written in the native text format.
TEST_P(TextFormTest, MatchesPyTorch) {
  auto reference = testing::LoadReference(GetParam());
  ASSERT_TRUE(reference.ok()) << reference.status();
  const std::string text = fs::path(reference->onnx_path).replace_filename("model.textproto");
  auto model = LoadTextModel(text);
  ASSERT_TRUE(model.ok()) << model.status();
  ExpectMatches(**model, *reference, text);
}

INSTANTIATE_TEST_SUITE_P(Layers, LayerFormTest, ::testing::ValuesIn(LayerCases()),
                         [](const ::testing::TestParamInfo<std::string>& case_info) {
                           return fs::path(case_info.param).filename().string();
                         });

INSTANTIATE_TEST_SUITE_P(Layers, TextFormTest, ::testing::ValuesIn(TextCases()),
                         [](const ::testing::TestParamInfo<std::string>& case_info) {
                           return fs::path(case_info.param).filename().string();
                         });

// Each layer comes in both forms: torch 1.13's export and today's exporter's.
TEST(LayerForms, EveryLayerHasBothExportForms) {
  std::set<std::string> torch13, modern;
  for (const std::string& name : LayerCases()) {
    const std::string folder = fs::path(name).filename().string();
    const size_t cut = folder.rfind("_t") != std::string::npos ? folder.rfind("_t")
                                                               : folder.rfind("_m");
    (folder[cut + 1] == 't' ? torch13 : modern).insert(folder.substr(0, cut));
  }
  EXPECT_GE(modern.size(), 20u);
  EXPECT_EQ(TextCases().size(), torch13.size());
  for (const std::string& layer : modern) {
    if (layer == "layernorm_chain") continue;  // the ReduceMean form at opset 18 only
    EXPECT_EQ(torch13.count(layer), 1u) << layer;
  }
}

TEST(LayerForms, BatchNormAfterLinearIsFoldedAndListedAsPyTorchPrintsIt) {
  for (const char* name : {"layers/bn_after_linear_t9", "layers/bn_after_linear_m18"}) {
    auto model = LoadOnnxModel(testing::ReferenceDir() + "/" + name + "/model.onnx");
    ASSERT_TRUE(model.ok()) << model.status();
    std::vector<std::string> described;
    for (const Layer& layer : (*model)->layers()) described.push_back(layer.Describe());
    EXPECT_THAT(described, ElementsAre("Linear(4, 8)", "BatchNorm1d(8, eps=1e-05)", "ReLU",
                                       "Linear(8, 3)"));
    EXPECT_TRUE((*model)->layers()[1].folded);
    // torch counts 4*8+8 + 8+8 + 8*3+3.
    EXPECT_EQ((*model)->ParameterCount(), 83u);
  }
  auto elsewhere = LoadOnnxModel(testing::ReferenceDir() + "/layers/bn_elsewhere_m18/model.onnx");
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  EXPECT_FALSE(elsewhere->get()->layers()[0].folded);
  EXPECT_FALSE(elsewhere->get()->layers()[3].folded);
}

// torch 1.13's export names nodes after their module ("/2/Relu") and
// writes none for Dropout or Identity: every torch-export case lists
// torch's modules at torch's indices, the left-out ones as no-ops. Today's
// exporter's form (no index in its names) lists the layers it computes.
TEST(LayerForms, TheLayerListKeepsTorchsModuleIndices) {
  for (const std::string& name : LayerCases()) {
    if (name.find("_t") == std::string::npos) continue;
    auto reference = testing::LoadReference(name);
    ASSERT_TRUE(reference.ok()) << reference.status();
    auto model = LoadOnnxModel(reference->onnx_path);
    ASSERT_TRUE(model.ok()) << model.status();
    std::vector<std::string> body = reference->layers;
    if (body.back().rfind("LogSoftmax", 0) == 0) body.pop_back();  // the head
    const auto& layers = (*model)->layers();
    ASSERT_EQ(layers.size(), body.size()) << name;
    for (size_t i = 0; i < body.size(); ++i) {
      const std::string torch_class = body[i].substr(0, body[i].find('('));
      const std::string listed = layers[i].Describe();
      if (torch_class == "Dropout" || torch_class == "Identity") {
        EXPECT_EQ(listed, "Dropout or Identity (no-op at inference, not in the graph)")
            << name << " (" << i << ")";
      } else {
        EXPECT_EQ(listed.rfind(torch_class, 0), 0u)
            << name << " (" << i << ") " << listed << ", torch has " << body[i];
      }
    }
  }
  auto modern = LoadOnnxModel(testing::ReferenceDir() +
                              "/layers/dropout_identity_m18/model.onnx");
  ASSERT_TRUE(modern.ok()) << modern.status();
  std::vector<std::string> described;
  for (const Layer& layer : (*modern)->layers()) described.push_back(layer.Describe());
  EXPECT_THAT(described, ElementsAre("Linear(4, 8)", "ReLU", "Linear(8, 3)"));
}

TEST(LayerForms, AModelEndingInLogSoftmaxDefaultsToLogProbabilities) {
  for (const char* name : {"layers/log_softmax_t9", "layers/log_softmax_m20_b1"}) {
    auto model = LoadOnnxModel(testing::ReferenceDir() + "/" + name + "/model.onnx");
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->default_head(), Head::kLogSoftmax) << name;
  }
}

TEST(LayerForms, TheModernReferenceWithBatchNormLayerNormAndGeluMatches) {
  auto reference = testing::LoadReference("modern/bn_relu_ln_gelu_o20");
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto model = LoadOnnxModel(reference->onnx_path);
  ASSERT_TRUE(model.ok()) << model.status();
  for (auto [head, expected] : {std::pair{Head::kLogits, &reference->logits},
                                std::pair{Head::kSigmoid, &reference->sigmoid},
                                std::pair{Head::kSoftmax, &reference->softmax},
                                std::pair{(*model)->default_head(), &reference->output}}) {
    auto scores = (*model)->Predict(reference->inputs, reference->rows, head);
    ASSERT_TRUE(scores.ok()) << scores.status();
    EXPECT_EQ(testing::FirstMismatch(*scores, *expected), -1) << HeadName(head);
  }
}

// ---------------------------------------------------------------------------
// Near misses: each starts a pattern and stops at one node.

void ExpectNearMiss(const OnnxBuilder& builder, const std::string& node_and_op,
                    const std::string& why) {
  auto model = ParseOnnxModel(builder.Serialize(), "near.onnx");
  ASSERT_FALSE(model.ok()) << node_and_op;
  EXPECT_EQ(model.status().code(), absl::StatusCode::kUnimplemented) << model.status();
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("node '" + node_and_op + ": "));
  EXPECT_THAT(std::string(model.status().message()), HasSubstr(why));
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("stops matching here"));
}

// features -> Gemm(2 -> 2) -> "h"; the test adds the pattern from "h" to "y"
// and a last Gemm from "y".
OnnxBuilder Around(int64_t opset = 13) {
  OnnxBuilder builder(2, opset);
  builder.Weight("w1", {2, 2}, {1, 0, 0, 1}).Weight("w2", {2, 2}, {1, 2, 3, 4});
  builder.Weight("b1", {2}, {0, 0}).Weight("b2", {2}, {0, 0});
  SetInt(builder.Node("Gemm", {"features", "w1", "b1"}, {"h"}), "transB", 1);
  return builder;
}

void Finish(OnnxBuilder& builder) {
  SetInt(builder.Node("Gemm", {"y", "w2", "b2"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
}

OnnxBuilder GeluErf(float divisor, float addend, float half) {
  OnnxBuilder builder = Around();
  builder.Weight("sqrt2", {}, {divisor}).Weight("one", {}, {addend}).Weight("half", {}, {half});
  builder.Node("Div", {"h", "sqrt2"}, {"d"});
  builder.Node("Erf", {"d"}, {"e"});
  builder.Node("Add", {"e", "one"}, {"a"});
  builder.Node("Mul", {"h", "a"}, {"m"});
  builder.Node("Mul", {"m", "half"}, {"y"});
  Finish(builder);
  return builder;
}

TEST(PatternNearMiss, GeluErfForm) {
  EXPECT_TRUE(ParseOnnxModel(GeluErf(1.41421356f, 1.0f, 0.5f).Serialize(), "ok.onnx").ok());
  ExpectNearMiss(GeluErf(1.5f, 1.0f, 0.5f), "Div_1' (Div)", "divisor is 1.5, expected 1.414");
  ExpectNearMiss(GeluErf(1.41421356f, 2.0f, 0.5f), "Add_3' (Add)", "addend is 2, expected 1");
  ExpectNearMiss(GeluErf(1.41421356f, 1.0f, 0.25f), "Mul_5' (Mul)", "factor is 0.25");
}

TEST(PatternNearMiss, GeluErfFormWithAnotherOpAfterErf) {
  OnnxBuilder builder = Around();
  builder.Weight("sqrt2", {}, {1.41421356f});
  builder.Node("Div", {"h", "sqrt2"}, {"d"});
  builder.Node("Erf", {"d"}, {"e"});
  builder.Node("Sub", {"e", "h"}, {"y"});
  Finish(builder);
  ExpectNearMiss(builder, "Erf_2' (Erf)", "should feed one Add, not Sub");
}

TEST(PatternNearMiss, GeluTanhForm) {
  for (float kappa : {0.044715f, 0.05f}) {
    OnnxBuilder builder = Around();
    builder.Weight("three", {}, {3.0f}).Weight("kappa", {}, {kappa});
    builder.Weight("beta", {}, {0.7978845608f}).Weight("one", {}, {1.0f});
    builder.Weight("half", {}, {0.5f});
    builder.Node("Pow", {"h", "three"}, {"c"});
    builder.Node("Mul", {"kappa", "c"}, {"k"});
    builder.Node("Add", {"h", "k"}, {"s"});
    builder.Node("Mul", {"beta", "s"}, {"b"});
    builder.Node("Tanh", {"b"}, {"t"});
    builder.Node("Add", {"t", "one"}, {"o"});
    builder.Node("Mul", {"half", "o"}, {"m"});
    builder.Node("Mul", {"h", "m"}, {"y"});
    Finish(builder);
    if (kappa == 0.044715f) {
      auto model = ParseOnnxModel(builder.Serialize(), "ok.onnx");
      ASSERT_TRUE(model.ok()) << model.status();
      EXPECT_EQ((*model)->layers()[1].Describe(), "GELU(approximate='tanh')");
    } else {
      ExpectNearMiss(builder, "Mul_2' (Mul)", "factor is 0.05, expected 0.044715");
    }
  }
}

// LayerNorm's ReduceMean chain at opset 13 (axes as an attribute).
OnnxBuilder LayerNormChain(std::vector<int64_t> axes, float exponent) {
  OnnxBuilder builder = Around();
  builder.Weight("two", {}, {exponent}).Weight("eps", {}, {1e-5f});
  builder.Weight("gamma", {2}, {1.0f, 2.0f}).Weight("beta", {2}, {0.5f, -0.5f});
  auto* mean = builder.Node("ReduceMean", {"h"}, {"mean"});
  auto* attribute = mean->add_attribute();
  attribute->set_name("axes");
  attribute->set_type(onnx::AttributeProto::INTS);
  for (int64_t axis : axes) attribute->add_ints(axis);
  builder.Node("Sub", {"h", "mean"}, {"c"});
  builder.Node("Pow", {"c", "two"}, {"p"});
  auto* var = builder.Node("ReduceMean", {"p"}, {"var"});
  *var->add_attribute() = mean->attribute(0);
  builder.Node("Add", {"var", "eps"}, {"ve"});
  builder.Node("Sqrt", {"ve"}, {"sd"});
  builder.Node("Div", {"c", "sd"}, {"n"});
  builder.Node("Mul", {"n", "gamma"}, {"g"});
  builder.Node("Add", {"g", "beta"}, {"y"});
  Finish(builder);
  return builder;
}

TEST(PatternNearMiss, LayerNormReduceMeanForm) {
  auto model = ParseOnnxModel(LayerNormChain({-1}, 2.0f).Serialize(), "ok.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->layers()[1].Describe(), "LayerNorm((2,), eps=1e-05)");
  ExpectNearMiss(LayerNormChain({0}, 2.0f), "ReduceMean_1' (ReduceMean)",
                 "reduces over axes [0], not the last axis");
  ExpectNearMiss(LayerNormChain({-1}, 3.0f), "Pow_3' (Pow)", "exponent is 3, expected 2");
}

TEST(PatternNearMiss, SiluMishHardswishSoftplusSoftsign) {
  {  // x * sigmoid(x) where the Mul takes the sigmoid twice
    OnnxBuilder builder = Around();
    builder.Node("Sigmoid", {"h"}, {"s"});
    builder.Node("Mul", {"s", "s"}, {"y"});
    builder.Node("Relu", {"h"}, {"unused"});
    Finish(builder);
    ExpectNearMiss(builder, "Mul_2' (Mul)", "should multiply by the layer's input");
  }
  {  // Mish with the Tanh feeding an Add
    OnnxBuilder builder = Around();
    builder.Node("Softplus", {"h"}, {"s"});
    builder.Node("Tanh", {"s"}, {"t"});
    builder.Node("Add", {"h", "t"}, {"y"});
    Finish(builder);
    ExpectNearMiss(builder, "Tanh_2' (Tanh)", "should feed one Mul, not Add");
  }
  {  // x * HardSigmoid(x) with ONNX's default alpha 0.2 is not Hardswish
    OnnxBuilder builder = Around();
    builder.Node("HardSigmoid", {"h"}, {"s"});
    builder.Node("Mul", {"h", "s"}, {"y"});
    Finish(builder);
    ExpectNearMiss(builder, "HardSigmoid_1' (HardSigmoid)", "needs alpha 1/6 and beta 0.5");
  }
  {  // softplus(2x) / 3
    OnnxBuilder builder = Around();
    builder.Weight("two", {}, {2.0f}).Weight("three", {}, {3.0f});
    builder.Node("Mul", {"h", "two"}, {"m"});
    builder.Node("Softplus", {"m"}, {"s"});
    builder.Node("Div", {"s", "three"}, {"y"});
    Finish(builder);
    ExpectNearMiss(builder, "Div_3' (Div)", "divisor is 3, expected 2");
  }
  {  // x / (2 + |x|)
    OnnxBuilder builder = Around();
    builder.Weight("two", {}, {2.0f});
    builder.Node("Abs", {"h"}, {"a"});
    builder.Node("Add", {"a", "two"}, {"d"});
    builder.Node("Div", {"h", "d"}, {"y"});
    Finish(builder);
    ExpectNearMiss(builder, "Add_2' (Add)", "addend is 2, expected 1");
  }
}

// ---------------------------------------------------------------------------
// Single ops read by the opset the model imports.

absl::Status LoadWith(OnnxBuilder& builder) {
  return ParseOnnxModel(builder.Serialize(), "op.onnx").status();
}

TEST(OpsetSemantics, OpsNewerThanTheModelsOpsetAreRefused) {
  for (auto [op, opset] : {std::pair{"Gelu", 18}, std::pair{"LayerNormalization", 16},
                           std::pair{"HardSwish", 13}, std::pair{"Mish", 17},
                           std::pair{"Celu", 11}}) {
    OnnxBuilder builder = Around(opset);
    builder.model().set_ir_version(10);  // past Debian's checker: seqserve's own check
    builder.Weight("g", {2}, {1.0f, 1.0f});
    builder.Node(op, std::string(op) == "LayerNormalization"
                         ? std::vector<std::string>{"h", "g"}
                         : std::vector<std::string>{"h"},
                 {"y"});
    Finish(builder);
    absl::Status status = LoadWith(builder);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << op << status;
    EXPECT_THAT(std::string(status.message()),
                HasSubstr(absl::StrCat("op ", op, " exists from opset")));
  }
}

TEST(OpsetSemantics, ClipBoundsAreAttributesBeforeOpset11AndInputsAfter) {
  OnnxBuilder old = Around(9);
  auto* clip = old.Node("Clip", {"h"}, {"y"});
  SetFloat(clip, "min", -0.5f);
  SetFloat(clip, "max", 0.25f);
  Finish(old);
  auto model = ParseOnnxModel(old.Serialize(), "clip9.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->layers()[1].Describe(), "Hardtanh(min_val=-0.5, max_val=0.25)");

  OnnxBuilder current = Around(11);
  current.Weight("lo", {}, {0.0f}).Weight("hi", {}, {6.0f});
  current.Node("Clip", {"h", "lo", "hi"}, {"y"});
  Finish(current);
  model = ParseOnnxModel(current.Serialize(), "clip11.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->layers()[1].Describe(), "ReLU6");
  const float row[] = {-1.0f, 7.0f};
  auto logits = (*model)->Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(logits.ok());
  EXPECT_THAT(*logits, ElementsAre(0.0f * 1 + 6.0f * 2, 0.0f * 3 + 6.0f * 4));
}

TEST(OpsetSemantics, RefusesWhatIsNotInference) {
  OnnxBuilder training = Around(15);
  training.Weight("s", {2}, {1, 1}).Weight("b", {2}, {0, 0});
  training.Weight("m", {2}, {0, 0}).Weight("v", {2}, {1, 1});
  SetInt(training.Node("BatchNormalization", {"h", "s", "b", "m", "v"}, {"y"}), "training_mode",
         1);
  Finish(training);
  EXPECT_EQ(LoadWith(training).code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(LoadWith(training).message()), HasSubstr("training_mode=1"));

  OnnxBuilder axis = Around(17);
  axis.Weight("g", {2}, {1, 1});
  SetInt(axis.Node("LayerNormalization", {"h", "g"}, {"y"}), "axis", 0);
  Finish(axis);
  EXPECT_EQ(LoadWith(axis).code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(LoadWith(axis).message()), HasSubstr("axis 0"));
}

TEST(OpsetSemantics, PerFeatureParametersMustFitTheRow) {
  OnnxBuilder bn = Around(15);
  bn.Weight("s", {3}, {1, 1, 1}).Weight("b", {3}, {0, 0, 0});
  bn.Weight("m", {3}, {0, 0, 0}).Weight("v", {3}, {1, 1, 1});
  bn.Node("BatchNormalization", {"h", "s", "b", "m", "v"}, {"y"});
  Finish(bn);
  EXPECT_EQ(LoadWith(bn).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(LoadWith(bn).message()),
              HasSubstr("BatchNorm1d(3, eps=1e-05) has 3 features but the previous layer gives 2"));

  OnnxBuilder prelu = Around();
  prelu.Weight("slope", {2, 2}, {0.1f, 0.1f, 0.1f, 0.1f});
  prelu.Node("PRelu", {"h", "slope"}, {"y"});
  Finish(prelu);
  EXPECT_EQ(LoadWith(prelu).code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(LoadWith(prelu).message()), HasSubstr("slope 'slope' has shape [2, 2]"));
}

}  // namespace
}  // namespace seqserve
