// Files that store their weights in fewer bits: the form ONNX Runtime's
// quantize_dynamic writes (tests/data/reference/quantized/, answers from
// numpy following the ONNX specs, which ONNX Runtime gives bit for bit row
// by row: tests/data/check_quantized_ort.js) and float16/bfloat16 weights.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>

#include "core/model_file.h"
#include "core/onnx_loader.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using testing::OnnxBuilder;
using testing::SetInt;

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

std::vector<float> Flat(const Json& rows) {
  std::vector<float> values;
  for (const auto& row : rows) {
    for (double v : row) values.push_back(static_cast<float>(v));
  }
  return values;
}

struct Reference {
  std::string folder;
  Json json;
  std::vector<float> inputs;
  std::vector<float> output;
  size_t rows = 0;
};

Reference ReadReference(const std::string& name) {
  Reference r;
  r.folder = testing::ReferenceDir() + "/quantized/" + name;
  std::ifstream file(r.folder + "/reference.json");
  EXPECT_TRUE(file) << r.folder;
  if (!file) return r;
  r.json = Json::parse(file);
  r.inputs = Flat(r.json["inputs"]);
  r.output = Flat(r.json["output"]);
  r.rows = r.json["inputs"].size();
  return r;
}

class DynamicQuantizedFile : public ::testing::TestWithParam<std::string> {};

// Each row gives the spec's bits, alone and in the whole batch (seqserve
// quantizes each row on its own).
TEST_P(DynamicQuantizedFile, RunsInInt8WithTheSpecsBitsInEveryBatch) {
  const Reference ref = ReadReference(GetParam());
  ASSERT_FALSE(ref.inputs.empty());
  auto model = LoadModelFile(ref.folder + "/model.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->precision(), Precision::kInt8);
  EXPECT_EQ((*model)->stored_precision(), Precision::kInt8);
  std::vector<std::string> described;
  for (const Layer& layer : (*model)->layers()) described.push_back(layer.Describe());
  EXPECT_THAT(described, ::testing::ElementsAre("Linear(6, 16)", "ReLU", "Linear(16, 12)",
                                                "ReLU", "Linear(12, 3)"));
  auto batch = (*model)->Predict(ref.inputs, ref.rows, Head::kLogits);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), ref.output.size());
  const size_t width = ref.output.size() / ref.rows;
  const size_t in = ref.inputs.size() / ref.rows;
  for (size_t r = 0; r < ref.rows; ++r) {
    auto one = (*model)->Predict(absl::MakeConstSpan(ref.inputs).subspan(r * in, in), 1,
                                 Head::kLogits);
    ASSERT_TRUE(one.ok()) << one.status();
    for (size_t o = 0; o < width; ++o) {
      const size_t i = r * width + o;
      EXPECT_TRUE(SameBits((*batch)[i], ref.output[i]))
          << "row " << r << " output " << o << ": " << (*batch)[i] << ", the spec gives "
          << ref.output[i];
      EXPECT_TRUE(SameBits((*one)[o], ref.output[i])) << "row " << r << " alone";
    }
  }
}

// FP32 runs the weights' float values, q * scale, and INT8 made from that
// model again is the file's model.
TEST_P(DynamicQuantizedFile, Fp32RunsTheStoredWeightsValues) {
  const Reference ref = ReadReference(GetParam());
  ASSERT_FALSE(ref.inputs.empty());
  auto model = LoadModelFile(ref.folder + "/model.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  auto fp32 = (*model)->WithPrecision(Precision::kFp32);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_EQ((*fp32)->precision(), Precision::kFp32);
  EXPECT_EQ((*fp32)->stored_precision(), Precision::kInt8);
  for (const Layer& layer : (*fp32)->layers()) {
    if (layer.kind != LayerKind::kLinear) continue;
    const size_t in = static_cast<size_t>(layer.in_features);
    ASSERT_EQ(layer.int8_weight.size(), layer.weight.size());
    for (size_t i = 0; i < layer.weight.size(); ++i) {
      ASSERT_EQ(layer.weight[i],
                static_cast<float>(layer.int8_weight[i]) * layer.int8_scales[i / in]);
    }
  }
  // The float model the file was quantized from answers within the
  // quantization's error.
  const std::vector<float> float_output = Flat(ref.json["float_output"]);
  auto got = (*fp32)->Predict(ref.inputs, ref.rows, Head::kLogits);
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < float_output.size(); ++i) {
    EXPECT_NEAR((*got)[i], float_output[i], 0.02) << i;
  }
  auto back = (*fp32)->WithPrecision(Precision::kInt8);
  ASSERT_TRUE(back.ok()) << back.status();
  auto again = (*back)->Predict(ref.inputs, ref.rows, Head::kLogits);
  ASSERT_TRUE(again.ok()) << again.status();
  for (size_t i = 0; i < ref.output.size(); ++i) EXPECT_TRUE(SameBits((*again)[i], ref.output[i]));
}

INSTANTIATE_TEST_SUITE_P(Quantized, DynamicQuantizedFile,
                         ::testing::Values("dynamic_per_channel", "dynamic_per_tensor"));

// torch's model.half() export: float16 input and weights, computed in
// float32 on the weights' exact values.
TEST(HalfPrecisionFile, WeightsWidenExactlyAndRunInFloat32) {
  const Reference ref = ReadReference("half");
  ASSERT_FALSE(ref.inputs.empty());
  auto model = LoadModelFile(ref.folder + "/model.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->precision(), Precision::kFp32);
  auto got = (*model)->Predict(ref.inputs, ref.rows, Head::kLogits);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), ref.output.size());
  for (size_t i = 0; i < ref.output.size(); ++i) {
    EXPECT_TRUE(testing::CloseToReference((*got)[i], ref.output[i]))
        << i << ": " << (*got)[i] << " vs " << ref.output[i];
  }
}

