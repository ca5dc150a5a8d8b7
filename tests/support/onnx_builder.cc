#include "tests/support/onnx_builder.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/support/reference_data.h"

namespace seqserve::testing {
namespace {

void SetShape(onnx::ValueInfoProto* value, int64_t width) {
  auto* type = value->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = type->mutable_shape();
  shape->add_dim()->set_dim_param("batch");
  auto* dim = shape->add_dim();
  if (width > 0) dim->set_dim_value(width);
}

}  // namespace

OnnxBuilder::OnnxBuilder(int64_t input_width, int64_t opset) {
  model_.set_ir_version(8);
  model_.set_producer_name("seqserve-tests");
  auto* import = model_.add_opset_import();
  import->set_domain("");
  import->set_version(opset);
  auto* graph = model_.mutable_graph();
  graph->set_name("test");
  auto* input = graph->add_input();
  input->set_name("features");
  SetShape(input, input_width);
}

OnnxBuilder& OnnxBuilder::Weight(const std::string& name,
                                 std::vector<int64_t> dims,
                                 std::vector<float> values) {
  auto* tensor = model_.mutable_graph()->add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t dim : dims) tensor->add_dims(dim);
  for (float value : values) tensor->add_float_data(value);
  return *this;
}

onnx::NodeProto* OnnxBuilder::Node(const std::string& op,
                                   std::vector<std::string> inputs,
                                   std::vector<std::string> outputs) {
  auto* node = model_.mutable_graph()->add_node();
  node->set_op_type(op);
  node->set_name(absl::StrCat(op, "_", node_count_++));
  for (auto& input : inputs) node->add_input(input);
  for (auto& output : outputs) node->add_output(output);
  return node;
}

OnnxBuilder& OnnxBuilder::Output(const std::string& name, int64_t width) {
  auto* output = model_.mutable_graph()->add_output();
  output->set_name(name);
  SetShape(output, width);
  return *this;
}

std::string OnnxBuilder::Serialize() const {
  return model_.SerializeAsString();
}

void SetInt(onnx::NodeProto* node, const std::string& name, int64_t value) {
  auto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::INT);
  attribute->set_i(value);
}

void SetFloat(onnx::NodeProto* node, const std::string& name, float value) {
  auto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::FLOAT);
  attribute->set_f(value);
}

OnnxBuilder SmallClassifier(int64_t opset) {
  OnnxBuilder builder(3, opset);
  std::vector<float> w1(12), w2(8);
  for (size_t i = 0; i < w1.size(); ++i) w1[i] = 0.1f * (i + 1);
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = 0.1f * (i + 1);
  builder.Weight("w1", {4, 3}, w1).Weight("b1", {4}, {0.5f, 0.5f, 0.5f, 0.5f});
  builder.Weight("w2", {2, 4}, w2).Weight("b2", {2}, {0.5f, 0.5f});
  SetInt(builder.Node("Gemm", {"features", "w1", "b1"}, {"h1"}), "transB", 1);
  builder.Node("Relu", {"h1"}, {"a1"});
  SetInt(builder.Node("Gemm", {"a1", "w2", "b2"}, {"logits"}), "transB", 1);
  builder.Node("Softmax", {"logits"}, {"scores"});
  builder.Output("scores", 2);
  return builder;
}

std::string ReadReferenceBytes(const std::string& name) {
  std::ifstream in(absl::StrCat(ReferenceDir(), "/", name, ".onnx"),
                   std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace seqserve::testing
