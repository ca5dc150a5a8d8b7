#!/usr/bin/python3
"""Writes tests/data/reference/layers/: one folder per layer and ONNX form.

Each folder holds model.onnx (plus model.onnx.data for the current
exporter's form) and reference.json with PyTorch's numbers for the same
nn.Sequential: inputs, logits (the last Linear), sigmoid, softmax,
log_softmax and output (the whole model).

Two ONNX forms per layer, and the native text format:
  tNN  torch.onnx.export of Debian's PyTorch 1.13 at opset NN (9 to 17);
  mNN  the form today's exporter writes, built with onnx.helper: opset NN
       (18 to 23), IR 10, every initializer in model.onnx.data, a batch
       dimension that is symbolic ("batch") or fixed to 1 ("_b1");
  model.textproto, beside the first torch export: the same model in
       seqserve's text format.

Run from the repository root with Debian's interpreter:
  /usr/bin/python3 tests/data/make_layer_models.py
"""
import io
import json
import math
import os
import shutil
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "layers")
ROWS = 6
warnings.filterwarnings("ignore")


def randomize(model, seed):
    """Gives norms and PReLU non-default parameters and statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.BatchNorm1d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) * 1.5 + 0.25)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.5)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.7)
                module.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.1)
            elif isinstance(module, nn.LayerNorm):
                n = module.normalized_shape[0]
                module.weight.copy_(torch.rand(n, generator=gen) * 1.5 + 0.25)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.5)
            elif isinstance(module, nn.PReLU):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 0.5)
    return model.eval()


def seq(*modules):
    return nn.Sequential(*modules)


# name -> (model factory, torch export opsets, modern opsets)
CASES = {
    "bn_after_linear": (lambda: seq(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)),
                        [9, 15], [18, 20]),
    "bn_elsewhere": (lambda: seq(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8),
                                 nn.Linear(8, 3)), [9, 17], [18, 23]),
    "layernorm": (lambda: seq(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 3)),
                  [9, 17], [18, 20]),
    "gelu": (lambda: seq(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 3)), [9, 17], [18, 20]),
    "gelu_tanh": (lambda: seq(nn.Linear(4, 8), nn.GELU(approximate="tanh"), nn.Linear(8, 3)),
                  [9, 17], [18, 23]),
    "silu": (lambda: seq(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 3)), [9, 17], [18, 20]),
    "relu6": (lambda: seq(nn.Linear(4, 8), nn.ReLU6(), nn.Linear(8, 3)), [9, 11], [18, 20]),
    "hardtanh": (lambda: seq(nn.Linear(4, 8), nn.Hardtanh(-2.0, 1.5), nn.Linear(8, 3)),
                 [9, 13], [18, 21]),
    "prelu_one": (lambda: seq(nn.Linear(4, 8), nn.PReLU(), nn.Linear(8, 3)), [9, 17], [18, 20]),
    "prelu_per_feature": (lambda: seq(nn.Linear(4, 8), nn.PReLU(8), nn.Linear(8, 3)),
                          [9, 17], [18, 22]),
    "selu": (lambda: seq(nn.Linear(4, 8), nn.SELU(), nn.Linear(8, 3)), [9, 17], [18, 20]),
    "celu": (lambda: seq(nn.Linear(4, 8), nn.CELU(0.7), nn.Linear(8, 3)), [13, 17], [18, 20]),
    "softplus": (lambda: seq(nn.Linear(4, 8), nn.Softplus(), nn.Linear(8, 3)), [9, 17], [18, 20]),
    "softplus_beta": (lambda: seq(nn.Linear(4, 8), nn.Softplus(beta=2.0), nn.Linear(8, 3)),
                      [9, 17], [18, 20]),
    "softsign": (lambda: seq(nn.Linear(4, 8), nn.Softsign(), nn.Linear(8, 3)), [9, 17], [18, 20]),
    "hardsigmoid": (lambda: seq(nn.Linear(4, 8), nn.Hardsigmoid(), nn.Linear(8, 3)),
                    [9, 17], [18, 20]),
    "hardswish": (lambda: seq(nn.Linear(4, 8), nn.Hardswish(), nn.Linear(8, 3)), [9, 14], [18, 20]),
    "mish": (lambda: seq(nn.Linear(4, 8), nn.Mish(), nn.Linear(8, 3)), [9, 17], [18, 20]),
    "dropout_identity": (lambda: seq(nn.Linear(4, 8), nn.Dropout(0.3), nn.ReLU(), nn.Identity(),
                                     nn.Linear(8, 3)), [9, 17], [18, 20]),
    "log_softmax": (lambda: seq(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3), nn.LogSoftmax(dim=-1)),
                    [9, 17], [18, 20]),
    "layernorm_chain": (lambda: seq(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3)),
                        [], [18]),
}


def inputs_for(seed):
    gen = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(ROWS, 4, generator=gen) * 3.0
    x[0] = torch.tensor([0.0, -0.0, 1e-3, -1e-3])
    return x


def reference(model, x):
    linears = [m for m in model if isinstance(m, nn.Linear)]
    captured = {}
    linears[-1].register_forward_hook(lambda m, i, o: captured.__setitem__("logits", o))
    with torch.no_grad():
        output = model(x)
    logits = captured["logits"]
    rows = lambda t: [[float(v) for v in row] for row in t]
    return {
        "inputs": rows(x),
        "logits": rows(logits),
        "sigmoid": rows(torch.sigmoid(logits)),
        "softmax": rows(torch.softmax(logits, dim=-1)),
        "log_softmax": rows(torch.log_softmax(logits, dim=-1)),
        "output": rows(output),
        "layers": [str(m) for m in model],
    }


def write_case(folder, model, x, writer):
    path = os.path.join(OUT, folder)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    writer(os.path.join(path, "model.onnx"))
    with open(os.path.join(path, "reference.json"), "w") as f:
        json.dump(reference(model, x), f)


def torch_export(model, opset):
    def write(path):
        torch.onnx.export(model, (torch.randn(2, 4),), path, opset_version=opset,
                          input_names=["features"], output_names=["scores"],
                          dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}})
    return write


class ModernGraph:
    """Nodes in the current exporter's form for an nn.Sequential."""

    def __init__(self, opset):
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self.count = 0

    def name(self):
        self.count += 1
        return "val_%d" % self.count

    def weight(self, name, tensor):
        self.initializers.append(numpy_helper.from_array(tensor.detach().numpy().astype(np.float32),
                                                         name))
        return name

    def scalar(self, value):
        out = self.name()
        self.nodes.append(helper.make_node(
            "Constant", [], [out], value=helper.make_tensor(out + "_c", TensorProto.FLOAT, [],
                                                            [value])))
        return out

    def op(self, op_type, inputs, **attrs):
        out = self.name()
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def layer(self, i, m, x):
        p = str(i)
        if isinstance(m, nn.Linear):
            return self.op("Gemm", [x, self.weight(p + ".weight", m.weight),
                                    self.weight(p + ".bias", m.bias)], transB=1)
        if isinstance(m, nn.BatchNorm1d):
            return self.op("BatchNormalization",
                           [x, self.weight(p + ".weight", m.weight), self.weight(p + ".bias", m.bias),
                            self.weight(p + ".running_mean", m.running_mean),
                            self.weight(p + ".running_var", m.running_var)],
                           epsilon=m.eps, momentum=1 - m.momentum, training_mode=0)
        if isinstance(m, nn.LayerNorm):
            return self.op("LayerNormalization", [x, self.weight(p + ".weight", m.weight),
                                                  self.weight(p + ".bias", m.bias)],
                           axis=-1, epsilon=m.eps)
        if isinstance(m, nn.GELU):
            if self.opset >= 20:
                return self.op("Gelu", [x], approximate=m.approximate)
            if m.approximate == "tanh":  # torchlib's decomposition below opset 20
                cube = self.op("Pow", [x, self.scalar(3.0)])
                inner = self.op("Mul", [self.scalar(0.044715), cube])
                inner = self.op("Add", [x, inner])
                inner = self.op("Mul", [self.scalar(math.sqrt(2 / math.pi)), inner])
                inner = self.op("Tanh", [inner])
                inner = self.op("Add", [inner, self.scalar(1.0)])
                inner = self.op("Mul", [self.scalar(0.5), inner])
                return self.op("Mul", [x, inner])
            inner = self.op("Div", [x, self.scalar(math.sqrt(2))])
            inner = self.op("Erf", [inner])
            inner = self.op("Add", [inner, self.scalar(1.0)])
            inner = self.op("Mul", [self.scalar(0.5), inner])
            return self.op("Mul", [x, inner])
        if isinstance(m, nn.SiLU):
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        if isinstance(m, nn.Hardtanh):  # ReLU6 too
            return self.op("Clip", [x, self.scalar(m.min_val), self.scalar(m.max_val)])
        if isinstance(m, nn.PReLU):
            return self.op("PRelu", [x, self.weight(p + ".weight", m.weight)])
        if isinstance(m, nn.Softplus):
            if m.beta == 1:
                return self.op("Softplus", [x])
            scaled = self.op("Mul", [x, self.scalar(m.beta)])
            return self.op("Div", [self.op("Softplus", [scaled]), self.scalar(m.beta)])
        if isinstance(m, nn.Hardsigmoid):
            return self.op("HardSigmoid", [x], alpha=1.0 / 6)
        if isinstance(m, nn.CELU):
            return self.op("Celu", [x], alpha=m.alpha)
        if isinstance(m, nn.Dropout):
            return x  # the exporter leaves nothing of it in eval mode
        simple = {nn.ReLU: "Relu", nn.Tanh: "Tanh", nn.SELU: "Selu", nn.Softsign: "Softsign",
                  nn.Hardswish: "HardSwish", nn.Mish: "Mish", nn.Identity: "Identity"}
        if type(m) in simple:
            return self.op(simple[type(m)], [x])
        if isinstance(m, nn.LogSoftmax):
            return self.op("LogSoftmax", [x], axis=-1)
        raise ValueError(m)

    def layernorm_chain(self, i, m, x):
        """LayerNorm as ReduceMean/Sub/Pow/Add/Sqrt/Div/Mul/Add, axes as inputs (opset 18)."""
        axes = self.name()
        self.nodes.append(helper.make_node("Constant", [], [axes], value=helper.make_tensor(
            axes + "_c", TensorProto.INT64, [1], [-1])))
        mean = self.op("ReduceMean", [x, axes])
        centered = self.op("Sub", [x, mean])
        var = self.op("ReduceMean", [self.op("Pow", [centered, self.scalar(2.0)]), axes])
        std = self.op("Sqrt", [self.op("Add", [var, self.scalar(m.eps)])])
        y = self.op("Div", [centered, std])
        y = self.op("Mul", [y, self.weight(str(i) + ".weight", m.weight)])
        return self.op("Add", [y, self.weight(str(i) + ".bias", m.bias)])


