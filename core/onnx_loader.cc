#include "core/onnx_loader.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_util.h"

namespace seqserve {
namespace {

// Every op seqserve runs means the same from opset 7 to 23 in the forms
// it accepts (Softmax's axis default changes at 13 and is read by opset).
constexpr int64_t kMinOpset = 7;
constexpr int64_t kMaxOpset = 23;
constexpr int64_t kMinIrVersion = 3;
constexpr int64_t kMaxIrVersion = 11;
// What Debian's ONNX checker (1.12) knows; beyond it only seqserve's own
// structural checks run.
constexpr int64_t kCheckerMaxIrVersion = 8;
constexpr int64_t kCheckerMaxOpset = 17;
// Rows wider than this are not a classifier's features; it also keeps
// every width inside BLAS's int arguments.
constexpr int64_t kMaxWidth = Sequential::kMaxWidth;
// One weight tensor's values: 8 GiB of floats is past any file we read.
constexpr int64_t kMaxWeightValues = std::numeric_limits<int32_t>::max();

// What the converter knows about the tensor flowing down the chain.
struct ChainState {
  int rank = 2;
  int64_t width = 0;  // 0 until known
};

class OnnxConverter {
 public:
  // `base_dir`: where external data files live; empty refuses them.
  OnnxConverter(const onnx::ModelProto& model, absl::string_view name,
                std::string base_dir)
      : model_(model), graph_(model.graph()), name_(name), base_dir_(std::move(base_dir)) {}

  absl::StatusOr<std::unique_ptr<Sequential>> Convert();

 private:
  absl::Status CheckOpset();
  absl::Status CheckStructure() const;
  absl::Status CollectConstants();
  absl::Status ReadInput();
  absl::Status AddNode(const onnx::NodeProto& node);
  absl::Status AddGemm(const onnx::NodeProto& node);
  absl::Status AddMatMul(const onnx::NodeProto& node);
  absl::Status AddBias(const onnx::NodeProto& node);
  absl::Status AddLinear(const onnx::NodeProto& node, int64_t in, int64_t out,
                         std::vector<float> weight, std::vector<float> bias);
  absl::Status AddActivation(Layer layer) {
    layers_.push_back(std::move(layer));
    return absl::OkStatus();
  }
  absl::Status CheckExtraOutputsUnused(const onnx::NodeProto& node);

  // The initializer (or Constant) feeding `node` at input `index`.
  absl::StatusOr<const onnx::TensorProto*> Weight(const onnx::NodeProto& node,
                                                  int index) const;
  absl::StatusOr<std::vector<float>> Floats(const onnx::NodeProto& node,
                                            const onnx::TensorProto& tensor) const;
  // The `bytes` bytes of an initializer stored outside the model file.
  absl::StatusOr<std::string> ExternalBytes(const onnx::NodeProto& node,
                                            const onnx::TensorProto& tensor,
                                            uint64_t bytes) const;

  absl::Status Error(absl::StatusCode code, absl::string_view message) const;
  absl::Status NodeError(absl::StatusCode code, const onnx::NodeProto& node,
                         absl::string_view message) const;

