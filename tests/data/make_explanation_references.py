#!/usr/bin/python3
"""Writes tests/data/reference/explanations/: per-feature attributions from PyTorch.

For each reference model (every top-level NAME.onnx, one form of every
layers/ case, the modern/ folders whose graph is a plain chain) this
computes, with autograd in float64, the attributions of one class's score
against an all-zero baseline:

  saliency              |ds/dx| (Captum's Saliency, abs=True)
  input_x_gradient      x * ds/dx
  integrated_gradients  Captum's IntegratedGradients: (x - b) * sum_i w_i *
                        ds/dx at b + a_i (x - b), for the rules
                        gausslegendre (50 steps), riemann_trapezoid (20) and
                        riemann_middle (7), with delta = sum(attributions) -
                        (s(x) - s(b))
  shapley               exact Shapley values over all 2^n coalitions (a
                        coalition takes x_j for its features, b_j otherwise)

The score s is a head of the last Linear's output z (any final Sigmoid,
Softmax or LogSoftmax module is dropped): logits, sigmoid, softmax or
log_softmax, taken at the target class. A model with one output is binary:
class 1 scores z or sigmoid(z), class 0 scores -z or 1 - sigmoid(z).

The models are rebuilt as nn.Sequential: from the ONNX graph for the
top-level and modern/ models, from make_layer_models.py's CASES (same
seeds) for layers/; each rebuilt model must reproduce the logits of the
reference json beside its ONNX file in float32 within 1e-5 relative plus
1e-6 absolute, or the script stops.

Deterministic; run from the repository root with Debian's interpreter
(python3-torch, python3-numpy, python3-onnx):
  /usr/bin/python3 tests/data/make_explanation_references.py
"""
import glob
import json
import math
import os
import shutil
import sys
from fractions import Fraction

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "reference")
OUT = os.path.join(REF, "explanations")
sys.path.insert(0, HERE)
import make_layer_models  # noqa: E402  (main() runs only as a script)

MAX_ROWS = 6
MAX_SHAPLEY_FEATURES = 16
RTOL, ATOL = 1e-5, 1e-6
FINAL = (nn.Sigmoid, nn.Softmax, nn.LogSoftmax)
HEAD_OF_FINAL = {nn.Sigmoid: "sigmoid", nn.Softmax: "softmax", nn.LogSoftmax: "log_softmax"}
IG_RUNS = [("gausslegendre", 50), ("riemann_trapezoid", 20), ("riemann_middle", 7)]

torch.set_num_threads(1)  # one summation order, whatever the machine


class Unsupported(Exception):
    """A graph that is not a chain of layers this script rebuilds."""


# ---------------------------------------------------------------- models


def torch_constant(value):
    """The constant torch was given for a float32 ONNX attribute (0.1, not 0.10000000149)."""
    return float(str(np.float32(value)))


def linear(weight, bias):
    m = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
        m.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32)))
    return m