def floats(tensor):
    # repr of each float32 as a double reads back as the same float32.
    return "[%s]" % ", ".join(repr(float(v)) for v in tensor.detach().numpy().astype(np.float32))


def text_layer(m):
    """One layer in the native text format (proto/seqserve/v1/model.proto)."""
    if isinstance(m, nn.Linear):
        return "linear { in_features: %d out_features: %d weight: %s bias: %s }" % (
            m.in_features, m.out_features, floats(m.weight.flatten()), floats(m.bias))
    if isinstance(m, nn.BatchNorm1d):
        return ("batch_norm { num_features: %d weight: %s bias: %s running_mean: %s "
                "running_var: %s eps: %r }" % (m.num_features, floats(m.weight), floats(m.bias),
                                              floats(m.running_mean), floats(m.running_var),
                                              m.eps))
    if isinstance(m, nn.LayerNorm):
        return "layer_norm { normalized_shape: %d weight: %s bias: %s eps: %r }" % (
            m.normalized_shape[0], floats(m.weight), floats(m.bias), m.eps)
    if isinstance(m, nn.GELU):
        return 'gelu { approximate: "%s" }' % m.approximate
    if isinstance(m, nn.ReLU6):
        return "relu_six {}"
    if isinstance(m, nn.Hardtanh):
        return "hardtanh { min_val: %r max_val: %r }" % (m.min_val, m.max_val)
    if isinstance(m, nn.PReLU):
        return "prelu { weight: %s }" % floats(m.weight)
    if isinstance(m, nn.CELU):
        return "celu { alpha: %r }" % m.alpha
    if isinstance(m, nn.Softplus):
        return "softplus { beta: %r threshold: %r }" % (float(m.beta), float(m.threshold))
    if isinstance(m, nn.Dropout):
        return "dropout { p: %r }" % m.p
    names = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.SiLU: "silu", nn.SELU: "selu",
             nn.Softsign: "softsign", nn.Hardsigmoid: "hardsigmoid", nn.Hardswish: "hardswish",
             nn.Mish: "mish", nn.Identity: "identity"}
    return "%s {}" % names[type(m)]


