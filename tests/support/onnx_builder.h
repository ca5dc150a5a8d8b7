// Builds small ONNX graphs in memory, so loader tests can state exactly the
// graph they refuse or accept.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

namespace seqserve::testing {

class OnnxBuilder {
 public:
  // A graph with one float input "features" of shape [batch, input_width].
  explicit OnnxBuilder(int64_t input_width, int64_t opset = 13);

  // A float initializer.
  OnnxBuilder& Weight(const std::string& name, std::vector<int64_t> dims,
                      std::vector<float> values);
  // A node; attributes are added through the returned pointer.
  onnx::NodeProto* Node(const std::string& op, std::vector<std::string> inputs,
                        std::vector<std::string> outputs);
  // Declares the graph output tensor with `width` columns (0: unknown).
  OnnxBuilder& Output(const std::string& name, int64_t width = 0);

  onnx::ModelProto& model() { return model_; }
  std::string Serialize() const;

 private:
  onnx::ModelProto model_;
  int node_count_ = 0;
};

void SetInt(onnx::NodeProto* node, const std::string& name, int64_t value);
void SetFloat(onnx::NodeProto* node, const std::string& name, float value);

// "features" -> Gemm(3 -> 4) -> Relu -> Gemm(4 -> 2) -> Softmax -> "scores",
// weights 0.1 * (index + 1) and biases 0.5, with transB=1 as torch exports.
OnnxBuilder SmallClassifier(int64_t opset = 13);

// A reference model's ONNX file as bytes.
std::string ReadReferenceBytes(const std::string& name);

}  // namespace seqserve::testing
