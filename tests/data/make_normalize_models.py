#!/usr/bin/python3
"""Writes tests/data/reference/normalize/: models that start (or go on) with
arithmetic on constants, as a normalisation module written in PyTorch
exports ((x - mean) / std as Sub and Div, x * scale + shift as Mul and Add,
1 / x as Reciprocal, c - x and c / x with the constant first).

Each case is written in the form today's torch.onnx.export (dynamo, the
default from PyTorch 2.9) gives: opset 20, IR 10, a symbolic batch
dimension, value_info for every intermediate tensor, node names
node_<Op>_<n> without module indices, and the constants in two ways:
  CASE_init   every constant an initializer (module buffers "0.c0", ...;
              scalars as rank-0 tensors);
  CASE_const  the arithmetic's constants as Constant nodes (tensor constants
              made in forward(), scalars as rank-0 values);
the Linear layers' parameters are initializers in both, and every
initializer is stored in model.onnx.data beside the graph.
CASE_init/model.textproto is the same model in seqserve's text format.

reference.json (the same in both folders) holds numpy's float32 arithmetic,
one op at a time as PyTorch runs them:
  inputs       the rows fed to the model;
  elementwise  for each elementwise layer of seqserve's layer list (index),
               its input rows and its output rows: exact, bit for bit;
  output       the whole model's output (Linear layers by numpy's float32
               matmul: the reference set's tolerance applies, except for
               the case whose Linear is the identity, `exact_output`).

Run from the repository root with Debian's interpreter (python3-onnx,
python3-numpy):
  /usr/bin/python3 tests/data/make_normalize_models.py
The script is deterministic: rerunning it rewrites the same files.
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "normalize")
ROWS = 6
WIDTH = 4
F32 = np.float32


class Case:
    """An nn.Sequential as a list of modules, each a list of ops.

    An op is ("Linear", W, b), ("Relu",), ("Tanh",), or elementwise:
    (op, constant, constant_first) with op Add/Sub/Mul/Div and the constant
    a float32 array (shape () for a scalar), or ("Reciprocal",).
    """

    def __init__(self, name, modules, exact_output=False):
        self.name = name
        self.modules = modules
        self.exact_output = exact_output


def rng(seed):
    return np.random.default_rng(seed)


def linear(gen, n_in, n_out, identity=False):
    if identity:
        return ("Linear", np.eye(n_out, n_in, dtype=F32), np.zeros(n_out, dtype=F32))
    bound = 1.0 / np.sqrt(n_in)
    return ("Linear", gen.uniform(-bound, bound, (n_out, n_in)).astype(F32),
            gen.uniform(-bound, bound, n_out).astype(F32))


def cases():
    g = rng(7)
    mean = (g.standard_normal(WIDTH) * 2 + 1).astype(F32)
    std = (g.uniform(0.5, 3.0, WIDTH)).astype(F32)
    standardize = Case("standardize", [
        [("Sub", mean, False), ("Div", std, False)],
        [linear(g, WIDTH, 8)], [("Relu",)], [linear(g, 8, 3)]])

    scale = g.uniform(0.1, 2.0, (1, WIDTH)).astype(F32)  # a [1, width] buffer
    shift = g.standard_normal(WIDTH).astype(F32)
    scale_shift = Case("scale_shift", [
        [("Mul", scale, False), ("Add", shift, False)], [linear(g, WIDTH, 3)]])

    scalars = Case("scalars", [
        [("Sub", np.array(2.5, F32), False), ("Div", np.array(10.0, F32), False),
         ("Mul", np.array(0.7, F32), False), ("Add", np.array(-0.125, F32), False)],
        [linear(g, WIDTH, 2)]])

    # offset - x, then 2.0 / that as torch writes a scalar over a tensor
    # (Reciprocal, then Mul), then scale / that.
    offset = g.uniform(10.0, 12.0, WIDTH).astype(F32)
    numerators = g.uniform(0.5, 4.0, WIDTH).astype(F32)
    left_constants = Case("left_constants", [
        [("Sub", offset, True), ("Reciprocal",), ("Mul", np.array(2.0, F32), False),
         ("Div", numerators, True)],
        [linear(g, WIDTH, 3)]])

    # Between layers and after the last one: Linear, Tanh, a per-feature
    # shift and gain, Linear, and the logits over a temperature.
    hidden_shift = g.standard_normal(6).astype(F32) * F32(0.1)
    gain = g.uniform(0.5, 1.5, (1, 6)).astype(F32)
    between = Case("between", [
        [linear(g, WIDTH, 6)], [("Tanh",)],
        [("Sub", hidden_shift, False), ("Mul", gain, False)],
        [linear(g, 6, 3)], [("Div", np.array(1.5, F32), False)]])

    # An identity Linear adds nothing to round: the whole output is exact.
    std2 = g.uniform(0.3, 5.0, WIDTH).astype(F32)
    identity = Case("identity_linear", [
        [("Sub", mean, False), ("Div", std2, False)], [linear(g, WIDTH, WIDTH, identity=True)]],
        exact_output=True)
    return [standardize, scale_shift, scalars, left_constants, between, identity]


def inputs():
    x = (rng(1000).standard_normal((ROWS, WIDTH)) * 3.0).astype(F32)
    x[0] = np.array([0.0, -0.0, 1e-3, -1e-3], F32)
    return x


def run_op(op, x):
    """One op in float32, as torch's CPU kernel computes it."""
    kind = op[0]
    if kind == "Linear":
        return (np.matmul(x, op[1].T) + op[2]).astype(F32)
    if kind == "Relu":
        return np.maximum(x, F32(0))
    if kind == "Tanh":
        return np.tanh(x).astype(F32)
    if kind == "Reciprocal":
        return (F32(1) / x).astype(F32)
    c = op[1].reshape(-1) if op[1].ndim > 0 else op[1]
    a, b = (c, x) if op[2] else (x, c)
    result = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[kind](a, b)
    assert result.dtype == F32
    return result


