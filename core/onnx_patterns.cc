#include "core/onnx_patterns.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/onnx_quantized.h"

namespace seqserve {
namespace {

using Node = onnx::NodeProto;

// ---------------------------------------------------------------------------
// Helpers for walking a window of nodes.

// The one user of `tensor` with op `op`, or -1 (none, or several).
int UserOf(const OnnxGraph& g, const std::string& tensor, absl::string_view op) {
  int found = -1;
  for (int index : g.Users(tensor)) {
    if (g.node(index).op_type() != op) continue;
    if (found >= 0) return -1;
    found = index;
  }
  return found;
}

// The only user of `tensor` when it has op `op`, or -1.
int SoleUser(const OnnxGraph& g, const std::string& tensor, absl::string_view op) {
  const auto& users = g.Users(tensor);
  return users.size() == 1 && g.node(users[0]).op_type() == op ? users[0] : -1;
}

// The only user of `tensor`, or -1.
int OnlyUser(const OnnxGraph& g, const std::string& tensor) {
  const auto& users = g.Users(tensor);
  return users.size() == 1 ? users[0] : -1;
}

// For a node of two inputs one of which is `tensor`: the other, else "".
std::string OtherInput(const Node& node, const std::string& tensor) {
  if (node.input_size() != 2 || node.input(0) == node.input(1)) return "";
  if (node.input(0) == tensor) return node.input(1);
  if (node.input(1) == tensor) return node.input(0);
  return "";
}

std::string Out(const Node& node) { return node.output_size() > 0 ? node.output(0) : ""; }

// The value of a one-element float or double constant, or nullopt for
// anything else (a constant of more values, or no constant at all).
absl::StatusOr<std::optional<double>> Scalar(const OnnxGraph& g, const Node& node,
                                             const std::string& tensor) {
  if (tensor.empty() || !g.IsConstant(tensor)) return std::nullopt;
  int index = 0;
  while (index < node.input_size() && node.input(index) != tensor) ++index;
  auto weight = g.Weight(node, index);
  if (!weight.ok()) return weight.status();
  const onnx::TensorProto& t = **weight;
  // One element: every dim is 1 (a product of dims could overflow).
  for (int64_t dim : t.dims()) {
    if (dim != 1) return std::nullopt;
  }
  if (t.data_type() == onnx::TensorProto::DOUBLE) {
    if (t.double_data_size() == 1) return t.double_data(0);
    if (t.raw_data().size() != sizeof(double)) return std::nullopt;
    double value;
    std::memcpy(&value, t.raw_data().data(), sizeof(value));
    return value;
  }
  if (t.data_type() != onnx::TensorProto::FLOAT && t.data_type() != onnx::TensorProto::FLOAT16 &&
      t.data_type() != onnx::TensorProto::BFLOAT16) {
    return std::nullopt;
  }
  auto values = g.Floats(node, t);
  if (!values.ok()) return values.status();
  return static_cast<double>((*values)[0]);
}

// Whether `value` is `want` as a float constant can hold it.
bool Near(double value, double want) {
  return std::fabs(value - want) <= 1e-6 * std::max(1.0, std::fabs(want));
}

// The refusal of a pattern that started and stopped matching at `node`.
absl::Status Stop(const OnnxGraph& g, const Node& node, absl::string_view pattern,
                  absl::string_view why) {
  return g.NodeError(absl::StatusCode::kUnimplemented, node,
                     absl::StrCat(pattern, " stops matching here: ", why,
                                  "; refused rather than run approximately"));
}

// The scalar operand of binary `node` (the one that is not `tensor`), or a
// refusal naming the node when it is not `want`.
absl::Status ExpectScalar(const OnnxGraph& g, const Node& node, const std::string& tensor,
                          double want, absl::string_view pattern, absl::string_view role) {
  auto value = Scalar(g, node, OtherInput(node, tensor));
  if (!value.ok()) return value.status();
  if (!value->has_value()) {
    return Stop(g, node, pattern, absl::StrCat("expected ", role, " ", want, " as a constant"));
  }
  if (!Near(**value, want)) {
    return Stop(g, node, pattern, absl::StrCat(role, " is ", **value, ", expected ", want));
  }
  return absl::OkStatus();
}

// Follows the single user of `tensor`, which must have op `op`; refuses at
// `from` (the node that produced `tensor`) otherwise.
absl::StatusOr<int> Next(const OnnxGraph& g, const Node& from, absl::string_view op,
                         absl::string_view pattern) {
  const int next = OnlyUser(g, Out(from));
  if (next < 0 || g.node(next).op_type() != op) {
    return Stop(g, from, pattern,
                absl::StrCat("its output should feed one ", op,
                             next < 0 ? " node only" : absl::StrCat(", not ", g.node(next).op_type())));
  }
  return next;
}

// The last two steps of GELU's forms: multiply by `x` and by 0.5, in
// either order, starting at the node that reads `inner`.
absl::StatusOr<std::vector<int>> TimesHalfX(const OnnxGraph& g, const std::string& x,
                                            const Node& from, absl::string_view pattern) {
  auto first = Next(g, from, "Mul", pattern);
  if (!first.ok()) return first.status();
  auto second = Next(g, g.node(*first), "Mul", pattern);
  if (!second.ok()) return second.status();
  const Node& a = g.node(*first);
  const Node& b = g.node(*second);
  const bool x_first = OtherInput(a, Out(from)) == x;
  const Node& by_x = x_first ? a : b;
  const Node& by_half = x_first ? b : a;
  const std::string by_x_input = x_first ? Out(from) : Out(a);
  const std::string by_half_input = x_first ? Out(a) : Out(from);
  if (OtherInput(by_x, by_x_input) != x) {
    return Stop(g, by_x, pattern, "should multiply by the layer's input");
  }
  if (absl::Status s = ExpectScalar(g, by_half, by_half_input, 0.5, pattern, "factor");
      !s.ok()) {
    return s;
  }
  return std::vector<int>{*first, *second};
}

LayerMatch Matched(std::vector<Layer> layers, std::vector<int> nodes, const OnnxGraph& g) {
  LayerMatch match;
  match.layers = std::move(layers);
  match.output = Out(g.node(nodes.back()));
  match.nodes = std::move(nodes);
  return match;
}

// ---------------------------------------------------------------------------
// Multi-node windows.

// x * 0.5 * (1 + erf(x / sqrt(2))), as torch 1.13 and the opset-18
// exporter write GELU.
PatternResult GeluErf(const OnnxGraph& g, const std::string& x) {
  constexpr absl::string_view kName = "GELU (Erf form)";
  const int div = UserOf(g, x, "Div");
  if (div < 0 || g.node(div).input(0) != x) return std::nullopt;
  const int erf = SoleUser(g, Out(g.node(div)), "Erf");
  if (erf < 0) return std::nullopt;
  if (absl::Status s = ExpectScalar(g, g.node(div), x, M_SQRT2, kName, "divisor"); !s.ok()) {
    return s;
  }
  auto add = Next(g, g.node(erf), "Add", kName);
  if (!add.ok()) return add.status();
  if (absl::Status s = ExpectScalar(g, g.node(*add), Out(g.node(erf)), 1.0, kName, "addend");
      !s.ok()) {
    return s;
  }
  auto tail = TimesHalfX(g, x, g.node(*add), kName);
  if (!tail.ok()) return tail.status();
  return Matched({Layer::Gelu(false)}, {div, erf, *add, (*tail)[0], (*tail)[1]}, g);
}

// 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), with the cube
// as Pow(x, 3) or Mul(x, Mul(x, x)).
PatternResult GeluTanh(const OnnxGraph& g, const std::string& x) {
  constexpr absl::string_view kName = "GELU (tanh form)";
  std::vector<int> nodes;
  std::string cube;
  if (const int pow = UserOf(g, x, "Pow"); pow >= 0 && g.node(pow).input(0) == x) {
    auto exponent = Scalar(g, g.node(pow), g.node(pow).input(1));
    if (!exponent.ok()) return exponent.status();
    if (!exponent->has_value() || !Near(**exponent, 3.0)) return std::nullopt;
    nodes.push_back(pow);
    cube = Out(g.node(pow));
  } else {
    int square = -1;
    for (int index : g.Users(x)) {
      const Node& n = g.node(index);
      if (n.op_type() == "Mul" && n.input_size() == 2 && n.input(0) == x && n.input(1) == x) {
        square = index;
      }
    }
    if (square < 0) return std::nullopt;
    const int times_x = SoleUser(g, Out(g.node(square)), "Mul");
    if (times_x < 0 || OtherInput(g.node(times_x), Out(g.node(square))) != x) {
      return std::nullopt;
    }
    nodes = {square, times_x};
    cube = Out(g.node(times_x));
  }
  // The cube is distinctive: from here on a difference is a near miss.
  const Node& cube_node = g.node(nodes.back());
  auto kappa = Next(g, cube_node, "Mul", kName);
  if (!kappa.ok()) return kappa.status();
  if (absl::Status s = ExpectScalar(g, g.node(*kappa), cube, 0.044715, kName, "factor"); !s.ok()) {
    return s;
  }
  auto sum = Next(g, g.node(*kappa), "Add", kName);
  if (!sum.ok()) return sum.status();
  if (OtherInput(g.node(*sum), Out(g.node(*kappa))) != x) {
    return Stop(g, g.node(*sum), kName, "should add the layer's input");
  }
  auto beta = Next(g, g.node(*sum), "Mul", kName);
  if (!beta.ok()) return beta.status();
  if (absl::Status s = ExpectScalar(g, g.node(*beta), Out(g.node(*sum)),
                                    std::sqrt(2.0 / M_PI), kName, "factor");
      !s.ok()) {
    return s;
  }
  auto tanh = Next(g, g.node(*beta), "Tanh", kName);
  if (!tanh.ok()) return tanh.status();
  auto one = Next(g, g.node(*tanh), "Add", kName);
  if (!one.ok()) return one.status();
  if (absl::Status s = ExpectScalar(g, g.node(*one), Out(g.node(*tanh)), 1.0, kName, "addend");
      !s.ok()) {
    return s;
  }
  auto tail = TimesHalfX(g, x, g.node(*one), kName);
  if (!tail.ok()) return tail.status();
  nodes.insert(nodes.end(), {*kappa, *sum, *beta, *tanh, *one, (*tail)[0], (*tail)[1]});
  return Matched({Layer::Gelu(true)}, std::move(nodes), g);
}

// ReduceMean's axes, by the opset's rules (attribute before 18, input
// after); nullopt when absent.
absl::StatusOr<std::optional<std::vector<int64_t>>> ReduceAxes(const OnnxGraph& g,
                                                               const Node& node) {
  if (g.opset() < 18) {
    if (!HasAttribute(node, "axes")) return std::nullopt;
    return IntsAttribute(node, "axes");
  }
  if (node.input_size() < 2 || node.input(1).empty()) return std::nullopt;
  auto axes = g.InputInts(node, 1);
  if (!axes.ok()) return axes.status();
  return *axes;
}

// A ReduceMean over the last axis of a batch of rows, keeping dims.
absl::Status ExpectMeanOverRow(const OnnxGraph& g, const Node& node, absl::string_view pattern) {
  auto axes = ReduceAxes(g, node);
  if (!axes.ok()) return axes.status();
  const bool last = axes->has_value() && axes->value().size() == 1 &&
                    (axes->value()[0] == -1 || axes->value()[0] == 1);
  if (!last) {
    return Stop(g, node, pattern,
                absl::StrCat("reduces over axes [",
                             axes->has_value() ? absl::StrJoin(axes->value(), ", ") : "all",
                             "], not the last axis of the rows"));
  }
  if (IntAttribute(node, "keepdims", 1) != 1) {
    return Stop(g, node, pattern, "keepdims=0 would not broadcast back over the row");
  }
  return absl::OkStatus();
}

// (x - mean) / sqrt(var + eps) * weight + bias, with mean and var as
// ReduceMean over the row: what exporters wrote before LayerNormalization.
PatternResult LayerNormChain(const OnnxGraph& g, const std::string& x) {
  constexpr absl::string_view kName = "LayerNorm (ReduceMean form)";
  const int mean = UserOf(g, x, "ReduceMean");
  const int sub = UserOf(g, x, "Sub");
  if (mean < 0 || sub < 0 || g.node(mean).input(0) != x) return std::nullopt;
  const Node& sub_node = g.node(sub);
  if (sub_node.input_size() != 2 || sub_node.input(0) != x ||
      sub_node.input(1) != Out(g.node(mean))) {
    return std::nullopt;
  }
  if (absl::Status s = ExpectMeanOverRow(g, g.node(mean), kName); !s.ok()) return s;
  const std::string centered = Out(sub_node);
  // centered feeds the square (Pow or Mul) and the Div.
  int square = UserOf(g, centered, "Pow");
  if (square >= 0) {
    if (absl::Status s = ExpectScalar(g, g.node(square), centered, 2.0, kName, "exponent");
        !s.ok()) {
      return s;
    }
  } else {
    square = UserOf(g, centered, "Mul");
    if (square < 0 || g.node(square).input(0) != centered ||
        g.node(square).input(1) != centered) {
      return Stop(g, sub_node, kName, "its output should be squared by Pow or Mul");
    }
  }
  const int div = UserOf(g, centered, "Div");
  if (div < 0 || g.node(div).input(0) != centered) {
    return Stop(g, sub_node, kName, "its output should be divided by the deviation");
  }
  auto variance = Next(g, g.node(square), "ReduceMean", kName);
  if (!variance.ok()) return variance.status();
  if (absl::Status s = ExpectMeanOverRow(g, g.node(*variance), kName); !s.ok()) return s;
  auto add = Next(g, g.node(*variance), "Add", kName);
  if (!add.ok()) return add.status();
  auto eps = Scalar(g, g.node(*add), OtherInput(g.node(*add), Out(g.node(*variance))));
  if (!eps.ok()) return eps.status();
  if (!eps->has_value() || !(**eps > 0.0)) {
    return Stop(g, g.node(*add), kName, "eps should be a positive constant");
  }
  auto sqrt = Next(g, g.node(*add), "Sqrt", kName);
  if (!sqrt.ok()) return sqrt.status();
  if (OnlyUser(g, Out(g.node(*sqrt))) != div || g.node(div).input(1) != Out(g.node(*sqrt))) {
    return Stop(g, g.node(*sqrt), kName, "its output should divide the centered row");
  }
  std::vector<int> nodes = {mean, sub, square, *variance, *add, *sqrt, div};
  // The affine part: Mul by the weight, then Add of the bias, each optional.
  std::vector<float> weight;
  std::vector<float> bias;
  std::string current = Out(g.node(div));
  for (const char* op : {"Mul", "Add"}) {
    const int next = SoleUser(g, current, op);
    if (next < 0) continue;
    const Node& n = g.node(next);
    const std::string other = OtherInput(n, current);
    if (other.empty() || !g.IsConstant(other)) continue;
    const int index = n.input(0) == other ? 0 : 1;
    auto values = g.InputFloats(n, index);
    if (!values.ok()) return values.status();
    (op[0] == 'M' ? weight : bias) = std::move(*values);
    nodes.push_back(next);
    current = Out(n);
  }
  const int features = static_cast<int>(std::max(weight.size(), bias.size()));
  if (features == 0) {
    return Stop(g, g.node(nodes.back()), kName,
                "no weight or bias follows, so the row width is unknown here");
  }
  return Matched({Layer::LayerNorm(features, std::move(weight), std::move(bias),
                                   static_cast<float>(**eps))},
                 std::move(nodes), g);
}

// x * sigmoid(x).
PatternResult Silu(const OnnxGraph& g, const std::string& x) {
  const int sigmoid = UserOf(g, x, "Sigmoid");
  if (sigmoid < 0 || g.Users(x).size() < 2) return std::nullopt;
  const int mul = SoleUser(g, Out(g.node(sigmoid)), "Mul");
  if (mul < 0) return std::nullopt;
  if (OtherInput(g.node(mul), Out(g.node(sigmoid))) != x) {
    return Stop(g, g.node(mul), "SiLU (Sigmoid + Mul)", "should multiply by the layer's input");
  }
  return Matched({Layer::Silu()}, {sigmoid, mul}, g);
}

// x * tanh(softplus(x)).
PatternResult MishFormula(const OnnxGraph& g, const std::string& x) {
  constexpr absl::string_view kName = "Mish (Softplus + Tanh + Mul)";
  const int softplus = UserOf(g, x, "Softplus");
  if (softplus < 0 || g.Users(x).size() < 2) return std::nullopt;
  const int tanh = SoleUser(g, Out(g.node(softplus)), "Tanh");
  if (tanh < 0) return std::nullopt;
  auto mul = Next(g, g.node(tanh), "Mul", kName);
  if (!mul.ok()) return mul.status();
  if (OtherInput(g.node(*mul), Out(g.node(tanh))) != x) {
    return Stop(g, g.node(*mul), kName, "should multiply by the layer's input");
  }
  return Matched({Layer::Mish()}, {softplus, tanh, *mul}, g);
}

// x * hardsigmoid(x), as torch writes Hardswish before opset 14.
PatternResult HardSwishFormula(const OnnxGraph& g, const std::string& x) {
  constexpr absl::string_view kName = "Hardswish (HardSigmoid + Mul)";
  const int hard = UserOf(g, x, "HardSigmoid");
  if (hard < 0 || g.Users(x).size() < 2) return std::nullopt;
  const int mul = SoleUser(g, Out(g.node(hard)), "Mul");
  if (mul < 0) return std::nullopt;
  const Node& h = g.node(hard);
  if (!Near(FloatAttribute(h, "alpha", 0.2f), 1.0 / 6.0) ||
      !Near(FloatAttribute(h, "beta", 0.5f), 0.5)) {
    return Stop(g, h, kName, "Hardswish needs alpha 1/6 and beta 0.5");
  }
  if (OtherInput(g.node(mul), Out(h)) != x) {
    return Stop(g, g.node(mul), kName, "should multiply by the layer's input");
  }
  return Matched({Layer::HardSwish()}, {hard, mul}, g);
}

// softplus(x * beta) / beta: torch's Softplus with beta other than 1.
PatternResult SoftplusWithBeta(const OnnxGraph& g, const std::string& x) {
  constexpr absl::string_view kName = "Softplus (Mul + Softplus + Div)";
  const int mul = OnlyUser(g, x);
  if (mul < 0 || g.node(mul).op_type() != "Mul") return std::nullopt;
  const int softplus = SoleUser(g, Out(g.node(mul)), "Softplus");
  if (softplus < 0) return std::nullopt;
  auto beta = Scalar(g, g.node(mul), OtherInput(g.node(mul), x));
  if (!beta.ok()) return beta.status();
  if (!beta->has_value() || **beta == 0.0) {
    return Stop(g, g.node(mul), kName, "beta should be a non-zero constant");
  }
  auto div = Next(g, g.node(softplus), "Div", kName);
  if (!div.ok()) return div.status();
  if (g.node(*div).input(0) != Out(g.node(softplus))) {
    return Stop(g, g.node(*div), kName, "should divide the Softplus output");
  }
  if (absl::Status s = ExpectScalar(g, g.node(*div), Out(g.node(softplus)), **beta, kName,
                                    "divisor");
      !s.ok()) {
    return s;
  }
  return Matched({Layer::Softplus(static_cast<float>(**beta), 20.0f)}, {mul, softplus, *div}, g);
}

// x / (1 + |x|), as torch 1.13 writes Softsign.
PatternResult SoftsignFormula(const OnnxGraph& g, const std::string& x) {
  constexpr absl::string_view kName = "Softsign (Abs + Add + Div)";
  const int abs = UserOf(g, x, "Abs");
  if (abs < 0 || g.Users(x).size() < 2) return std::nullopt;
  const int add = SoleUser(g, Out(g.node(abs)), "Add");
  if (add < 0) return std::nullopt;
  if (absl::Status s = ExpectScalar(g, g.node(add), Out(g.node(abs)), 1.0, kName, "addend");
      !s.ok()) {
    return s;
  }
  auto div = Next(g, g.node(add), "Div", kName);
  if (!div.ok()) return div.status();
  const Node& d = g.node(*div);
  if (d.input_size() != 2 || d.input(0) != x || d.input(1) != Out(g.node(add))) {
    return Stop(g, d, kName, "should divide the layer's input by 1 + |x|");
  }
  return Matched({Layer::Softsign()}, {abs, add, *div}, g);
}

// ---------------------------------------------------------------------------
// Arithmetic with a constant: one Add, Sub, Mul or Div whose other operand
// is a constant of one value or one per feature, or a Reciprocal; how a
// normalisation module ((x - mean) / std) exports. Tried after the windows,
// which start with such nodes too (GELU's Div, Softplus's Mul). The loader
// keeps consecutive steps of one module as one layer.

PatternResult ConstantArithmetic(const OnnxGraph& g, const std::string& x) {
  const int index = OnlyUser(g, x);
  if (index < 0) return std::nullopt;
  const Node& node = g.node(index);
  const std::string& op = node.op_type();
  ElementwiseStep step;
  if (op == "Add") {
    step.op = ElementwiseOp::kAdd;
  } else if (op == "Sub") {
    step.op = ElementwiseOp::kSub;
  } else if (op == "Mul") {
    step.op = ElementwiseOp::kMul;
  } else if (op == "Div") {
    step.op = ElementwiseOp::kDiv;
  } else if (op == "Reciprocal") {
    step.op = ElementwiseOp::kReciprocal;
    if (node.input_size() != 1 || node.input(0) != x) {
      return g.NodeError(absl::StatusCode::kInvalidArgument, node,
                         absl::StrCat("takes '", x, "' as a weight; not a chain"));
    }
    return Matched({Layer::Elementwise({std::move(step)})}, {index}, g);
  } else {
    return std::nullopt;
  }
  const std::string other = OtherInput(node, x);
  if (other.empty()) {
    return g.NodeError(absl::StatusCode::kUnimplemented, node,
                       absl::StrCat(op, " of '", x, "' with itself; seqserve runs ", op,
                                    " only with a constant operand"));
  }
  if (!g.IsConstant(other)) {
    return g.NodeError(absl::StatusCode::kUnimplemented, node,
                       absl::StrCat("operand '", other, "' is not a constant (an initializer "
                                    "or Constant node); seqserve runs ", op,
                                    " only with a constant operand"));
  }
  const int constant_index = node.input(0) == other ? 0 : 1;
  auto tensor = g.Weight(node, constant_index);
  if (!tensor.ok()) return tensor.status();
  const onnx::TensorProto& t = **tensor;
  // [], [1], [width] or [1, width]: one value or one per feature of each
  // row. Any other shape would broadcast the rows into something else.
  bool row_shaped = t.dims_size() <= 2;
  for (int i = 0; row_shaped && i + 1 < t.dims_size(); ++i) row_shaped = t.dims(i) == 1;
  if (!row_shaped) {
    return g.NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat("constant '", other, "' has shape [",
                                    absl::StrJoin(t.dims(), ", "),
                                    "]; only one value ([] or [1]) or one per feature "
                                    "([width] or [1, width]) broadcasts over the rows"));
  }
  auto values = g.Floats(node, t);
  if (!values.ok()) return values.status();
  step.constant_first = constant_index == 0;
  if (step.op == ElementwiseOp::kDiv && !step.constant_first) {
    for (size_t i = 0; i < values->size(); ++i) {
      if ((*values)[i] == 0.0f) {
        return g.NodeError(absl::StatusCode::kInvalidArgument, node,
                           absl::StrCat("divides by constant '", other, "', whose value ", i,
                                        " is zero: every row would get Inf or NaN"));
      }
    }
  }
  step.values = std::move(*values);
  return Matched({Layer::Elementwise({std::move(step)})}, {index}, g);
}

// ---------------------------------------------------------------------------
// Single ops, each read by the semantics of the opset the model imports.

using OpLayers = absl::StatusOr<std::vector<Layer>>;

struct SingleOp {
  const char* op;
  int64_t since;  // first opset that has the op in this form
  OpLayers (*convert)(const OnnxGraph& g, const Node& node);
};

std::vector<Layer> One(Layer layer) { return {std::move(layer)}; }

OpLayers BatchNorm(const OnnxGraph& g, const Node& node) {
  if (IntAttribute(node, "training_mode", 0) != 0) {
    return g.NodeError(absl::StatusCode::kUnimplemented, node,
                       "training_mode=1 normalizes by the batch; export the model in eval()");
  }
  if (g.opset() < 9 && IntAttribute(node, "spatial", 1) != 1) {
    return g.NodeError(absl::StatusCode::kUnimplemented, node,
                       "spatial=0 is not BatchNorm1d");
  }
  std::vector<std::vector<float>> params;
  for (int index = 1; index <= 4; ++index) {
    auto values = g.InputFloats(node, index);
    if (!values.ok()) return values.status();
    params.push_back(std::move(*values));
  }
  const size_t n = params[3].size();
  for (const auto& p : params) {
    if (p.size() != n) {
      return g.NodeError(absl::StatusCode::kInvalidArgument, node,
                         absl::StrCat("scale, bias, mean and var hold ", params[0].size(), ", ",
                                      params[1].size(), ", ", params[2].size(), " and ", n,
                                      " values; expected one each per feature"));
    }
  }
  return One(Layer::BatchNorm1d(params[0], params[1], params[2], params[3],
                                FloatAttribute(node, "epsilon", 1e-5f)));
}

OpLayers LayerNormalization(const OnnxGraph& g, const Node& node) {
  const int64_t axis = IntAttribute(node, "axis", -1);
  if (axis != -1 && axis != 1) {
    return g.NodeError(absl::StatusCode::kUnimplemented, node,
                       absl::StrCat("axis ", axis, "; only the last axis of a batch of rows"));
  }
  auto weight = g.InputFloats(node, 1);
  if (!weight.ok()) return weight.status();
  std::vector<float> bias;
  if (node.input_size() > 2 && !node.input(2).empty()) {
    auto values = g.InputFloats(node, 2);
    if (!values.ok()) return values.status();
    bias = std::move(*values);
  }
  const int features = static_cast<int>(weight->size());
  return One(Layer::LayerNorm(features, std::move(*weight), std::move(bias),
                              FloatAttribute(node, "epsilon", 1e-5f)));
}

OpLayers Gelu(const OnnxGraph& g, const Node& node) {
  const std::string approximate = StringAttribute(node, "approximate", "none");
  if (approximate != "none" && approximate != "tanh") {
    return g.NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat("approximate '", approximate, "' is not none or tanh"));
  }
  return One(Layer::Gelu(approximate == "tanh"));
}

