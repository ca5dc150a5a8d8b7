// An ONNX graph as the loader reads it: its constants (initializers,
// Constant nodes, and external data beside the model file), who reads each
// tensor, attributes by name, and error messages that name the file, node
// and op.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace seqserve {

class OnnxGraph {
 public:
  // `name` prefixes every message; external data is read from `base_dir`
  // only (empty refuses it). The model must outlive the graph.
  OnnxGraph(const onnx::ModelProto& model, absl::string_view name, std::string base_dir,
            int64_t opset);

  const onnx::GraphProto& graph() const { return graph_; }
  const onnx::NodeProto& node(int index) const { return graph_.node(index); }
  // The default-domain opset the model imports: what each op means.
  int64_t opset() const { return opset_; }

  // The nodes that read `tensor`, leaving out Constant nodes and constant
  // Transposes folded at load; in graph order.
  const std::vector<int>& Users(const std::string& tensor) const;
  // True for nodes evaluated at load (Constant, an Identity or Transpose of
  // a constant).
  bool IsLoadTime(int index) const { return load_time_[index]; }
  bool IsConstant(const std::string& tensor) const { return constants_.count(tensor) > 0; }
  // The 2-D weight that `tensor` is Transpose(perm=[1, 0]) of, or null.
  const onnx::TensorProto* TransposedWeight(const std::string& tensor) const;

  // The constant that `node` reads at input `index`.
  absl::StatusOr<const onnx::TensorProto*> Weight(const onnx::NodeProto& node, int index) const;
  // A float tensor's values, read from the model or its external data file;
  // float16 and bfloat16 widened to float32 exactly.
  absl::StatusOr<std::vector<float>> Floats(const onnx::NodeProto& node,
                                            const onnx::TensorProto& tensor) const;
  // An INT8 or UINT8 tensor's values (quantized weights, zero points).
  absl::StatusOr<std::vector<int32_t>> Bytes(const onnx::NodeProto& node,
                                             const onnx::TensorProto& tensor) const;
  // Weight() then Floats().
  absl::StatusOr<std::vector<float>> InputFloats(const onnx::NodeProto& node, int index) const;
  // Integer constants (ReduceMean axes, ...) of `node` at input `index`.
  absl::StatusOr<std::vector<int64_t>> InputInts(const onnx::NodeProto& node, int index) const;

  // RESOURCE_EXHAUSTED when the graph's `graph_bytes` and the sizes on disk
  // of the data files its initializers name add up to more than `limit`.
  // Runs before any data is read; locations the reads would refuse are
  // left to them.
  absl::Status CheckDataFileSizes(uint64_t graph_bytes, uint64_t limit) const;

  absl::Status Error(absl::StatusCode code, absl::string_view message) const;
  absl::Status NodeError(absl::StatusCode code, const onnx::NodeProto& node,
                         absl::string_view message) const;

 private:
  // Reads the `bytes` bytes of a tensor stored outside the model file
  // straight from the file (one copy of the weights) into the buffer that
  // `allocate` gives, called only once the file is known to hold them.
  absl::Status ReadExternal(const onnx::NodeProto& node, const onnx::TensorProto& tensor,
                            uint64_t bytes, const std::function<char*()>& allocate) const;
  // The raw little-endian bytes of a tensor of `bytes` bytes, from the
  // model or its data file, into the buffer `allocate` gives once they are
  // known to exist.
  absl::Status ReadRaw(const onnx::NodeProto& node, const onnx::TensorProto& tensor,
                       uint64_t bytes, const std::function<char*()>& allocate) const;

  // How many values `tensor`'s shape holds, or a refusal of a shape past
  // the limits.
  absl::StatusOr<int64_t> ValueCount(const onnx::NodeProto& node,
                                     const onnx::TensorProto& tensor) const;
  // `count` values of type T from the tensor's raw bytes.
  template <typename T>
  absl::StatusOr<std::vector<T>> RawValues(const onnx::NodeProto& node,
                                           const onnx::TensorProto& tensor, int64_t count) const;

  const onnx::GraphProto& graph_;
  std::string name_;
  std::string base_dir_;
  int64_t opset_;
  std::unordered_map<std::string, const onnx::TensorProto*> constants_;
  std::unordered_map<std::string, std::string> transposed_;
  std::unordered_map<std::string, std::vector<int>> users_;
  std::vector<bool> load_time_;
};

// An attribute's value by name, or `fallback` when the node has none.
int64_t IntAttribute(const onnx::NodeProto& node, absl::string_view name, int64_t fallback);
float FloatAttribute(const onnx::NodeProto& node, absl::string_view name, float fallback);
std::string StringAttribute(const onnx::NodeProto& node, absl::string_view name,
                            absl::string_view fallback);
bool HasAttribute(const onnx::NodeProto& node, absl::string_view name);
// The ints of a list attribute (ReduceMean axes before opset 18, ...).
std::vector<int64_t> IntsAttribute(const onnx::NodeProto& node, absl::string_view name);

}  // namespace seqserve
