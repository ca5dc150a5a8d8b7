#include "core/onnx_quantized.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace seqserve {
namespace {

using Node = onnx::NodeProto;

constexpr absl::string_view kName = "MatMul quantized dynamically (DynamicQuantizeLinear + "
                                    "MatMulInteger)";

std::string Out(const Node& node) { return node.output_size() > 0 ? node.output(0) : ""; }

absl::Status Stop(const OnnxGraph& g, const Node& node, absl::string_view why) {
  return g.NodeError(absl::StatusCode::kUnimplemented, node,
                     absl::StrCat(kName, " stops matching here: ", why,
                                  "; refused rather than run approximately"));
}

// The only node reading `tensor`, or -1.
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

// A per-tensor value ([] or [1]) repeated for each of `out` outputs, or one
// per output ([out]); nullopt for any other shape.
template <typename T>
std::optional<std::vector<T>> PerOutput(std::vector<T> values, const onnx::TensorProto& tensor,
                                        int64_t out) {
  if (tensor.dims_size() > 1) return std::nullopt;
  if (values.size() == 1) return std::vector<T>(static_cast<size_t>(out), values[0]);
  if (values.size() == static_cast<size_t>(out)) return values;
  return std::nullopt;
}

// The single node reading the output of `from`, which must have op `op`.
absl::StatusOr<int> Next(const OnnxGraph& g, const Node& from, absl::string_view op) {
  const int next = OnlyUser(g, Out(from));
  if (next < 0 || g.node(next).op_type() != op) {
    return Stop(g, from, absl::StrCat("its output should feed one ", op, " node only"));
  }
  return next;
}

}  // namespace

PatternResult DynamicallyQuantizedMatMul(const OnnxGraph& g, const std::string& x) {
  const int quantize = OnlyUser(g, x);
  if (quantize < 0 || g.node(quantize).op_type() != "DynamicQuantizeLinear") return std::nullopt;
  const Node& dql = g.node(quantize);
  if (dql.input_size() != 1 || dql.input(0) != x || dql.output_size() != 3) {
    return Stop(g, dql, "expected the rows as its one input and three outputs");
  }
  const std::string& rows = dql.output(0);
  const std::string& row_scale = dql.output(1);
  const std::string& row_zero = dql.output(2);
  const int matmul = OnlyUser(g, rows);
  if (matmul < 0 || g.node(matmul).op_type() != "MatMulInteger") {
    return Stop(g, dql, "its quantized rows should feed one MatMulInteger");
  }
  const Node& mmi = g.node(matmul);
  // A zero point other than the rows' own would compute another product.
  if (mmi.input_size() < 3 || mmi.input(0) != rows || mmi.input(2) != row_zero ||
      OnlyUser(g, row_zero) != matmul) {
    return Stop(g, mmi, "should read the quantized rows and their zero point as A and "
                        "a_zero_point");
  }
  auto b = g.Weight(mmi, 1);
  if (!b.ok()) return b.status();
  const onnx::TensorProto& weights = **b;
  if (weights.dims_size() != 2) {
    return g.NodeError(absl::StatusCode::kInvalidArgument, mmi,
                       absl::StrCat("weight '", weights.name(), "' has rank ",
                                    weights.dims_size(), ", expected 2"));
  }
  auto stored = g.Bytes(mmi, weights);
  if (!stored.ok()) return stored.status();
  const int64_t in = weights.dims(0);
  const int64_t out = weights.dims(1);
  std::vector<int32_t> zeros(static_cast<size_t>(out), 0);
  if (mmi.input_size() > 3 && !mmi.input(3).empty()) {
    auto zp = g.Weight(mmi, 3);
    if (!zp.ok()) return zp.status();
    if ((*zp)->data_type() != weights.data_type()) {
      return g.NodeError(absl::StatusCode::kInvalidArgument, mmi,
                         "b_zero_point's type differs from the weights'");
    }
    auto values = g.Bytes(mmi, **zp);
    if (!values.ok()) return values.status();
    auto per_output = PerOutput(std::move(*values), **zp, out);
    if (!per_output) {
      return Stop(g, mmi, absl::StrCat("b_zero_point has shape [",
                                       absl::StrJoin((*zp)->dims(), ", "),
                                       "]; expected one value or one per output (", out, ")"));
    }
    zeros = std::move(*per_output);
  }
  // The kernels take signed 8-bit weights: int8 with any zero point, or
  // uint8 whose zero point leaves every value within int8 (128).
  std::vector<int8_t> int8(stored->size());
  for (int64_t k = 0; k < in; ++k) {
    for (int64_t o = 0; o < out; ++o) {
      const int32_t value = (*stored)[k * out + o] - zeros[o];
      if (value < -128 || value > 127) {
        return Stop(g, mmi,
                    absl::StrCat("weight '", weights.name(), "' value [", k, ", ", o,
                                 "] minus its zero point is ", value,
                                 ", outside int8; seqserve runs int8 weights (quantize with "
                                 "weight_type=QInt8)"));
      }
      int8[o * in + k] = static_cast<int8_t>(value);  // torch's layout, out x in
    }
  }
  auto cast = Next(g, mmi, "Cast");
  if (!cast.ok()) return cast.status();
  const Node& cast_node = g.node(*cast);
  if (IntAttribute(cast_node, "to", 0) != onnx::TensorProto::FLOAT) {
    return Stop(g, cast_node, "should cast the int32 sums to float");
  }
  auto scaled = Next(g, cast_node, "Mul");
  if (!scaled.ok()) return scaled.status();
  const Node& scale_node = g.node(*scaled);
  // The other factor: Mul(row scale, weight scale), read only here.
  const std::string product = OtherInput(scale_node, Out(cast_node));
  const int product_index = OnlyUser(g, row_scale);
  if (product.empty() || product_index < 0 || Out(g.node(product_index)) != product ||
      g.node(product_index).op_type() != "Mul" || OnlyUser(g, product) != *scaled) {
    return Stop(g, scale_node,
                "should multiply the sums by Mul(the rows' scale, the weights' scale)");
  }
  const Node& product_node = g.node(product_index);
  const std::string weight_scale = OtherInput(product_node, row_scale);
  if (weight_scale.empty() || !g.IsConstant(weight_scale)) {
    return Stop(g, product_node, "the weights' scale should be a constant");
  }
  auto scale_tensor = g.Weight(product_node, product_node.input(0) == weight_scale ? 0 : 1);
  if (!scale_tensor.ok()) return scale_tensor.status();
  auto scale_values = g.Floats(product_node, **scale_tensor);
  if (!scale_values.ok()) return scale_values.status();
  auto scales = PerOutput(std::move(*scale_values), **scale_tensor, out);
  if (!scales) {
    return Stop(g, product_node,
                absl::StrCat("the weights' scale has shape [",
                             absl::StrJoin((*scale_tensor)->dims(), ", "),
                             "]; expected one value or one per output (", out, ")"));
  }
  for (float scale : *scales) {
    if (!(scale > 0.0f)) {
      return g.NodeError(absl::StatusCode::kInvalidArgument, product_node,
                         absl::StrCat("a weight scale is ", scale, "; scales are positive"));
    }
  }
  if (in <= 0 || out <= 0) return std::nullopt;  // Bytes refused such shapes
  LayerMatch match;
  match.layers.push_back(Layer::QuantizedLinear(static_cast<int>(in), static_cast<int>(out),
                                                std::move(int8), std::move(*scales), {}));
  match.nodes = {quantize, matmul, *cast, product_index, *scaled};
  match.output = Out(scale_node);
  return match;
}

}  // namespace seqserve
