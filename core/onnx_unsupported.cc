#include "core/onnx_unsupported.h"

#include <set>

#include "absl/strings/str_cat.h"

namespace seqserve {
namespace {

bool Has(const std::set<std::string>& ops, const char* op) { return ops.count(op) > 0; }

// The node whose first output is `tensor`, or null (a graph input).
const onnx::NodeProto* Producer(const OnnxGraph& g, const std::string& tensor) {
  for (const auto& node : g.graph().node()) {
    if (node.output_size() > 0 && node.output(0) == tensor) return &node;
  }
  return nullptr;
}

// Whether the one user of `node`'s output has op `op`.
bool FeedsOnly(const OnnxGraph& g, const onnx::NodeProto& node, const char* op) {
  if (node.output_size() == 0) return false;
  const auto& users = g.Users(node.output(0));
  return users.size() == 1 && g.node(users[0]).op_type() == op;
}

// "nn.Conv2d" from a prefix and a spatial rank of 1 to 3, else `fallback`.
std::string ByRank(const char* prefix, int rank, const char* fallback) {
  if (rank >= 1 && rank <= 3) return absl::StrCat(prefix, rank, "d");
  return fallback;
}

}  // namespace

std::optional<std::string> UnsupportedLayerAt(const OnnxGraph& g, const std::string& tensor) {
  const auto& users = g.Users(tensor);
  if (users.empty()) return std::nullopt;
  std::set<std::string> ops;
  for (int index : users) ops.insert(g.node(index).op_type());
  const onnx::NodeProto& first = g.node(users[0]);

  // ONNX's own Shrink: bias lambd is Softshrink, bias 0 Hardshrink.
  if (ops == std::set<std::string>{"Shrink"}) {
    return FloatAttribute(first, "bias", 0.0f) != 0.0f ? "nn.Softshrink" : "nn.Hardshrink";
  }
  // x - tanh(x).
  if (ops == std::set<std::string>{"Tanh", "Sub"}) return "nn.Tanhshrink";
  // The shrinks and Threshold compare x (or |x|) with a constant and pick
  // with Where: torch 1.13 writes Softshrink as Greater, Sub, Less, Add and
  // Hardshrink as Greater, Less, Where; the opset-18 exporter writes
  // Softshrink as Abs, Sign, Sub, Mul, Hardshrink as Abs, Where and
  // Threshold as LessOrEqual, Where.
  const bool compares = Has(ops, "Greater") || Has(ops, "Less") ||
                        Has(ops, "GreaterOrEqual") || Has(ops, "LessOrEqual");
  if (compares || Has(ops, "Abs")) {
    static const std::set<std::string> kShrinkOps = {
        "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Abs", "Sign",
        "Sub",     "Add",  "Mul",            "Where"};
    for (const std::string& op : ops) {
      if (kShrinkOps.count(op) == 0) return std::nullopt;
    }
    if (Has(ops, "Sub") || Has(ops, "Add") || Has(ops, "Sign")) return "nn.Softshrink";
    const bool two_sided = Has(ops, "Abs") || ((Has(ops, "Greater") || Has(ops, "GreaterOrEqual")) &&
                                               (Has(ops, "Less") || Has(ops, "LessOrEqual")));
    if (two_sided && (Has(ops, "Where") || compares)) return "nn.Hardshrink";
    if (compares && Has(ops, "Where")) return "nn.Threshold";
    return std::nullopt;
  }
  if (users.size() != 1) return std::nullopt;
  const std::string& op = first.op_type();
  // Split in two halves, one through Sigmoid, multiplied.
  if (op == "Split" && first.output_size() == 2) return "nn.GLU";
  // Softmax of -x, last.
  if (op == "Neg" && (FeedsOnly(g, first, "Softmax") || FeedsOnly(g, first, "LogSoftmax"))) {
    return "nn.Softmin";
  }
  // log(sigmoid(x)): the Sigmoid was read as a layer; the Log is left.
  if (op == "Log") {
    const onnx::NodeProto* producer = Producer(g, tensor);
    if (producer != nullptr && producer->op_type() == "Sigmoid") return "nn.LogSigmoid";
    return std::nullopt;
  }
  if (op == "Conv" || op == "ConvTranspose") {
    // The weight's rank (out, in, kernel...) tells 1d from 2d and 3d.
    int rank = 0;
    if (first.input_size() > 1 && g.IsConstant(first.input(1))) {
      auto weight = g.Weight(first, 1);
      if (weight.ok()) rank = (*weight)->dims_size() - 2;
    }
    return ByRank(op == "Conv" ? "nn.Conv" : "nn.ConvTranspose", rank,
                         op == "Conv" ? "nn.Conv1d or nn.Conv2d" : "nn.ConvTranspose2d");
  }
  if (op == "MaxPool" || op == "AveragePool") {
    const int rank = static_cast<int>(IntsAttribute(first, "kernel_shape").size());
    return ByRank(op == "MaxPool" ? "nn.MaxPool" : "nn.AvgPool", rank,
                         op == "MaxPool" ? "nn.MaxPool2d" : "nn.AvgPool2d");
  }
  if (op == "LSTM" || op == "GRU" || op == "RNN") return absl::StrCat("nn.", op);
  return std::nullopt;
}

}  // namespace seqserve