// Clip's bounds: attributes before opset 11, optional constant inputs after.
OpLayers Clip(const OnnxGraph& g, const Node& node) {
  float bounds[2] = {std::numeric_limits<float>::lowest(), std::numeric_limits<float>::max()};
  if (g.opset() < 11) {
    bounds[0] = FloatAttribute(node, "min", bounds[0]);
    bounds[1] = FloatAttribute(node, "max", bounds[1]);
  } else {
    for (int index = 1; index <= 2; ++index) {
      if (node.input_size() <= index || node.input(index).empty()) continue;
      auto value = Scalar(g, node, node.input(index));
      if (!value.ok()) return value.status();
      if (!value->has_value()) {
        return g.NodeError(absl::StatusCode::kUnimplemented, node,
                           absl::StrCat(index == 1 ? "min" : "max",
                                        " is not a one-value constant"));
      }
      bounds[index - 1] = static_cast<float>(**value);
    }
  }
  return One(Layer::Hardtanh(bounds[0], bounds[1]));
}

OpLayers Prelu(const OnnxGraph& g, const Node& node) {
  auto slope = g.Weight(node, 1);
  if (!slope.ok()) return slope.status();
  // One slope, or one per feature along the last axis.
  for (int i = 0; i + 1 < (*slope)->dims_size(); ++i) {
    if ((*slope)->dims(i) != 1) {
      return g.NodeError(absl::StatusCode::kUnimplemented, node,
                         absl::StrCat("slope '", (*slope)->name(), "' has shape [",
                                      absl::StrJoin((*slope)->dims(), ", "),
                                      "]; expected one value or one per feature"));
    }
  }
  auto values = g.Floats(node, **slope);
  if (!values.ok()) return values.status();
  return One(Layer::Prelu(std::move(*values)));
}