  const onnx::ModelProto& model_;
  const onnx::GraphProto& graph_;
  std::string name_;
  std::string base_dir_;
  int64_t opset_ = 0;
  std::unordered_map<std::string, const onnx::TensorProto*> constants_;
  // Outputs of Transpose(perm=[1, 0]) applied to a 2-D constant, by the
  // constant's name: a MatMul weight already in torch's layout.
  std::unordered_map<std::string, std::string> transposed_;
  std::vector<bool> folded_;  // nodes evaluated at load, off the chain
  std::unordered_map<std::string, std::vector<int>> consumers_;
  std::string input_name_;
  int64_t input_width_ = 0;
  ChainState state_;
  std::vector<Layer> layers_;
  // A Softmax or Sigmoid seen at the end of the chain, or nullopt.
  std::optional<Head> trailing_head_;
  std::string trailing_head_node_;
};

std::string NodeLabel(const onnx::NodeProto& node, int index) {
  if (!node.name().empty()) return node.name();
  return absl::StrCat("#", index);
}

absl::Status OnnxConverter::Error(absl::StatusCode code,
                                  absl::string_view message) const {
  return absl::Status(code, absl::StrCat(name_, ": ", message));
}

absl::Status OnnxConverter::NodeError(absl::StatusCode code,
                                      const onnx::NodeProto& node,
                                      absl::string_view message) const {
  const std::string label =
      node.name().empty() ? absl::StrCat("output '", node.output_size() > 0
                                                         ? node.output(0)
                                                         : "",
                                         "'")
                          : absl::StrCat("'", node.name(), "'");
  return Error(code,
               absl::StrCat("node ", label, " (", node.op_type(), "): ", message));
}

absl::Status OnnxConverter::CheckOpset() {
  for (const auto& opset : model_.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") {
      opset_ = opset.version();
    }
  }
  if (opset_ < kMinOpset || opset_ > kMaxOpset) {
    return Error(absl::StatusCode::kUnimplemented,
                 absl::StrCat("opset ", opset_, " is not supported (", kMinOpset,
                              " to ", kMaxOpset, ")"));
  }
  if (model_.ir_version() < kMinIrVersion || model_.ir_version() > kMaxIrVersion) {
    return Error(absl::StatusCode::kUnimplemented,
                 absl::StrCat("IR version ", model_.ir_version(), " is not supported (",
                              kMinIrVersion, " to ", kMaxIrVersion, ")"));
  }
  return absl::OkStatus();
}

// What the ONNX checker would refuse in a graph seqserve runs, for models
// beyond its range too: every node input defined before use, every name
// defined once.
absl::Status OnnxConverter::CheckStructure() const {
  std::unordered_map<std::string, int> defined;  // name -> 0 graph, 1 node
  for (const auto& input : graph_.input()) defined.emplace(input.name(), 0);
  for (const auto& tensor : graph_.initializer()) defined.emplace(tensor.name(), 0);
  for (const auto& node : graph_.node()) {
    for (const auto& input : node.input()) {
      if (!input.empty() && defined.count(input) == 0) {
        return NodeError(absl::StatusCode::kInvalidArgument, node,
                         absl::StrCat("input '", input,
                                      "' is not defined before it is used"));
      }
    }
    for (const auto& output : node.output()) {
      if (output.empty()) continue;
      if (!defined.emplace(output, 1).second) {
        return NodeError(absl::StatusCode::kInvalidArgument, node,
                         absl::StrCat("output '", output, "' is defined twice"));
      }
    }
  }
  for (const auto& output : graph_.output()) {
    if (defined.count(output.name()) == 0) {
      return Error(absl::StatusCode::kInvalidArgument,
                   absl::StrCat("graph output '", output.name(), "' is never computed"));
    }
  }
  return absl::OkStatus();
}

absl::Status OnnxConverter::CollectConstants() {
  for (const auto& tensor : graph_.initializer()) {
    constants_[tensor.name()] = &tensor;
  }
  for (const auto& node : graph_.node()) {
    if (node.op_type() != "Constant") continue;
    for (const auto& attribute : node.attribute()) {
      if (attribute.name() == "value" && node.output_size() == 1) {
        constants_[node.output(0)] = &attribute.t();
      }
    }
  }
  // Transpose(W, perm=[1, 0]) of a constant feeds MatMul in what today's
  // exporter writes for nn.Linear: fold it, the weight is torch's layout.
  folded_.assign(graph_.node_size(), false);
  for (int i = 0; i < graph_.node_size(); ++i) {
    const auto& node = graph_.node(i);
    if (node.op_type() != "Transpose" || node.input_size() != 1 || node.output_size() != 1 ||
        constants_.count(node.input(0)) == 0 ||
        constants_.at(node.input(0))->dims_size() != 2) {
      continue;
    }
    bool swaps = true;
    for (const auto& attribute : node.attribute()) {
      if (attribute.name() == "perm") {
        swaps = attribute.ints_size() == 2 && attribute.ints(0) == 1 && attribute.ints(1) == 0;
      }
    }
    if (!swaps) continue;
    transposed_[node.output(0)] = node.input(0);
    folded_[i] = true;
  }
  for (int i = 0; i < graph_.node_size(); ++i) {
    const auto& node = graph_.node(i);
    if (node.op_type() == "Constant" || folded_[i]) continue;
    for (const auto& input : node.input()) {
      if (!input.empty()) consumers_[input].push_back(i);
    }
  }
  return absl::OkStatus();
}

absl::Status OnnxConverter::ReadInput() {
  std::vector<const onnx::ValueInfoProto*> data_inputs;
  for (const auto& input : graph_.input()) {
    if (constants_.count(input.name()) == 0) data_inputs.push_back(&input);
  }
  if (data_inputs.size() != 1) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("graph has ", data_inputs.size(),
                              " data inputs; a Sequential model has one"));
  }
  if (graph_.output_size() != 1) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("graph has ", graph_.output_size(),
                              " outputs; a Sequential model has one"));
  }
  const onnx::ValueInfoProto& input = *data_inputs[0];
  input_name_ = input.name();
  const auto& type = input.type().tensor_type();
  if (type.elem_type() != onnx::TensorProto::FLOAT) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("input '", input_name_, "' has element type ",
                              onnx::TensorProto::DataType_Name(
                                  static_cast<onnx::TensorProto::DataType>(
                                      type.elem_type())),
                              "; only float32 inputs are supported"));
  }
  const auto& dims = type.shape().dim();
  if (type.has_shape() && dims.size() < 2) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("input '", input_name_, "' has rank ", dims.size(),
                              "; expected a batch of feature rows"));
  }
  state_.rank = type.has_shape() ? dims.size() : 2;
  int64_t width = 1;
  for (int i = 1; i < dims.size(); ++i) {
    if (!dims[i].has_dim_value() || dims[i].dim_value() <= 0) {
      width = 0;
      break;
    }
    // Checked before multiplying: a product of huge dims must not wrap.
    if (dims[i].dim_value() > kMaxWidth / width) {
      return Error(absl::StatusCode::kInvalidArgument,
                   absl::StrCat("input '", input_name_, "' is wider than ",
                                kMaxWidth, " features"));
    }
    width *= dims[i].dim_value();
  }
  if (width == 0 && state_.rank > 2) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("input '", input_name_,
                              "' has rank ", state_.rank,
                              " with unknown dimensions; cannot flatten"));
  }
  state_.width = width;
  input_width_ = width;
  return absl::OkStatus();
}

