#include "core/onnx_loader.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_util.h"
#include "core/onnx_graph.h"
#include "core/onnx_modules.h"
#include "core/onnx_patterns.h"
#include "core/onnx_unsupported.h"

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
// every width inside the layers' int arguments.
constexpr int64_t kMaxWidth = Sequential::kMaxWidth;

// What the converter knows about the tensor flowing down the chain.
struct ChainState {
  int rank = 2;
  int64_t width = 0;  // 0 until known
};

class OnnxConverter {
 public:
  // `base_dir`: where external data files live; empty refuses them.
  OnnxConverter(const onnx::ModelProto& model, absl::string_view name, std::string base_dir,
                uint64_t graph_bytes, uint64_t max_model_bytes)
      : model_(model),
        graph_(model.graph()),
        name_(name),
        base_dir_(std::move(base_dir)),
        graph_bytes_(graph_bytes),
        max_model_bytes_(max_model_bytes) {}

  absl::StatusOr<std::unique_ptr<Sequential>> Convert();

 private:
  absl::Status CheckOpset();
  absl::Status CheckStructure() const;
  absl::Status ReadInput();
  // Converts the nodes that read `current`; sets `next` to the tensor the
  // chain goes on with.
  absl::Status Step(const std::string& current, std::vector<bool>& on_chain, std::string& next);
  absl::Status AddNode(const onnx::NodeProto& node);
  absl::Status AddGemm(const onnx::NodeProto& node);
  absl::Status AddMatMul(const onnx::NodeProto& node);
  absl::Status AddBias(const onnx::NodeProto& node);
  absl::Status AddHead(const onnx::NodeProto& node, Head head);
  absl::Status AddLinear(const onnx::NodeProto& node, int64_t in, int64_t out,
                         std::vector<float> weight, std::vector<float> bias);
  // Appends a Linear layer of Sequential module `module` after checking
  // its widths against the chain; `node` names it in errors.
  absl::Status AppendLinear(const onnx::NodeProto& node, Layer layer, std::optional<int> module);
  // Appends what a pattern matched, checking per-feature widths.
  absl::Status AddMatched(const onnx::NodeProto& first, LayerMatch match);
  absl::Status CheckExtraOutputsUnused(const onnx::NodeProto& node);
  // `status`, a refusal where the chain broke at `tensor`, naming the
  // PyTorch layer the nodes there most likely came from when seqserve does
  // not run it.
  absl::Status NameUnsupportedLayer(absl::Status status, const std::string& tensor) const;

  absl::Status Error(absl::StatusCode code, absl::string_view message) const {
    return absl::Status(code, absl::StrCat(name_, ": ", message));
  }
  absl::Status NodeError(absl::StatusCode code, const onnx::NodeProto& node,
                         absl::string_view message) const {
    return view_->NodeError(code, node, message);
  }

  const onnx::ModelProto& model_;
  const onnx::GraphProto& graph_;
  std::string name_;
  std::string base_dir_;
  uint64_t graph_bytes_;
  uint64_t max_model_bytes_;
  int64_t opset_ = 0;
  std::optional<OnnxGraph> view_;  // once the opset is known
  std::string input_name_;
  int64_t input_width_ = 0;
  ChainState state_;
  std::vector<Layer> layers_;
  // The Sequential module behind each layer, from node names.
  ModuleIndices modules_;
  // A Softmax or LogSoftmax seen at the end of the chain, or nullopt.
  std::optional<Head> trailing_head_;
  std::string trailing_head_node_;
};

std::string NodeLabel(const onnx::NodeProto& node, int index) {
  if (!node.name().empty()) return node.name();
  return absl::StrCat("#", index);
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
  view_.emplace(model_, name_, base_dir_, opset_);
  return absl::OkStatus();
}

// What the ONNX checker would refuse in a graph seqserve runs, for models
// beyond its range too: every node input defined before use, every name
// defined once.
// How many inputs the ops the patterns look into take (the ONNX spec's
// bounds): matchers read them by position, so a node with fewer is refused
// here rather than read past its end.
constexpr int kAnyCount = 2147483647;
struct Arity {
  const char* op;
  int min_inputs;
  int max_inputs;
};
constexpr Arity kArities[] = {
    {"Add", 2, 2},        {"Sub", 2, 2},         {"Mul", 2, 2},     {"Div", 2, 2},
    {"Pow", 2, 2},        {"Erf", 1, 1},         {"Tanh", 1, 1},    {"Sqrt", 1, 1},
    {"Sigmoid", 1, 1},    {"Relu", 1, 1},        {"Exp", 1, 1},     {"Log", 1, 1},
    {"Neg", 1, 1},        {"Softplus", 1, 1},    {"Softsign", 1, 1}, {"Identity", 1, 1},
    {"ReduceMean", 1, 2}, {"Clip", 1, 3},        {"Max", 1, kAnyCount},
    {"Min", 1, kAnyCount}, {"Reciprocal", 1, 1}};