OpLayers Dropout(const OnnxGraph& g, const Node& node) {
  // From opset 12 a constant true training_mode input would drop values.
  if (g.opset() >= 12 && node.input_size() > 2 && !node.input(2).empty()) {
    auto weight = g.Weight(node, 2);
    if (!weight.ok()) return weight.status();
    const onnx::TensorProto& t = **weight;
    const bool training =
        t.data_type() == onnx::TensorProto::BOOL &&
        ((t.int32_data_size() > 0 && t.int32_data(0) != 0) ||
         (!t.raw_data().empty() && t.raw_data()[0] != 0));
    if (training) {
      return g.NodeError(absl::StatusCode::kUnimplemented, node,
                         "training_mode is true; export the model in eval()");
    }
  }
  return std::vector<Layer>{};
}

constexpr SingleOp kSingleOps[] = {
    {"Relu", 1, [](const OnnxGraph&, const Node&) -> OpLayers { return One(Layer::Relu()); }},
    {"Tanh", 1, [](const OnnxGraph&, const Node&) -> OpLayers { return One(Layer::Tanh()); }},
    {"Sigmoid", 1,
     [](const OnnxGraph&, const Node&) -> OpLayers { return One(Layer::Sigmoid()); }},
    {"LeakyRelu", 1,
     [](const OnnxGraph&, const Node& n) -> OpLayers {
       return One(Layer::LeakyRelu(FloatAttribute(n, "alpha", 0.01f)));
     }},
    {"Elu", 1,
     [](const OnnxGraph&, const Node& n) -> OpLayers {
       return One(Layer::Elu(FloatAttribute(n, "alpha", 1.0f)));
     }},
    {"BatchNormalization", 1, BatchNorm},
    {"LayerNormalization", 17, LayerNormalization},
    {"Gelu", 20, Gelu},
    {"Clip", 1, Clip},
    {"PRelu", 1, Prelu},
    {"Selu", 1,
     [](const OnnxGraph&, const Node& n) -> OpLayers {
       return One(Layer::Selu(FloatAttribute(n, "alpha", 1.67326319217681884765625f),
                              FloatAttribute(n, "gamma", 1.05070102214813232421875f)));
     }},
    {"Celu", 12,
     [](const OnnxGraph&, const Node& n) -> OpLayers {
       return One(Layer::Celu(FloatAttribute(n, "alpha", 1.0f)));
     }},
    // ONNX Softplus is log(exp(x) + 1): torch's beta 1; its threshold 20
    // changes nothing a float can show.
    {"Softplus", 1,
     [](const OnnxGraph&, const Node&) -> OpLayers { return One(Layer::Softplus(1.0f, 20.0f)); }},
    {"Softsign", 1,
     [](const OnnxGraph&, const Node&) -> OpLayers { return One(Layer::Softsign()); }},
    {"HardSigmoid", 1,
     [](const OnnxGraph&, const Node& n) -> OpLayers {
       return One(Layer::HardSigmoid(FloatAttribute(n, "alpha", 0.2f),
                                     FloatAttribute(n, "beta", 0.5f)));
     }},
    {"HardSwish", 14,
     [](const OnnxGraph&, const Node&) -> OpLayers { return One(Layer::HardSwish()); }},
    {"Mish", 18, [](const OnnxGraph&, const Node&) -> OpLayers { return One(Layer::Mish()); }},
    {"Identity", 1, [](const OnnxGraph&, const Node&) -> OpLayers { return std::vector<Layer>{}; }},
    {"Dropout", 1, Dropout},
};

