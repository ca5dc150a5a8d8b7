#!/usr/bin/python3
"""Writes tests/data/reference/quantized/: models in the forms ONNX Runtime's
quantization tool and PyTorch's half precision write, with the answers their
arithmetic gives.

  dynamic_per_channel  an nn.Sequential exported with Linear as MatMul + Add
                       (today's exporter: opset 20, IR 10, external data),
                       then quantized by tools/quantize_dynamic.py as
                       onnxruntime.quantization's
                       quantize_dynamic(per_channel=True) writes it: each
                       MatMul becomes DynamicQuantizeLinear, MatMulInteger
                       with symmetric int8 weights (one scale per output
                       column, zero points 0), Cast to float and Mul by
                       Mul(row scale, weight scale); the Add stays.
  dynamic_per_tensor   the same with one weight scale per tensor
                       (per_channel=False, the tool's default), opset 13,
                       IR 7, inline weights.
  half                 the model as torch exports model.half(): float16
                       input, initializers and output, Gemm(transB=1).

The weights are quantized as ONNX Runtime's tool does: scale = 2 max|w| / 254
over the weights' column (or all of them), q = round_half_even(w / scale).

reference.json holds:
  inputs   rows fed to the model;
  output   per row, the graph's arithmetic on that row alone (a batch of
           one), in numpy float32 following the ONNX operator specs:
           DynamicQuantizeLinear (uint8, round half to even), the exact
           integer product, float(sum) * (row scale * weight scale), + bias,
           ReLU; for `half`, float32 arithmetic on the widened weights
           (what seqserve computes) with the tolerance of a float32 matmul.
  exact    true when the output is exact (no float sums in it).

Run from the repository root with Debian's interpreter (python3-onnx,
python3-numpy):
  /usr/bin/python3 tests/data/make_quantized_models.py
then check ONNX Runtime's answers with tests/data/check_quantized_ort.js.
The script is deterministic: rerunning it rewrites the same files.
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from quantize_dynamic import quantize_model, quantize_weights  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "quantized")
F32 = np.float32
WIDTHS = [6, 16, 12, 3]
ROWS = 8


def layers(seed):
    g = np.random.default_rng(seed)
    result = []
    for n_in, n_out in zip(WIDTHS, WIDTHS[1:]):
        bound = 1.0 / np.sqrt(n_in)
        result.append((g.uniform(-bound, bound, (n_out, n_in)).astype(F32),
                       g.uniform(-bound, bound, n_out).astype(F32)))
    return result


def inputs():
    x = (np.random.default_rng(99).standard_normal((ROWS, WIDTHS[0])) * 2.0).astype(F32)
    x[0] = 0.0                                           # all zero: scale 0 in the spec
    x[1] = np.abs(x[1])                                  # no negative value: zero point 0
    x[2] = np.array([-1.0, 1.0, 0.5, -0.5, 0.25, 0.0], F32)  # a symmetric range
    return x


def dynamic_quantize_row(x):
    """ONNX DynamicQuantizeLinear on one row, in float32."""
    low = min(F32(0), x.min())
    high = max(F32(0), x.max())
    scale = F32((high - low) / F32(255))
    if scale == 0:
        return np.zeros(x.shape, np.uint8), scale, 0
    zero = int(np.clip(np.round(F32(0) - low / scale), 0, 255))
    q = np.clip(np.round(x / scale) + F32(zero), 0, 255).astype(np.uint8)
    return q, scale, zero


def quantized_forward(row, quantized, biases):
    x = row
    for i, ((q, w_scale), b) in enumerate(zip(quantized, biases)):
        xq, x_scale, zero = dynamic_quantize_row(x)
        sums = (xq.astype(np.int64) - zero) @ q.astype(np.int64)
        product = (x_scale * w_scale).astype(F32)
        x = (sums.astype(F32) * product).astype(F32) + b
        if i + 1 < len(biases):
            x = np.maximum(x, F32(0))
    return x


def float_forward(x, weights):
    for i, (w, b) in enumerate(weights):
        x = (x @ w.T).astype(F32) + b
        if i + 1 < len(weights):
            x = np.maximum(x, F32(0))
    return x


def matmul_graph(weights):
    """The float model as the exporter writes Linear with MatMul + Add."""
    nodes, inits = [], []
    x = "input"
    for i, (w, b) in enumerate(weights):
        module = 2 * i  # Linear, ReLU, Linear, ...
        out = "/%d/MatMul_output_0" % module
        inits += [numpy_helper.from_array(w.T.copy(), "onnx::MatMul_%d" % (100 + i)),
                  numpy_helper.from_array(b, "%d.bias" % module)]
        nodes += [helper.make_node("MatMul", [x, "onnx::MatMul_%d" % (100 + i)], [out],
                                   "/%d/MatMul" % module),
                  helper.make_node("Add", ["%d.bias" % module, out],
                                   ["/%d/Add_output_0" % module], "/%d/Add" % module)]
        x = "/%d/Add_output_0" % module
        if i + 1 < len(weights):
            nodes.append(helper.make_node("Relu", [x], ["/%d/Relu_output_0" % (module + 1)],
                                          "/%d/Relu" % (module + 1)))
            x = "/%d/Relu_output_0" % (module + 1)
    return helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", WIDTHS[0]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", WIDTHS[-1]])], inits)


def half_graph(weights):
    nodes, inits = [], []
    x = "input"
    for i, (w, b) in enumerate(weights):
        module = 2 * i
        inits += [numpy_helper.from_array(w.astype(np.float16), "%d.weight" % module),
                  numpy_helper.from_array(b.astype(np.float16), "%d.bias" % module)]
        out = "/%d/Gemm_output_0" % module
        nodes.append(helper.make_node("Gemm", [x, "%d.weight" % module, "%d.bias" % module],
                                      [out], "/%d/Gemm" % module, transB=1))
        x = out
        if i + 1 < len(weights):
            nodes.append(helper.make_node("Relu", [x], ["/%d/Relu_output_0" % (module + 1)],
                                          "/%d/Relu" % (module + 1)))
            x = "/%d/Relu_output_0" % (module + 1)
    return helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT16, ["batch", WIDTHS[0]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT16, ["batch", WIDTHS[-1]])], inits)


def save(folder, proto, external, reference):
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    if external:
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=0)
    else:
        onnx.save_model(proto, path)
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(reference, f)


def rows(a):
    return [[float(v) for v in row] for row in np.asarray(a, F32)]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    x = inputs()
    weights = layers(3)
    for name, per_channel, opset, ir, external in (
            ("dynamic_per_channel", True, 20, 10, True),
            ("dynamic_per_tensor", False, 13, 7, False)):
        exported = helper.make_model(matmul_graph(weights), producer_name="pytorch",
                                     opset_imports=[helper.make_opsetid("", opset)])
        exported.ir_version = ir
        proto = quantize_model(exported, per_channel)
        quantized = [quantize_weights(w.T, per_channel) for w, _ in weights]
        biases = [b for _, b in weights]
        output = np.stack([quantized_forward(row, quantized, biases) for row in x])
        save(os.path.join(OUT, name), proto, external,
             {"inputs": rows(x), "output": rows(output), "exact": True,
              "float_output": rows(float_forward(x, weights))})
    halves = [(w.astype(np.float16).astype(F32), b.astype(np.float16).astype(F32))
              for w, b in weights]
    proto = helper.make_model(half_graph(weights), producer_name="pytorch",
                              producer_version="1.13.1",
                              opset_imports=[helper.make_opsetid("", 14)])
    proto.ir_version = 7
    save(os.path.join(OUT, "half"), proto, False,
         {"inputs": rows(x), "output": rows(float_forward(x, halves)), "exact": False})


if __name__ == "__main__":
    main()