def rebuild_from_onnx(path):
    """The nn.Sequential an ONNX chain of Gemm/MatMul(+Add) and activations computes."""
    proto = onnx.load(path)  # external data (model.onnx.data) is read from beside it
    graph = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    data_inputs = [i for i in graph.input if i.name not in consts]
    if len(data_inputs) != 1 or len(graph.output) != 1:
        raise Unsupported("not one input and one output")
    current = data_inputs[0].name
    modules = []
    open_matmul = None  # the Linear a MatMul made, while an Add may still give its bias
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        data = [name for name in node.input if name and name not in consts]
        if not data:  # folds weights, e.g. the Transpose before a MatMul
            if op == "Transpose":
                consts[node.output[0]] = np.transpose(consts[node.input[0]], attrs.get("perm"))
                continue
            raise Unsupported("constant %s" % op)
        if data != [current] or node.input[0] != current:
            raise Unsupported("%s does not continue the chain" % op)
        matmul, open_matmul = open_matmul, None
        others = [consts[name] for name in node.input[1:] if name]
        if op == "Gemm":
            if attrs.get("transA", 0):
                raise Unsupported("Gemm with transA")
            b = others[0]
            weight = b if attrs.get("transB", 0) else b.T  # Linear's weight is (out, in)
            alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
            if alpha != 1.0:
                weight = weight * np.float32(alpha)
            bias = np.zeros(weight.shape[0], np.float32)
            if len(others) > 1:
                bias = np.broadcast_to(others[1], (weight.shape[0],)).astype(np.float32)
                if beta != 1.0:
                    bias = bias * np.float32(beta)
            modules.append(linear(weight, bias))
        elif op == "MatMul":
            if others[0].ndim != 2:
                raise Unsupported("MatMul with a %d-d weight" % others[0].ndim)
            open_matmul = linear(others[0].T, np.zeros(others[0].shape[1], np.float32))
            modules.append(open_matmul)
        elif op == "Add" and matmul is not None and others[0].size == matmul.out_features:
            with torch.no_grad():
                matmul.bias.copy_(torch.from_numpy(
                    others[0].reshape(-1).astype(np.float32)))
        elif op == "Relu":
            modules.append(nn.ReLU())
        elif op == "Tanh":
            modules.append(nn.Tanh())
        elif op == "Sigmoid":
            modules.append(nn.Sigmoid())
        elif op == "LeakyRelu":
            modules.append(nn.LeakyReLU(torch_constant(attrs.get("alpha", 0.01))))
        elif op == "Elu":
            modules.append(nn.ELU(torch_constant(attrs.get("alpha", 1.0))))
        elif op in ("Softmax", "LogSoftmax"):
            if attrs.get("axis", -1) not in (-1, 1):
                raise Unsupported("%s over axis %d" % (op, attrs["axis"]))
            modules.append(nn.Softmax(dim=-1) if op == "Softmax" else nn.LogSoftmax(dim=-1))
        elif op == "BatchNormalization":
            scale, shift, mean, var = others
            m = nn.BatchNorm1d(scale.shape[0], eps=torch_constant(attrs.get("epsilon", 1e-5)))
            with torch.no_grad():
                for param, value in ((m.weight, scale), (m.bias, shift), (m.running_mean, mean),
                                     (m.running_var, var)):
                    param.copy_(torch.from_numpy(value.astype(np.float32)))
            modules.append(m.eval())
        elif op == "LayerNormalization":
            if attrs.get("axis", -1) not in (-1, 1):
                raise Unsupported("LayerNormalization over axis %d" % attrs["axis"])
            scale, shift = others
            m = nn.LayerNorm(scale.shape[0], eps=torch_constant(attrs.get("epsilon", 1e-5)))
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(scale.astype(np.float32)))
                m.bias.copy_(torch.from_numpy(shift.astype(np.float32)))
            modules.append(m)
        elif op == "Gelu":
            approximate = attrs.get("approximate", b"none")
            modules.append(nn.GELU(approximate=approximate.decode()
                                   if isinstance(approximate, bytes) else approximate))
        elif op == "Identity":
            modules.append(nn.Identity())
        else:
            raise Unsupported("operator %s" % op)
        current = node.output[0]
    if current != graph.output[0].name:
        raise Unsupported("the chain does not end at the graph's output")
    return nn.Sequential(*modules).eval()


def last_linear_index(model):
    index = max(i for i, m in enumerate(model) if isinstance(m, nn.Linear))
    tail = list(model)[index + 1:]
    if len(tail) > 1 or (tail and not isinstance(tail[0], FINAL)):
        raise Unsupported("layers after the last Linear: %s" % tail)
    return index