// 16-bit initializers given as int32_data, as ONNX stores them without raw
// bytes: each value is the 16 bits of one float16 or bfloat16.
TEST(HalfPrecisionFile, Int32DataHoldsTheBitsOfEachValue) {
  struct Case {
    onnx::TensorProto::DataType type;
    std::vector<int32_t> bits;
    std::vector<float> values;
  };
  const Case cases[] = {
      // float16: 1, -2, 0.5 and the smallest subnormal, 2^-24.
      {onnx::TensorProto::FLOAT16, {0x3c00, 0xc000, 0x3800, 0x0001},
       {1.0f, -2.0f, 0.5f, std::ldexp(1.0f, -24)}},
      // bfloat16: 1, -2, 0.5 and 3.140625.
      {onnx::TensorProto::BFLOAT16, {0x3f80, 0xc000, 0x3f00, 0x4049}, {1.0f, -2.0f, 0.5f, 3.140625f}},
  };
  for (const Case& c : cases) {
    OnnxBuilder builder(4);
    auto* tensor = builder.model().mutable_graph()->add_initializer();
    tensor->set_name("w");
    tensor->set_data_type(c.type);
    tensor->add_dims(1);
    tensor->add_dims(4);
    for (int32_t b : c.bits) tensor->add_int32_data(b);
    SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
    builder.Output("scores", 1);
    auto model = ParseOnnxModel(builder.Serialize(), "test.onnx");
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->layers()[0].weight, c.values);
  }
}

// ---------------------------------------------------------------------------
// Forms refused, each naming what stops it.

// features -> DynamicQuantizeLinear -> MatMulInteger(B: 2 x 1) -> Cast ->
// Mul(sums, Mul(row scale, "w_scale")) -> "scores".
OnnxBuilder QuantizedMatMul(onnx::TensorProto::DataType type, std::vector<int32_t> weights,
                            int32_t zero_point) {
  OnnxBuilder builder(2);
  auto* graph = builder.model().mutable_graph();
  auto* b = graph->add_initializer();
  b->set_name("w_quantized");
  b->set_data_type(type);
  b->add_dims(2);
  b->add_dims(1);
  for (int32_t v : weights) b->add_int32_data(v);
  auto* zero = graph->add_initializer();
  zero->set_name("w_zero_point");
  zero->set_data_type(type);
  zero->add_int32_data(zero_point);
  builder.Weight("w_scale", {}, {0.01f});
  builder.Node("DynamicQuantizeLinear", {"features"}, {"xq", "xs", "xz"});
  builder.Node("MatMulInteger", {"xq", "w_quantized", "xz", "w_zero_point"}, {"sums"});
  SetInt(builder.Node("Cast", {"sums"}, {"sums_float"}), "to", onnx::TensorProto::FLOAT);
  builder.Node("Mul", {"xs", "w_scale"}, {"scales"});
  builder.Node("Mul", {"sums_float", "scales"}, {"scores"});
  builder.Output("scores", 1);
  return builder;
}

TEST(QuantizedFileForms, Uint8WeightsWithinInt8AroundTheirZeroPointLoad) {
  auto model = ParseOnnxModel(
      QuantizedMatMul(onnx::TensorProto::UINT8, {0, 255}, 128).Serialize(), "test.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->layers()[0].int8_weight, (std::vector<int8_t>{-128, 127}));
  EXPECT_EQ((*model)->layers()[0].weight, (std::vector<float>{-128 * 0.01f, 127 * 0.01f}));
}

TEST(QuantizedFileForms, WeightsOutsideInt8AroundTheirZeroPointAreRefused) {
  auto model = ParseOnnxModel(
      QuantizedMatMul(onnx::TensorProto::UINT8, {0, 200}, 43).Serialize(), "test.onnx");
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("minus its zero point is 157, outside int8"));
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("weight_type=QInt8"));
}

TEST(QuantizedFileForms, AMatMulIntegerWithoutTheRowsZeroPointIsRefused) {
  OnnxBuilder builder = QuantizedMatMul(onnx::TensorProto::INT8, {3, -4}, 0);
  builder.model().mutable_graph()->mutable_node(1)->mutable_input()->DeleteSubrange(2, 2);
  auto model = ParseOnnxModel(builder.Serialize(), "test.onnx");
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kUnimplemented) << model.status();
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("a_zero_point"));
}

TEST(QuantizedFileForms, SumsCastToAnotherTypeAreRefused) {
  OnnxBuilder builder = QuantizedMatMul(onnx::TensorProto::INT8, {3, -4}, 0);
  builder.model().mutable_graph()->mutable_node(2)->mutable_attribute(0)->set_i(
      onnx::TensorProto::DOUBLE);
  auto model = ParseOnnxModel(builder.Serialize(), "test.onnx");
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("cast the int32 sums to float"));
}

TEST(QuantizedFileForms, AScaleThatIsNotAConstantIsRefused) {
  OnnxBuilder builder = QuantizedMatMul(onnx::TensorProto::INT8, {3, -4}, 0);
  // The sums scaled by the row scale alone: no weight scale.
  auto* last = builder.model().mutable_graph()->mutable_node(4);
  last->set_input(1, "xs");
  builder.model().mutable_graph()->mutable_node()->DeleteSubrange(3, 1);
  auto model = ParseOnnxModel(builder.Serialize(), "test.onnx");
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kUnimplemented) << model.status();
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("Mul(the rows' scale, the weights' scale)"));
}

}  // namespace
}  // namespace seqserve