absl::StatusOr<const onnx::TensorProto*> OnnxConverter::Weight(
    const onnx::NodeProto& node, int index) const {
  if (index >= node.input_size() || node.input(index).empty()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("input ", index, " is missing"));
  }
  auto it = constants_.find(node.input(index));
  if (it == constants_.end()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("input '", node.input(index),
                                  "' is not an initializer; weights must be "
                                  "constant"));
  }
  return it->second;
}

absl::StatusOr<std::vector<float>> OnnxConverter::Floats(
    const onnx::NodeProto& node, const onnx::TensorProto& tensor) const {
  const std::string what = absl::StrCat("initializer '", tensor.name(), "'");
  if (tensor.data_type() != onnx::TensorProto::FLOAT) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat(what, " has data type ",
                                  onnx::TensorProto::DataType_Name(
                                      static_cast<onnx::TensorProto::DataType>(
                                          tensor.data_type())),
                                  "; only float32 weights are supported"));
  }
  int64_t count = 1;
  for (int64_t dim : tensor.dims()) {
    // Zero-element weights are refused too: a zero dim would otherwise let
    // any other dim through unchecked.
    if (dim <= 0 || dim > kMaxWidth || count > kMaxWeightValues / dim) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat(what, " has shape [",
                                    absl::StrJoin(tensor.dims(), ", "),
                                    "]; every dimension must be 1 to ",
                                    kMaxWidth, " and the whole at most ",
                                    kMaxWeightValues, " values"));
    }
    count *= dim;
  }
  std::vector<float> values;
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    auto bytes = ExternalBytes(node, tensor, static_cast<uint64_t>(count) * sizeof(float));
    if (!bytes.ok()) return bytes.status();
    values.resize(count);
    std::memcpy(values.data(), bytes->data(), bytes->size());
  } else if (!tensor.raw_data().empty()) {
    if (tensor.raw_data().size() != static_cast<size_t>(count) * sizeof(float)) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat(what, " holds ", tensor.raw_data().size(),
                                    " bytes for ", count, " floats"));
    }
    values.resize(count);
    std::memcpy(values.data(), tensor.raw_data().data(), count * sizeof(float));
  } else {
    if (tensor.float_data_size() != count) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat(what, " holds ", tensor.float_data_size(),
                                    " values for ", count));
    }
    values.assign(tensor.float_data().begin(), tensor.float_data().end());
  }
  for (float v : values) {
    if (!std::isfinite(v)) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat(what, " holds NaN or Inf"));
    }
  }
  return values;
}