def close(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return actual.shape == expected.shape and bool(
        np.all(np.abs(actual - expected) <= ATOL + RTOL * np.abs(expected)))


def check_against_reference(label, model, reference):
    """Stops unless the float32 model reproduces the reference json's logits and output."""
    printed = [str(m) if "(" in reference["layers"][0] else type(m).__name__ for m in model]
    if printed != reference["layers"]:
        raise SystemExit("%s: rebuilt layers %s, reference %s" % (label, printed,
                                                                  reference["layers"]))
    x = torch.tensor(reference["inputs"], dtype=torch.float32)
    with torch.no_grad():
        logits = model[:last_linear_index(model) + 1](x)
        output = model(x)
    if not close(logits.numpy(), reference["logits"]):
        worst = np.max(np.abs(logits.numpy() - np.asarray(reference["logits"])))
        raise SystemExit("%s: rebuilt logits differ from the reference (max %g)" % (label, worst))
    if not close(output.numpy(), reference["output"]):
        raise SystemExit("%s: rebuilt output differs from the reference" % label)
    return predicted(torch.tensor(reference["logits"], dtype=torch.float64))


# ---------------------------------------------------------------- scores


def default_head(model):
    final = model[-1]
    if not isinstance(final, FINAL):
        return "logits"
    if model[last_linear_index(model)].out_features == 1:
        return "sigmoid"  # a binary model has the logits and sigmoid heads only
    return HEAD_OF_FINAL[type(final)]


def score(z, head, targets):
    """s for each row: the target class's score under head of the logits z (rows, K)."""
    if z.shape[1] == 1:  # binary: class 1 is z, class 0 its complement
        z = z[:, 0]
        if head == "logits":
            one, zero = z, -z
        elif head == "sigmoid":
            one = torch.sigmoid(z)
            zero = 1 - one
        else:
            raise ValueError(head)
        return torch.where(targets == 1, one, zero)
    if head == "logits":
        h = z
    elif head == "sigmoid":
        h = torch.sigmoid(z)
    elif head == "softmax":
        h = torch.softmax(z, dim=-1)
    elif head == "log_softmax":
        h = torch.log_softmax(z, dim=-1)
    else:
        raise ValueError(head)
    return h.gather(1, targets[:, None])[:, 0]


def predicted(z):
    if z.shape[1] == 1:
        return (z[:, 0] > 0).long()
    return torch.argmax(z, dim=1)  # the first of equal maxima


class Explained:
    """s(x) = score(body(x)) for one head and one target per row, in float64."""

    def __init__(self, body, head, targets):
        self.body, self.head, self.targets = body, head, targets

    def __call__(self, x):
        return score(self.body(x), self.head, self.targets)

    def gradient(self, x):
        x = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(self(x).sum(), x)
        return grad


# ---------------------------------------------------------------- methods


def ig_steps(rule, n):
    """Captum's step sizes and alphas (captum/attr/_utils/approximation_methods.py), float64."""
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * weights, 0.5 * (1 + nodes)
    sizes = np.full(n, 1.0 / n)
    if rule == "riemann_trapezoid":
        sizes[0] /= 2
        sizes[-1] /= 2
        return sizes, np.linspace(0, 1, n)
    if rule == "riemann_left":
        return sizes, np.linspace(0, 1 - 1 / n, n)
    if rule == "riemann_right":
        return sizes, np.linspace(1 / n, 1, n)
    if rule == "riemann_middle":
        return sizes, np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    raise ValueError(rule)


def integrated_gradients(f, x, b, rule, n):
    sizes, alphas = ig_steps(rule, n)
    total = torch.zeros_like(x)
    for size, alpha in zip(sizes, alphas):
        total += float(size) * f.gradient(b + float(alpha) * (x - b))
    return (x - b) * total


def shapley_weights(n):
    return [float(Fraction(math.factorial(k) * math.factorial(n - k - 1), math.factorial(n)))
            for k in range(n)]


def coalition_logits(body, x, b):
    """z at every coalition of every row: (rows, 2^n, K); bit j of a coalition is feature j."""
    n = x.shape[1]
    masks = torch.tensor([[(s >> j) & 1 for j in range(n)] for s in range(1 << n)],
                         dtype=torch.bool)
    with torch.no_grad():
        return torch.stack([body(torch.where(masks, row, b)) for row in x])


def shapley(f, zs, n):
    """Exact Shapley values from the coalitions' logits zs (rows, 2^n, K)."""
    weights = shapley_weights(n)
    ids = np.arange(1 << n)
    sizes = np.array([bin(s).count("1") for s in ids])
    out = []
    for r in range(zs.shape[0]):
        with torch.no_grad():
            v = score(zs[r], f.head, f.targets[r].repeat(1 << n)).numpy()
        phi = []
        for i in range(n):
            without = ids[((ids >> i) & 1) == 0]
            terms = np.array(weights)[sizes[without]] * (v[without | (1 << i)] - v[without])
            phi.append(math.fsum(terms.tolist()))
        out.append(phi)
    return torch.tensor(out, dtype=torch.float64)


# ---------------------------------------------------------------- checks

IG_DELTA_FAILURES = []


def check_single_linear(label, body, x, b, targets, attributions, rule, n):
    """For a body that is one Linear and the logits head, IG is (x - b) * w exactly."""
    w = body[0].weight.detach()
    if w.shape[0] == 1:
        row_w = torch.where((targets == 1)[:, None], w[0].expand(len(targets), -1),
                            -w[0].expand(len(targets), -1))
    else:
        row_w = w[targets]
    expected = (x - b) * row_w * float(math.fsum(ig_steps(rule, n)[0]))
    if not torch.allclose(attributions, expected, rtol=1e-12, atol=1e-15):
        raise SystemExit("%s: IG (%s, %d) of a single Linear is not (x - b) * w" % (label, rule, n))


def self_test_single_linear():
    """The single-Linear check on two small bodies (no reference model is one Linear)."""
    gen = torch.Generator().manual_seed(0)
    for outputs in (3, 1):
        body = nn.Sequential(nn.Linear(4, outputs)).double()
        with torch.no_grad():
            body[0].weight.copy_(torch.randn(outputs, 4, generator=gen, dtype=torch.float64))
            body[0].bias.copy_(torch.randn(outputs, generator=gen, dtype=torch.float64))
        x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
        b = torch.zeros(4, dtype=torch.float64)
        for targets in (predicted(body(x).detach()), torch.zeros(5, dtype=torch.long)):
            f = Explained(body, "logits", targets)
            for rule, n in IG_RUNS:
                check_single_linear("Linear(4, %d)" % outputs, body, x, b, targets,
                                    integrated_gradients(f, x, b, rule, n), rule, n)


# ---------------------------------------------------------------- files


def floats(t):
    return [float(v) for v in t.tolist()]


def rows(t):
    return [[float(v) for v in row] for row in t.tolist()]


def explain(label, model, relative_path, reference):
    """The explanations file for one model (float32 model, reference json)."""
    reference_predicted = check_against_reference(label, model, reference)
    model = model.double().eval()
    body = model[:last_linear_index(model) + 1]
    x = torch.tensor(reference["inputs"][:MAX_ROWS], dtype=torch.float64)
    count, n = x.shape
    b = torch.zeros(n, dtype=torch.float64)
    with torch.no_grad():
        z = body(x)
    outputs = z.shape[1]
    chosen = predicted(z)
    if not torch.equal(chosen, reference_predicted[:count]):
        raise SystemExit("%s: the float64 predicted classes differ from the reference's" % label)
    head = default_head(model)
    heads = ["logits"] + ([head] if head != "logits" else [])
    zs = coalition_logits(body, x, b) if n <= MAX_SHAPLEY_FEATURES else None
    if zs is None:
        print("  %s: no shapley: %d features (exact Shapley only up to %d)" % (
            label, n, MAX_SHAPLEY_FEATURES))
    single_linear = len(body) == 1
    entries = []
    gl_rows, gl_over = 0, []  # rows whose Gauss-Legendre delta is over its bound
    for h in heads:
        for targets in (chosen, torch.zeros(count, dtype=torch.long)):
            f = Explained(body, h, targets)
            with torch.no_grad():
                s_x = f(x)
                s_b = f(b.expand(count, -1))
            common = {"targets": [int(t) for t in targets], "scores": floats(s_x)}
            grad = f.gradient(x)
            entries.append(dict(method="saliency", head=h, **common,
                                attributions=rows(grad.abs())))
            entries.append(dict(method="input_x_gradient", head=h, **common,
                                attributions=rows(x * grad)))
            for rule, steps in IG_RUNS:
                attributions = integrated_gradients(f, x, b, rule, steps)
                delta = attributions.sum(dim=1) - (s_x - s_b)
                if rule == "gausslegendre":
                    gl_rows += count
                    bound = 1e-3 * (s_x - s_b).abs() + 1e-9
                    for r in torch.nonzero(delta.abs() > bound).flatten().tolist():
                        gl_over.append(float(delta[r].abs() / (s_x[r] - s_b[r]).abs()))
                if single_linear and h == "logits":
                    check_single_linear(label, body, x, b, targets, attributions, rule, steps)
                entries.append(dict(method="integrated_gradients", head=h, rule=rule,
                                    steps=steps, **common, baseline_scores=floats(s_b),
                                    attributions=rows(attributions), delta=floats(delta)))
            if zs is not None:
                phi = shapley(f, zs, n)
                gap = (phi.sum(dim=1) - (s_x - s_b)).abs().max()
                if gap > 1e-9:
                    raise SystemExit("%s head %s: Shapley values miss s(x) - s(b) by %g" % (
                        label, h, float(gap)))
                entries.append(dict(method="shapley", head=h, **common,
                                    baseline_scores=floats(s_b), attributions=rows(phi)))
    if gl_over:
        failure = "%s: %d of %d rows, |delta| / |s(x) - s(b)| up to %.3g" % (
            label, len(gl_over), gl_rows, max(gl_over))
        IG_DELTA_FAILURES.append(failure)
        print("  IG (gausslegendre, 50) delta over its bound: " + failure)
    return {
        "model": relative_path,
        "feature_count": n,
        "output_count": outputs,
        "default_head": head,
        "inputs": rows(x),
        "baseline": floats(b),
        "explanations": entries,
    }


def write(name, document):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(document, f, indent=1, allow_nan=False)
        f.write("\n")
    print("%s: %d explanations" % (name, len(document["explanations"])))
    return len(document["explanations"])


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    self_test_single_linear()
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    total = 0
    for path in sorted(glob.glob(os.path.join(REF, "*.onnx"))):
        name = os.path.basename(path)[:-len(".onnx")]
        model = rebuild_from_onnx(path)  # a graph it cannot rebuild stops the script
        total += write(name + ".json", explain(name, model, name + ".onnx",
                                               load(os.path.join(REF, name + ".json"))))
    for seed, (name, (factory, _, _)) in enumerate(sorted(make_layer_models.CASES.items())):
        torch.manual_seed(seed)
        model = make_layer_models.randomize(factory(), seed)
        x = make_layer_models.inputs_for(seed)
        folder = "layers/%s_m18" % name
        reference = load(os.path.join(REF, folder, "reference.json"))
        if not torch.equal(x, torch.tensor(reference["inputs"], dtype=torch.float32)):
            raise SystemExit("%s: inputs_for(%d) differ from the reference's" % (folder, seed))
        total += write("layers_%s.json" % name,
                       explain(folder, model, folder + "/model.onnx", reference))
    for folder in sorted(glob.glob(os.path.join(REF, "modern", "*"))):
        name = os.path.basename(folder)
        reference_path = os.path.join(folder, "reference.json")
        if not os.path.exists(reference_path):
            print("modern/%s skipped: no reference.json" % name)
            continue
        try:
            model = rebuild_from_onnx(os.path.join(folder, "model.onnx"))
            last_linear_index(model)
        except Unsupported as e:
            print("modern/%s skipped: %s" % (name, e))
            continue
        total += write("modern_%s.json" % name,
                       explain("modern/" + name, model, "modern/%s/model.onnx" % name,
                               load(reference_path)))
    print("%d explanations in all" % total)
    if IG_DELTA_FAILURES:
        print("IG (gausslegendre, 50) delta over 1e-3 * |s(x) - s(b)| + 1e-9 in %d models "
              "(a gradient that jumps at a kink along the path, e.g. ReLU's):" %
              len(IG_DELTA_FAILURES))
        for failure in IG_DELTA_FAILURES:
            print("  " + failure)


if __name__ == "__main__":
    main()