PatternResult OneOp(const OnnxGraph& g, const std::string& x) {
  const int index = OnlyUser(g, x);
  if (index < 0) return std::nullopt;
  const Node& node = g.node(index);
  for (const SingleOp& op : kSingleOps) {
    if (node.op_type() != op.op) continue;
    if (g.opset() < op.since) {
      return g.NodeError(absl::StatusCode::kInvalidArgument, node,
                         absl::StrCat("op ", op.op, " exists from opset ", op.since,
                                      "; the model imports opset ", g.opset()));
    }
    if (node.input_size() < 1 || node.input(0) != x) {
      return g.NodeError(absl::StatusCode::kInvalidArgument, node,
                         absl::StrCat("takes '", x, "' as a weight; not a chain"));
    }
    auto layers = op.convert(g, node);
    if (!layers.ok()) return layers.status();
    return Matched(std::move(*layers), {index}, g);
  }
  return std::nullopt;
}

constexpr LayerPattern kPatterns[] = {
    {"MatMul quantized dynamically", DynamicallyQuantizedMatMul},
    {"GELU (Erf form)", GeluErf},
    {"GELU (tanh form)", GeluTanh},
    {"LayerNorm (ReduceMean form)", LayerNormChain},
    {"SiLU (Sigmoid + Mul)", Silu},
    {"Mish (Softplus + Tanh + Mul)", MishFormula},
    {"Hardswish (HardSigmoid + Mul)", HardSwishFormula},
    {"Softplus (Mul + Softplus + Div)", SoftplusWithBeta},
    {"Softsign (Abs + Add + Div)", SoftsignFormula},
    {"arithmetic with a constant", ConstantArithmetic},
    {"single op", OneOp},
};

}  // namespace

absl::Span<const LayerPattern> LayerPatterns() { return kPatterns; }

}  // namespace seqserve