absl::StatusOr<std::string> OnnxConverter::ExternalBytes(const onnx::NodeProto& node,
                                                         const onnx::TensorProto& tensor,
                                                         uint64_t bytes) const {
  const std::string what = absl::StrCat("initializer '", tensor.name(), "'");
  auto refuse = [&](absl::string_view why) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat(what, " (external data): ", why));
  };
  if (base_dir_.empty()) return refuse("no model directory to read it from");
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const auto& entry : tensor.external_data()) {
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset" || entry.key() == "length") {
      uint64_t value;
      if (!absl::SimpleAtoi(entry.value(), &value)) {
        return refuse(absl::StrCat(entry.key(), " '", entry.value(),
                                   "' is not a non-negative integer"));
      }
      (entry.key() == "offset" ? offset : length.emplace()) = value;
    }
  }
  // Only files beside the model: a location may not reach elsewhere.
  const std::filesystem::path relative(location);
  if (location.empty()) return refuse("no location");
  if (relative.is_absolute()) return refuse(absl::StrCat("location '", location, "' is absolute"));
  for (const auto& part : relative) {
    if (part == "..") return refuse(absl::StrCat("location '", location, "' contains '..'"));
  }
  std::error_code error;
  const std::filesystem::path dir = std::filesystem::canonical(base_dir_, error);
  if (error) return refuse(absl::StrCat("model directory: ", error.message()));
  const std::filesystem::path file = std::filesystem::canonical(dir / relative, error);
  if (error) return refuse(absl::StrCat("'", location, "': ", error.message()));
  const std::string dir_prefix = dir.string() + "/";
  if (file.string().compare(0, dir_prefix.size(), dir_prefix) != 0) {
    return refuse(absl::StrCat("'", location, "' resolves outside the model's directory"));
  }
  if (length && *length != bytes) {
    return refuse(absl::StrCat("length ", *length, " disagrees with its shape (", bytes,
                               " bytes)"));
  }
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return refuse(absl::StrCat("'", location, "': ", std::strerror(errno)));
  struct stat info;
  std::string data;
  const bool sized = fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
  if (!sized || offset > static_cast<uint64_t>(info.st_size) ||
      static_cast<uint64_t>(info.st_size) - offset < bytes) {
    close(fd);
    return refuse(absl::StrCat("'", location, "' is ", sized ? info.st_size : 0,
                               " bytes, shorter than offset ", offset, " + length ", bytes));
  }
  data.resize(bytes);
  size_t done = 0;
  while (done < bytes) {
    const ssize_t got = pread(fd, data.data() + done, bytes - done,
                              static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  close(fd);
  if (done != bytes) return refuse(absl::StrCat("'", location, "': read failed"));
  return data;
}

int64_t IntAttribute(const onnx::NodeProto& node, absl::string_view name,
                     int64_t fallback) {
  for (const auto& attribute : node.attribute()) {
    if (attribute.name() == name) return attribute.i();
  }
  return fallback;
}

float FloatAttribute(const onnx::NodeProto& node, absl::string_view name,
                     float fallback) {
  for (const auto& attribute : node.attribute()) {
    if (attribute.name() == name) return attribute.f();
  }
  return fallback;
}

absl::Status OnnxConverter::AddLinear(const onnx::NodeProto& node, int64_t in,
                                      int64_t out, std::vector<float> weight,
                                      std::vector<float> bias) {
  if (state_.rank != 2) {
    return NodeError(absl::StatusCode::kUnimplemented, node,
                     absl::StrCat("input has rank ", state_.rank,
                                  "; add a Flatten before the first Linear"));
  }
  if (in <= 0 || out <= 0 || in > kMaxWidth || out > kMaxWidth) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("weight shape ", out, " x ", in,
                                  " is not a valid Linear layer"));
  }
  if (state_.width != 0 && state_.width != in) {
    return NodeError(
        absl::StatusCode::kInvalidArgument, node,
        absl::StrCat("expects ", in, " features but the ",
                     layers_.empty() ? "input has " : "previous layer gives ",
                     state_.width));
  }
  if (input_width_ == 0) input_width_ = in;
  state_.width = out;
  layers_.push_back(Layer::Linear(static_cast<int>(in), static_cast<int>(out),
                                  std::move(weight), std::move(bias)));
  return absl::OkStatus();
}