def write_text_model(model, path):
    layers = [m for m in model if not isinstance(m, nn.LogSoftmax)]
    lines = ["# %s" % " -> ".join(type(m).__name__ for m in model), "input_width: 4"]
    lines += ["layers { %s }" % text_layer(m) for m in layers]
    if len(layers) != len(model):
        lines.append("head: HEAD_LOG_SOFTMAX")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def modern_export(model, opset, fixed_batch, chain=False):
    def write(path):
        g = ModernGraph(opset)
        x = "input"
        for i, m in enumerate(model):
            if chain and isinstance(m, nn.LayerNorm):
                x = g.layernorm_chain(i, m, x)
            else:
                x = g.layer(i, m, x)
        batch = 1 if fixed_batch else "batch"
        width = [m for m in model if isinstance(m, nn.Linear)][-1].out_features
        graph = helper.make_graph(
            g.nodes, "main_graph",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 4])],
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, width])],
            g.initializers)
        proto = helper.make_model(graph, producer_name="pytorch", producer_version="2.9.0",
                                  opset_imports=[helper.make_opsetid("", opset),
                                                 helper.make_opsetid(
                                                     "pkg.onnxscript.torch_lib.common", 1)])
        proto.ir_version = 10
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=0)
    return write


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for seed, (name, (factory, torch_opsets, modern_opsets)) in enumerate(sorted(CASES.items())):
        torch.manual_seed(seed)
        model = randomize(factory(), seed)
        x = inputs_for(seed)
        for opset in torch_opsets:
            write_case("%s_t%d" % (name, opset), model, x, torch_export(model, opset))
        if torch_opsets:  # the same model in the native text format
            write_text_model(model, os.path.join(OUT, "%s_t%d" % (name, torch_opsets[0]),
                                                 "model.textproto"))
        for k, opset in enumerate(modern_opsets):
            fixed = k % 2 == 1
            folder = "%s_m%d%s" % (name, opset, "_b1" if fixed else "")
            write_case(folder, model, x, modern_export(model, opset, fixed,
                                                       chain=name == "layernorm_chain"))


if __name__ == "__main__":
    main()