absl::Status OnnxConverter::CheckStructure() const {
  std::unordered_map<std::string, int> defined;  // name -> 0 graph, 1 node
  for (const auto& input : graph_.input()) defined.emplace(input.name(), 0);
  for (const auto& tensor : graph_.initializer()) defined.emplace(tensor.name(), 0);
  for (const auto& node : graph_.node()) {
    for (const Arity& arity : kArities) {
      if (node.op_type() != arity.op) continue;
      if (node.input_size() < arity.min_inputs || node.input_size() > arity.max_inputs) {
        return NodeError(absl::StatusCode::kInvalidArgument, node,
                         absl::StrCat("has ", node.input_size(), " inputs; ", arity.op,
                                      " takes ", arity.min_inputs,
                                      arity.max_inputs == arity.min_inputs ? ""
                                      : arity.max_inputs == kAnyCount
                                          ? " or more"
                                          : absl::StrCat(" to ", arity.max_inputs)));
      }
    }
    if (node.output_size() == 0) {
      return NodeError(absl::StatusCode::kInvalidArgument, node, "has no output");
    }
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

absl::Status OnnxConverter::ReadInput() {
  std::vector<const onnx::ValueInfoProto*> data_inputs;
  for (const auto& input : graph_.input()) {
    if (!view_->IsConstant(input.name())) data_inputs.push_back(&input);
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
  // A float16 or bfloat16 model (torch's model.half()) takes the same rows:
  // its weights widen exactly and its layers compute in float32.
  if (type.elem_type() != onnx::TensorProto::FLOAT &&
      type.elem_type() != onnx::TensorProto::FLOAT16 &&
      type.elem_type() != onnx::TensorProto::BFLOAT16) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("input '", input_name_, "' has element type ",
                              onnx::TensorProto::DataType_Name(
                                  static_cast<onnx::TensorProto::DataType>(
                                      type.elem_type())),
                              "; inputs are float32, float16 or bfloat16"));
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

absl::Status OnnxConverter::AddLinear(const onnx::NodeProto& node, int64_t in,
                                      int64_t out, std::vector<float> weight,
                                      std::vector<float> bias) {
  // Floats() has bounded every dimension by kMaxWidth: the casts are exact.
  return AppendLinear(node,
                      Layer::Linear(static_cast<int>(in), static_cast<int>(out),
                                    std::move(weight), std::move(bias)),
                      ModuleIndexOf(node.name()));
}

absl::Status OnnxConverter::AppendLinear(const onnx::NodeProto& node, Layer layer,
                                         std::optional<int> module) {
  const int64_t in = layer.in_features;
  const int64_t out = layer.out_features;
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
  layers_.push_back(std::move(layer));
  modules_.AddLayer(module);
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
  auto b = view_->Weight(node, 1);
  if (!b.ok()) return b.status();
  if ((*b)->dims_size() != 2) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("weight '", (*b)->name(), "' has rank ",
                                  (*b)->dims_size(), ", expected 2"));
  }
  auto weight = view_->Floats(node, **b);
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
    auto c = view_->Weight(node, 2);
    if (!c.ok()) return c.status();
    auto values = view_->Floats(node, **c);
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
    if (const onnx::TensorProto* folded = view_->TransposedWeight(node.input(1))) {
      // MatMul(x, Transpose(W)): W is out x in, torch's layout as it is.
      const onnx::TensorProto& tensor = *folded;
      auto weight = view_->Floats(node, tensor);
      if (!weight.ok()) return weight.status();
      return AddLinear(node, tensor.dims(1), tensor.dims(0), std::move(*weight), {});
    }
  }
  auto b = view_->Weight(node, 1);
  if (!b.ok()) return b.status();
  if ((*b)->dims_size() != 2) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("weight '", (*b)->name(), "' has rank ",
                                  (*b)->dims_size(), ", expected 2"));
  }
  auto weight = view_->Floats(node, **b);
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
                             : view_->IsConstant(node.input(0)) ? 0
                                                               : 1;
  if (constant_index < 0) {
    return NodeError(absl::StatusCode::kUnimplemented, node,
                     "Add is supported only as the bias right after a Linear");
  }
  auto c = view_->Weight(node, constant_index);
  if (!c.ok()) return c.status();
  auto values = view_->Floats(node, **c);
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
  modules_.AddToLastLayer(ModuleIndexOf(node.name()));
  return absl::OkStatus();
}