// Reads a bias operand that broadcasts over the rows: `out` values, or one.
absl::StatusOr<std::vector<float>> BroadcastBias(std::vector<float> values,
                                                 const onnx::TensorProto& tensor,
                                                 int64_t out) {
  // Every dim is positive (Floats checked), so this is a row vector exactly
  // when all but the last are 1.
  for (int i = 0; i + 1 < tensor.dims_size(); ++i) {
    if (tensor.dims(i) != 1) return absl::InvalidArgumentError("not a row vector");
  }
  if (out <= 0 || out > kMaxWidth) return absl::InvalidArgumentError("bad width");
  if (values.size() == static_cast<size_t>(out)) return values;
  if (values.size() == 1) return std::vector<float>(out, values[0]);
  return absl::InvalidArgumentError("wrong length");
}

absl::Status OnnxConverter::AddGemm(const onnx::NodeProto& node) {
  if (IntAttribute(node, "transA", 0) != 0) {
    return NodeError(absl::StatusCode::kUnimplemented, node,
                     "transA=1 would transpose the batch; not a Linear layer");
  }
  auto b = Weight(node, 1);
  if (!b.ok()) return b.status();
  if ((*b)->dims_size() != 2) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("weight '", (*b)->name(), "' has rank ",
                                  (*b)->dims_size(), ", expected 2"));
  }
  auto weight = Floats(node, **b);
  if (!weight.ok()) return weight.status();
  const bool trans_b = IntAttribute(node, "transB", 0) != 0;
  const int64_t rows = (*b)->dims(0);
  const int64_t cols = (*b)->dims(1);
  // Keep torch's layout, out x in: transB=1 already has it.
  const int64_t in = trans_b ? cols : rows;
  const int64_t out = trans_b ? rows : cols;
  std::vector<float> w;
  if (trans_b) {
    w = std::move(*weight);
  } else {
    w.resize(weight->size());
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t o = 0; o < out; ++o) w[o * in + i] = (*weight)[i * out + o];
    }
  }
  const float alpha = FloatAttribute(node, "alpha", 1.0f);
  if (alpha != 1.0f) {
    for (float& v : w) v *= alpha;
  }
  std::vector<float> bias;
  if (node.input_size() > 2 && !node.input(2).empty()) {
    auto c = Weight(node, 2);
    if (!c.ok()) return c.status();
    auto values = Floats(node, **c);
    if (!values.ok()) return values.status();
    auto broadcast = BroadcastBias(std::move(*values), **c, out);
    if (!broadcast.ok()) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat("bias '", (*c)->name(), "' does not match ",
                                    out, " outputs: ",
                                    broadcast.status().message()));
    }
    bias = std::move(*broadcast);
    const float beta = FloatAttribute(node, "beta", 1.0f);
    if (beta != 1.0f) {
      for (float& v : bias) v *= beta;
    }
  }
  return AddLinear(node, in, out, std::move(w), std::move(bias));
}

absl::Status OnnxConverter::AddMatMul(const onnx::NodeProto& node) {
  if (node.input_size() == 2) {
    if (auto folded = transposed_.find(node.input(1)); folded != transposed_.end()) {
      // MatMul(x, Transpose(W)): W is out x in, torch's layout as it is.
      const onnx::TensorProto& tensor = *constants_.at(folded->second);
      auto weight = Floats(node, tensor);
      if (!weight.ok()) return weight.status();
      return AddLinear(node, tensor.dims(1), tensor.dims(0), std::move(*weight), {});
    }
  }
  auto b = Weight(node, 1);
  if (!b.ok()) return b.status();
  if ((*b)->dims_size() != 2) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("weight '", (*b)->name(), "' has rank ",
                                  (*b)->dims_size(), ", expected 2"));
  }
  auto weight = Floats(node, **b);
  if (!weight.ok()) return weight.status();
  const int64_t in = (*b)->dims(0);
  const int64_t out = (*b)->dims(1);
  std::vector<float> w(weight->size());
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t o = 0; o < out; ++o) w[o * in + i] = (*weight)[i * out + o];
  }
  return AddLinear(node, in, out, std::move(w), {});
}

