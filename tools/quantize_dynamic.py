#!/usr/bin/python3
"""Quantizes a float ONNX classifier into the form ONNX Runtime's
quantize_dynamic writes, without ONNX Runtime's Python package.

Every Linear layer (a Gemm, or a MatMul with constant weights, as PyTorch
exports nn.Linear) becomes:

  DynamicQuantizeLinear(x) -> x_quantized, x_scale, x_zero_point
  MatMulInteger(x_quantized, W_quantized, x_zero_point, W_zero_point)
  Cast(to=FLOAT), then Mul by Mul(x_scale, W_scale)
  Add of the bias (a Gemm's third input), when there is one

with the weights quantized as quantize_dynamic(weight_type=QInt8) does:
symmetric int8, scale = 2 max|w| / 254 per output column (--per-tensor: over
the whole weight, the tool's default per_channel=False), q = round half to
even of w / scale, zero points 0. ONNX Runtime quantizes MatMul only; a Gemm
is rewritten here as the MatMul + Add it computes (transB=1 weights
transposed, alpha and beta 1 only). seqserve loads the result in INT8 with
these weights as they are (README, "Precision: INT8").

  /usr/bin/python3 tools/quantize_dynamic.py model.onnx model_int8.onnx [--per-tensor]

Needs Debian's python3-onnx and python3-numpy. Weights are read from the
file and its external data; the output keeps its weights inline unless
--external-data is given.
"""
import argparse
import sys

import numpy as np
import onnx
import onnx.version_converter
from onnx import TensorProto, helper, numpy_helper


def quantize_weights(weights, per_channel):
    """`weights` is MatMul's B (in x out), float32: int8 values and scales
    (one per column, or one 0-d scale)."""
    weights = np.asarray(weights, np.float32)
    absmax = np.abs(weights).max(axis=0) if per_channel else np.array(np.abs(weights).max())
    scale = ((absmax + absmax) / np.float32(254)).astype(np.float32)
    # A column of zeros has no range: scale 1 keeps its zeros and a positive scale.
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    q = np.clip(np.round(weights / scale), -127, 127).astype(np.int8)
    return q, scale


def quantized_linear(x, weights, w, bias, b, name, output, per_channel):
    """Nodes and initializers computing `output` = x @ weights (+ bias) in
    quantize_dynamic's form, named as the tool names them after the weight
    `w`, the bias `b` and the MatMul node `name`."""
    q, scale = quantize_weights(weights, per_channel)
    product = output if bias is None else output + "_matmul"
    quantized = product + "_output_quantized"
    initializers = [numpy_helper.from_array(q, w + "_quantized"),
                    numpy_helper.from_array(scale, w + "_scale"),
                    numpy_helper.from_array(np.zeros(scale.shape, np.int8), w + "_zero_point")]
    nodes = [
        helper.make_node("DynamicQuantizeLinear", [x],
                         [x + "_quantized", x + "_scale", x + "_zero_point"],
                         x + "_QuantizeLinear"),
        helper.make_node("MatMulInteger", [x + "_quantized", w + "_quantized",
                                           x + "_zero_point", w + "_zero_point"],
                         [quantized], name + "_quant"),
        helper.make_node("Cast", [quantized], [quantized + "_cast_output"], quantized + "_cast",
                         to=TensorProto.FLOAT),
        helper.make_node("Mul", [x + "_scale", w + "_scale"], [name + "_quant_scales_mul:0"],
                         name + "_quant_scales_mul"),
        helper.make_node("Mul", [quantized + "_cast_output", name + "_quant_scales_mul:0"],
                         [product], name + "_quant_output_scale_mul"),
    ]
    if bias is not None:
        initializers.append(numpy_helper.from_array(np.asarray(bias, np.float32), b))
        nodes.append(helper.make_node("Add", [product, b], [output], name + "_bias_add"))
    return nodes, initializers


def attribute(node, key, default):
    for a in node.attribute:
        if a.name == key:
            return helper.get_attribute_value(a)
    return default


def quantize_model(model, per_channel=True):
    """A copy of `model` with every Gemm and constant-weight MatMul quantized."""
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    used = set()
    nodes, initializers = [], []
    for node in graph.node:
        if node.op_type == "Gemm" and node.input[1] in constants:
            if attribute(node, "transA", 0) or attribute(node, "alpha", 1.0) != 1.0 or \
                    attribute(node, "beta", 1.0) != 1.0:
                sys.exit(f"{node.name}: Gemm with transA, alpha or beta is not a Linear layer")
            weights = constants[node.input[1]]
            weights = weights.T if attribute(node, "transB", 0) else weights
            b = node.input[2] if len(node.input) > 2 and node.input[2] else None
            bias = constants[b] if b else None
            used.update(node.input[1:])
        elif node.op_type == "MatMul" and node.input[1] in constants:
            weights, b, bias = constants[node.input[1]], None, None
            used.add(node.input[1])
        else:
            nodes.append(node)
            continue
        new_nodes, new_initializers = quantized_linear(
            node.input[0], weights, node.input[1], bias, b, node.name or node.output[0],
            node.output[0], per_channel)
        nodes += new_nodes
        initializers += new_initializers
    kept = [t for t in graph.initializer if t.name not in used]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept + initializers)
    if not any(o.domain == "com.microsoft" for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    # DynamicQuantizeLinear exists from opset 11: older models are converted
    # first, as the tool does.
    if any(o.domain in ("", "ai.onnx") and o.version < 11 for o in out.opset_import):
        out = onnx.version_converter.convert_version(out, 11)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--per-tensor", action="store_true",
                        help="one weight scale per layer instead of one per output")
    parser.add_argument("--external-data", metavar="FILE",
                        help="store the weights in FILE beside the output")
    args = parser.parse_args()
    model = quantize_model(onnx.load(args.input), per_channel=not args.per_tensor)
    if args.external_data:
        onnx.save_model(model, args.output, save_as_external_data=True,
                        all_tensors_to_one_file=True, location=args.external_data,
                        size_threshold=0)
    else:
        onnx.save_model(model, args.output)


if __name__ == "__main__":
    main()