absl::Status OnnxConverter::CheckExtraOutputsUnused(const onnx::NodeProto& node) {
  for (int i = 1; i < node.output_size(); ++i) {
    const std::string& name = node.output(i);
    if (name.empty()) continue;
    bool is_graph_output = graph_.output(0).name() == name;
    if (!view_->Users(name).empty() || is_graph_output) {
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
  if (op == "Flatten") {
    const int64_t axis = IntAttribute(node, "axis", 1);
    if (axis != 1 && !(axis == -1 && state_.rank == 2)) {
      return NodeError(absl::StatusCode::kUnimplemented, node,
                       absl::StrCat("axis ", axis,
                                    " would merge the batch; only axis 1 keeps "
                                    "one row per example"));
    }
    state_.rank = 2;
    modules_.AddNoOp(ModuleIndexOf(node.name()), Layer::Flatten());
    return absl::OkStatus();
  }
  if (op == "Softmax") return AddHead(node, Head::kSoftmax);
  if (op == "LogSoftmax") return AddHead(node, Head::kLogSoftmax);
  return NodeError(absl::StatusCode::kUnimplemented, node,
                   absl::StrCat("op ", op, " is not supported in a Sequential model"));
}

// Softmax or LogSoftmax over each row: the model's default head. Before
// opset 13 the axis defaults to 1 and flattens from it; from 13 it defaults
// to -1; on a batch of rows both are the row.
absl::Status OnnxConverter::AddHead(const onnx::NodeProto& node, Head head) {
  const int64_t axis = IntAttribute(node, "axis", opset_ >= 13 ? -1 : 1);
  if (state_.rank != 2 || (axis != 1 && axis != -1)) {
    return NodeError(absl::StatusCode::kUnimplemented, node,
                     absl::StrCat(HeadName(head), " over axis ", axis,
                                  "; only the last axis of a batch of rows is supported"));
  }
  trailing_head_ = head;
  modules_.SetHead(ModuleIndexOf(node.name()));
  trailing_head_node_ = absl::StrCat(node.op_type(), " '", node.name(), "'");
  return absl::OkStatus();
}

absl::Status OnnxConverter::AddMatched(const onnx::NodeProto& first, LayerMatch match) {
  // The module of the window's nodes, when they all name the same one.
  std::optional<int> module = ModuleIndexOf(first.name());
  for (int index : match.nodes) {
    if (ModuleIndexOf(graph_.node(index).name()) != module) module = std::nullopt;
  }
  if (match.layers.empty()) {
    modules_.AddNoOp(module,
                     first.op_type() == "Dropout" ? Layer::Dropout() : Layer::Identity());
  }
  for (Layer& layer : match.layers) {
    if (layer.kind == LayerKind::kLinear) {
      // A quantized MatMul's window is named after its MatMul node.
      std::optional<int> linear_module = module;
      for (int index : match.nodes) {
        if (graph_.node(index).op_type() == "MatMulInteger") {
          linear_module = ModuleIndexOf(graph_.node(index).name());
        }
      }
      if (absl::Status s = AppendLinear(first, std::move(layer), linear_module); !s.ok()) {
        return s;
      }
      continue;
    }
    // A step of arithmetic right after another of the same module (or of
    // no known module) joins its layer: (x - mean) / std lists as one.
    const bool joins = layer.kind == LayerKind::kElementwise && !layers_.empty() &&
                       layers_.back().kind == LayerKind::kElementwise &&
                       modules_.LastIsLayerOf(module);
    if (layer.out_features > 0) {
      // A per-feature layer sees one row per example only on rank 2.
      if (state_.rank != 2) {
        return NodeError(absl::StatusCode::kUnimplemented, first,
                         absl::StrCat(layer.Describe(), " on rank ", state_.rank,
                                      " input; add a Flatten before it"));
      }
      if (state_.width != 0 && state_.width != layer.out_features) {
        return NodeError(absl::StatusCode::kInvalidArgument, first,
                         absl::StrCat(layer.Describe(), " has ", layer.out_features,
                                      " features but the ",
                                      layers_.empty() ? "input has " : "previous layer gives ",
                                      state_.width));
      }
      state_.width = layer.out_features;
    }
    if (joins) {
      Layer& last = layers_.back();
      for (ElementwiseStep& step : layer.steps) last.steps.push_back(std::move(step));
      if (layer.out_features > 0) {
        last.in_features = layer.out_features;
        last.out_features = layer.out_features;
      }
      modules_.AddToLastLayer(module);
      continue;
    }
    layers_.push_back(std::move(layer));
    modules_.AddLayer(module);
  }
  return absl::OkStatus();
}

absl::Status OnnxConverter::Step(const std::string& current, std::vector<bool>& on_chain,
                                 std::string& next) {
  const std::vector<int>& users = view_->Users(current);
  if (users.empty()) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("tensor '", current, "' feeds no node and is not the graph output"));
  }
  for (int index : users) {
    if (on_chain[index]) return Error(absl::StatusCode::kInvalidArgument, "graph has a cycle");
  }
  const onnx::NodeProto& first = graph_.node(users[0]);
  if (trailing_head_) {
    return NodeError(absl::StatusCode::kUnimplemented, first,
                     absl::StrCat("follows ", trailing_head_node_,
                                  "; Softmax must be the last op"));
  }
  for (int index : users) {
    const onnx::NodeProto& node = graph_.node(index);
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      return NodeError(absl::StatusCode::kUnimplemented, node,
                       absl::StrCat("op domain '", node.domain(), "' is not supported"));
    }
  }
  // Ops that shape the chain itself (Linear, its bias, Flatten, the head).
  // An Add is a bias only right after a Linear; elsewhere it is arithmetic
  // with a constant, matched as a layer.
  static const char* const kChainOps[] = {"Gemm", "MatMul", "Flatten", "Softmax",
                                          "LogSoftmax"};
  const bool bias = first.op_type() == "Add" && !layers_.empty() &&
                    layers_.back().kind == LayerKind::kLinear;
  const bool chain_op = users.size() == 1 &&
                        (bias || std::find(std::begin(kChainOps), std::end(kChainOps),
                                           first.op_type()) != std::end(kChainOps));
  if (!chain_op) {
    for (const LayerPattern& pattern : LayerPatterns()) {
      auto match = pattern.match(*view_, current);
      if (!match.ok()) return match.status();
      if (!match->has_value()) continue;
      LayerMatch& found = **match;
      // The window is closed: nothing outside it reads the input or any
      // tensor inside it, and every node of it ran once.
      for (int index : users) {
        if (std::find(found.nodes.begin(), found.nodes.end(), index) == found.nodes.end()) {
          return NodeError(absl::StatusCode::kInvalidArgument, graph_.node(index),
                           absl::StrCat("reads '", current, "' beside ", pattern.name,
                                        "; not a chain"));
        }
      }
      for (int index : found.nodes) {
        const onnx::NodeProto& node = graph_.node(index);
        if (on_chain[index]) return Error(absl::StatusCode::kInvalidArgument, "graph has a cycle");
        on_chain[index] = true;
        for (const std::string& output : node.output()) {
          if (output.empty() || output == found.output) continue;
          bool inside = output != graph_.output(0).name();
          for (int user : view_->Users(output)) {
            inside = inside &&
                     std::find(found.nodes.begin(), found.nodes.end(), user) != found.nodes.end();
          }
          if (!inside) {
            return NodeError(absl::StatusCode::kInvalidArgument, node,
                             absl::StrCat("output '", output, "' inside ", pattern.name,
                                          " is used elsewhere; not a chain"));
          }
        }
      }
      next = found.output;
      return AddMatched(first, std::move(found));
    }
  }
  if (users.size() > 1) {
    std::vector<std::string> names;
    for (int index : users) {
      names.push_back(absl::StrCat(graph_.node(index).op_type(), " ",
                                   NodeLabel(graph_.node(index), index)));
    }
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("not a chain: tensor '", current, "' feeds ", users.size(),
                              " nodes (", absl::StrJoin(names, ", "), ")"));
  }
  on_chain[users[0]] = true;
  const bool data_first = first.input_size() > 0 && first.input(0) == current;
  if (!data_first && first.op_type() != "Add") {
    return NodeError(absl::StatusCode::kInvalidArgument, first,
                     absl::StrCat("takes '", current, "' as a weight; not a chain"));
  }
  if (first.output_size() < 1 || first.output(0).empty()) {
    return NodeError(absl::StatusCode::kInvalidArgument, first, "has no output");
  }
  if (absl::Status s = AddNode(first); !s.ok()) return s;
  next = first.output(0);
  return absl::OkStatus();
}