// Add of a constant right after MatMul or Gemm: the Linear's bias.
absl::Status OnnxConverter::AddBias(const onnx::NodeProto& node) {
  if (layers_.empty() || layers_.back().kind != LayerKind::kLinear ||
      node.input_size() != 2) {
    return NodeError(absl::StatusCode::kUnimplemented, node,
                     "Add is supported only as the bias right after a Linear");
  }
  const int constant_index = node.input(0) == node.input(1) ? -1
                             : constants_.count(node.input(0)) ? 0
                                                               : 1;
  if (constant_index < 0) {
    return NodeError(absl::StatusCode::kUnimplemented, node,
                     "Add is supported only as the bias right after a Linear");
  }
  auto c = Weight(node, constant_index);
  if (!c.ok()) return c.status();
  auto values = Floats(node, **c);
  if (!values.ok()) return values.status();
  Layer& linear = layers_.back();
  auto bias = BroadcastBias(std::move(*values), **c, linear.out_features);
  if (!bias.ok()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("bias '", (*c)->name(), "' does not match ",
                                  linear.out_features, " outputs: ",
                                  bias.status().message()));
  }
  if (linear.bias.empty()) linear.bias.assign(linear.out_features, 0.0f);
  for (int i = 0; i < linear.out_features; ++i) linear.bias[i] += (*bias)[i];
  return absl::OkStatus();
}

absl::Status OnnxConverter::CheckExtraOutputsUnused(const onnx::NodeProto& node) {
  for (int i = 1; i < node.output_size(); ++i) {
    const std::string& name = node.output(i);
    if (name.empty()) continue;
    bool is_graph_output = graph_.output(0).name() == name;
    if (consumers_.count(name) > 0 || is_graph_output) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat("output '", name,
                                    "' is used; not a chain"));
    }
  }
  return absl::OkStatus();
}

absl::Status OnnxConverter::AddNode(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx") {
    return NodeError(absl::StatusCode::kUnimplemented, node,
                     absl::StrCat("op domain '", node.domain(),
                                  "' is not supported"));
  }
  if (trailing_head_) {
    return NodeError(absl::StatusCode::kUnimplemented, node,
                     absl::StrCat("follows ", trailing_head_node_,
                                  "; Softmax must be the last op"));
  }
  if (absl::Status status = CheckExtraOutputsUnused(node); !status.ok()) {
    return status;
  }
  if (op == "Gemm") return AddGemm(node);
  if (op == "MatMul") return AddMatMul(node);
  if (op == "Add") return AddBias(node);
  if (op == "Relu") return AddActivation(Layer::Relu());
  if (op == "Tanh") return AddActivation(Layer::Tanh());
  if (op == "Sigmoid") return AddActivation(Layer::Sigmoid());
  if (op == "LeakyRelu") {
    return AddActivation(Layer::LeakyRelu(FloatAttribute(node, "alpha", 0.01f)));
  }
  if (op == "Elu") {
    return AddActivation(Layer::Elu(FloatAttribute(node, "alpha", 1.0f)));
  }
  if (op == "Identity" || op == "Dropout") return absl::OkStatus();
  if (op == "Flatten") {
    const int64_t axis = IntAttribute(node, "axis", 1);
    if (axis != 1 && !(axis == -1 && state_.rank == 2)) {
      return NodeError(absl::StatusCode::kUnimplemented, node,
                       absl::StrCat("axis ", axis,
                                    " would merge the batch; only axis 1 keeps "
                                    "one row per example"));
    }
    state_.rank = 2;
    return absl::OkStatus();
  }
  if (op == "Softmax") {
    const int64_t axis = IntAttribute(node, "axis", opset_ >= 13 ? -1 : 1);
    if (state_.rank != 2 || (axis != 1 && axis != -1)) {
      return NodeError(absl::StatusCode::kUnimplemented, node,
                       absl::StrCat("softmax over axis ", axis,
                                    "; only the last axis of a batch of rows "
                                    "is supported"));
    }
    trailing_head_ = Head::kSoftmax;
    trailing_head_node_ = absl::StrCat("Softmax '", node.name(), "'");
    return absl::OkStatus();
  }
  return NodeError(absl::StatusCode::kUnimplemented, node,
                   absl::StrCat("op ", op,
                                " is not supported in a Sequential model"));
}