def reference(case, x):
    elementwise = []
    index = 0  # seqserve lists a module's consecutive steps as one layer
    for module in case.modules:
        y = x
        for op in module:
            y = run_op(op, y)
        if module[0][0] not in ("Linear", "Relu", "Tanh"):
            elementwise.append({"index": index, "input": rows(x), "output": rows(y)})
        index += 1
        x = y
    return {"inputs": None, "elementwise": elementwise, "output": rows(x),
            "exact_output": case.exact_output}


def rows(t):
    # repr of each float32 as a double reads back as the same float32.
    return [[float(v) for v in row] for row in t]


class Graph:
    """Nodes in today's exporter's form."""

    def __init__(self, constants_as_nodes):
        self.constants_as_nodes = constants_as_nodes
        self.nodes = []
        self.initializers = []
        self.value_info = []
        self.count = 0

    def name(self):
        self.count += 1
        return "val_%d" % self.count

    def constant(self, name, value, parameter=False):
        if self.constants_as_nodes and not parameter:
            out = self.name()
            self.nodes.append(helper.make_node(
                "Constant", [], [out], name="node_Constant_%d" % self.count,
                value=numpy_helper.from_array(value.astype(F32), out)))
            return out
        self.initializers.append(numpy_helper.from_array(value.astype(F32), name))
        return name

    def op(self, op_type, inputs, width, **attrs):
        out = self.name()
        self.nodes.append(helper.make_node(op_type, inputs, [out],
                                           name="node_%s_%d" % (op_type, self.count), **attrs))
        self.value_info.append(helper.make_tensor_value_info(out, TensorProto.FLOAT,
                                                             ["batch", width]))
        return out

    def module(self, i, module, x, width):
        for k, op in enumerate(module):
            kind = op[0]
            if kind == "Linear":
                width = op[1].shape[0]
                x = self.op("Gemm", [x, self.constant("%d.weight" % i, op[1], True),
                                     self.constant("%d.bias" % i, op[2], True)], width, transB=1)
            elif kind in ("Relu", "Tanh", "Reciprocal"):
                x = self.op(kind, [x], width)
            else:
                # Buffers keep the module's names; a scalar is a lifted constant.
                c = self.constant("%d.c%d" % (i, k) if op[1].ndim else "scalar_%d_%d" % (i, k),
                                  op[1])
                x = self.op(kind, [c, x] if op[2] else [x, c], width)
        return x, width


def write_onnx(case, path, constants_as_nodes, probe=False):
    """`probe` adds the result of a first elementwise module (the one that
    reads the model's input) as a second graph output, to check that tensor
    itself in ONNX Runtime (not a Sequential)."""
    g = Graph(constants_as_nodes)
    x, width = "input", WIDTH
    outputs = []
    for i, module in enumerate(case.modules):
        x, width = g.module(i, module, x, width)
        if probe and i == 0 and module[0][0] not in ("Linear", "Relu", "Tanh"):
            outputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", width]))
    g.value_info = [v for v in g.value_info if v.name != x]
    outputs.insert(0, helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", width]))
    graph = helper.make_graph(
        g.nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", WIDTH])],
        outputs, g.initializers, value_info=g.value_info)
    proto = helper.make_model(graph, producer_name="pytorch", producer_version="2.9.0",
                              opset_imports=[helper.make_opsetid("", 20),
                                             helper.make_opsetid(
                                                 "pkg.onnxscript.torch_lib.common", 1)])
    proto.ir_version = 10
    onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)


def floats(values):
    return "[%s]" % ", ".join(repr(float(v)) for v in np.asarray(values, F32).reshape(-1))


def text_model(case):
    lines = ["# %s: today's export of the same model is model.onnx" % case.name,
             "input_width: %d" % WIDTH]
    for module in case.modules:
        kind = module[0][0]
        if kind == "Linear":
            _, w, b = module[0]
            lines.append("layers { linear { in_features: %d out_features: %d weight: %s "
                         "bias: %s } }" % (w.shape[1], w.shape[0], floats(w), floats(b)))
        elif kind in ("Relu", "Tanh"):
            lines.append("layers { %s {} }" % kind.lower())
        else:
            steps = []
            for op in module:
                if op[0] == "Reciprocal":
                    steps.append("steps { op: OP_RECIPROCAL }")
                else:
                    steps.append("steps { op: OP_%s value: %s%s }" % (
                        op[0].upper(), floats(op[1]), " constant_first: true" if op[2] else ""))
            lines.append("layers { elementwise { %s } }" % " ".join(steps))
    return "\n".join(lines) + "\n"


def main():
    # --probe DIR: write the probe models (tests/data/check_normalize_ort.js)
    # to DIR instead of the reference set.
    probe = len(sys.argv) == 3 and sys.argv[1] == "--probe"
    out = sys.argv[2] if probe else OUT
    shutil.rmtree(out, ignore_errors=True)
    x = inputs()
    for case in cases():
        ref = reference(case, x)
        ref["inputs"] = rows(x)
        for form, as_nodes in (("init", False), ("const", True)):
            folder = os.path.join(out, "%s_%s" % (case.name, form))
            os.makedirs(folder)
            write_onnx(case, os.path.join(folder, "model.onnx"), as_nodes, probe)
            with open(os.path.join(folder, "reference.json"), "w") as f:
                json.dump(ref, f)
            if form == "init":
                with open(os.path.join(folder, "model.textproto"), "w") as f:
                    f.write(text_model(case))


if __name__ == "__main__":
    main()