absl::Status OnnxConverter::NameUnsupportedLayer(absl::Status status,
                                                 const std::string& tensor) const {
  if (status.code() != absl::StatusCode::kInvalidArgument &&
      status.code() != absl::StatusCode::kUnimplemented) {
    return status;
  }
  const std::optional<std::string> layer = UnsupportedLayerAt(*view_, tensor);
  if (!layer) return status;
  return absl::Status(status.code(),
                      absl::StrCat(status.message(), "; this looks like PyTorch's ", *layer,
                                   ", which seqserve does not run: see ",
                                   kUnsupportedLayersSection));
}

absl::StatusOr<std::unique_ptr<Sequential>> OnnxConverter::Convert() {
  if (absl::Status s = CheckOpset(); !s.ok()) return s;
  if (absl::Status s = view_->CheckDataFileSizes(graph_bytes_, max_model_bytes_); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckStructure(); !s.ok()) return s;
  if (absl::Status s = ReadInput(); !s.ok()) return s;

  // Walk the single path from the input to the output.
  const std::string& output_name = graph_.output(0).name();
  std::string current = input_name_;
  std::vector<bool> on_chain(graph_.node_size(), false);
  while (current != output_name) {
    std::string next;
    if (absl::Status s = Step(current, on_chain, next); !s.ok()) {
      return NameUnsupportedLayer(std::move(s), current);
    }
    current = next;
  }

  // Every node must sit on that path.
  for (int i = 0; i < graph_.node_size(); ++i) {
    const auto& node = graph_.node(i);
    if (!view_->IsLoadTime(i) && !on_chain[i]) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       "is not on the chain from input to output");
    }
  }

  Head head = trailing_head_.value_or(Head::kLogits);
  if (!trailing_head_ && !layers_.empty() &&
      layers_.back().kind == LayerKind::kSigmoid) {
    // A final Sigmoid is the classifier's head, not a hidden layer.
    layers_.pop_back();
    modules_.LastLayerIsHead();
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
  // Modules the export left no node for, listed where torch has them.
  layers_ = modules_.Place(std::move(layers_));
  // A file that stores Linear layers in int8 runs in INT8; its float
  // Linear layers, if any, are quantized at load as INT8 does.
  const bool stored_int8 = std::any_of(layers_.begin(), layers_.end(), [](const Layer& layer) {
    return !layer.int8_weight.empty();
  });
  auto model = Sequential::Create(static_cast<int>(input_width_), std::move(layers_), head,
                                  stored_int8 ? Precision::kInt8 : Precision::kFp32);
  if (!model.ok()) {
    return Error(model.status().code(), model.status().message());
  }
  (*model)->set_tensor_names({input_name_, output_name});
  return model;
}

absl::StatusOr<std::unique_ptr<Sequential>> ParseOnnxBytes(absl::string_view bytes,
                                                           absl::string_view name,
                                                           const std::string& base_dir,
                                                           uint64_t max_model_bytes) {
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
  return OnnxConverter(model, name, base_dir, bytes.size(), max_model_bytes).Convert();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Sequential>> ParseOnnxModel(absl::string_view bytes,
                                                           absl::string_view name,
                                                           const std::string& base_dir,
                                                           uint64_t max_model_bytes) {
  // The loader boundary: nothing a file holds may throw past it.
  try {
    return ParseOnnxBytes(bytes, name, base_dir, max_model_bytes);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name, ": out of memory while loading"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Sequential>> LoadOnnxModel(const std::string& path,
                                                          const ModelLoadOptions& options) {
  // The graph's own size is checked before it is read, the data files'
  // before any of them is.
  auto bytes = ReadFileToString(path, std::min(options.max_model_bytes, kMaxModelFileBytes));
  if (!bytes.ok()) return bytes.status();
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  return ParseOnnxModel(*bytes, path, base_dir.empty() ? "." : base_dir,
                        options.max_model_bytes);
}

}  // namespace seqserve