absl::StatusOr<std::unique_ptr<Sequential>> OnnxConverter::Convert() {
  if (absl::Status s = CheckOpset(); !s.ok()) return s;
  if (absl::Status s = CheckStructure(); !s.ok()) return s;
  if (absl::Status s = CollectConstants(); !s.ok()) return s;
  if (absl::Status s = ReadInput(); !s.ok()) return s;

  // Walk the single path from the input to the output.
  const std::string& output_name = graph_.output(0).name();
  std::string current = input_name_;
  std::vector<bool> on_chain(graph_.node_size(), false);
  while (current != output_name) {
    auto it = consumers_.find(current);
    if (it == consumers_.end() || it->second.empty()) {
      return Error(absl::StatusCode::kInvalidArgument,
                   absl::StrCat("tensor '", current,
                                "' feeds no node and is not the graph output"));
    }
    if (it->second.size() > 1) {
      std::vector<std::string> names;
      for (int index : it->second) {
        names.push_back(absl::StrCat(graph_.node(index).op_type(), " ",
                                     NodeLabel(graph_.node(index), index)));
      }
      return Error(absl::StatusCode::kInvalidArgument,
                   absl::StrCat("not a chain: tensor '", current, "' feeds ",
                                it->second.size(), " nodes (",
                                absl::StrJoin(names, ", "), ")"));
    }
    const int index = it->second[0];
    if (on_chain[index]) {
      return Error(absl::StatusCode::kInvalidArgument, "graph has a cycle");
    }
    on_chain[index] = true;
    const onnx::NodeProto& node = graph_.node(index);
    const bool data_first = node.input_size() > 0 && node.input(0) == current;
    if (!data_first && node.op_type() != "Add") {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat("takes '", current,
                                    "' as a weight; not a chain"));
    }
    if (node.output_size() < 1 || node.output(0).empty()) {
      return NodeError(absl::StatusCode::kInvalidArgument, node, "has no output");
    }
    if (absl::Status s = AddNode(node); !s.ok()) return s;
    current = node.output(0);
  }

  // Every node must sit on that path.
  for (int i = 0; i < graph_.node_size(); ++i) {
    const auto& node = graph_.node(i);
    if (node.op_type() != "Constant" && !folded_[i] && !on_chain[i]) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       "is not on the chain from input to output");
    }
  }

  Head head = trailing_head_.value_or(Head::kLogits);
  if (!trailing_head_ && !layers_.empty() &&
      layers_.back().kind == LayerKind::kSigmoid) {
    // A final Sigmoid is the classifier's head, not a hidden layer.
    layers_.pop_back();
    head = Head::kSigmoid;
  }
  if (input_width_ == 0) {
    return Error(absl::StatusCode::kInvalidArgument,
                 "a Sequential model needs at least one Linear layer (Gemm or MatMul)");
  }
  const auto& out_dims = graph_.output(0).type().tensor_type().shape().dim();
  if (out_dims.size() == 2 && out_dims[1].has_dim_value() &&
      out_dims[1].dim_value() != state_.width) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("output '", output_name, "' declares ",
                              out_dims[1].dim_value(), " values but the last "
                              "layer gives ", state_.width));
  }
  auto model = Sequential::Create(static_cast<int>(input_width_),
                                  std::move(layers_), head);
  if (!model.ok()) {
    return Error(model.status().code(), model.status().message());
  }
  return model;
}

absl::StatusOr<std::unique_ptr<Sequential>> ParseOnnxBytes(
    absl::string_view bytes, absl::string_view name, const std::string& base_dir) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": not an ONNX model (protobuf parse failed; truncated?)"));
  }
  if (!model.has_graph()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not an ONNX model (no graph)"));
  }
  int64_t opset = 0;
  for (const auto& import : model.opset_import()) {
    if (import.domain().empty() || import.domain() == "ai.onnx") opset = import.version();
  }
  // Debian's checker stops at IR 8 and opset 17, and it would read external
  // data itself: it runs only on self-contained models within its range.
  bool external = false;
  for (const auto& tensor : model.graph().initializer()) {
    external = external || tensor.data_location() == onnx::TensorProto::EXTERNAL;
  }
  if (model.ir_version() <= kCheckerMaxIrVersion && opset <= kCheckerMaxOpset && !external) {
    try {
      onnx::checker::check_model(model);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": ONNX checker: ", e.what()));
    }
  }
  return OnnxConverter(model, name, base_dir).Convert();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Sequential>> ParseOnnxModel(
    absl::string_view bytes, absl::string_view name, const std::string& base_dir) {
  // The loader boundary: nothing a file holds may throw past it.
  try {
    return ParseOnnxBytes(bytes, name, base_dir);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name, ": out of memory while loading"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Sequential>> LoadOnnxModel(
    const std::string& path) {
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  return ParseOnnxModel(*bytes, path, base_dir.empty() ? "." : base_dir);
}

}  // namespace seqserve
