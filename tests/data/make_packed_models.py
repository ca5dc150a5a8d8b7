#!/usr/bin/python3
"""Writes tests/data/reference/packed/: models wide enough to exercise core's Linear kernel.

They were made when a Linear with at least 64 x 64 weights ran on oneDNN's
packed matmul once rows x weights reached 2^17, which the other reference
models are too narrow to reach. core's kernel (core/linear_kernel.h) now
has one path for every layer, and these still check it where it does the
most: many slabs of 16 outputs, long sums, several row tiles, ranges of k
(tests/core/batch_invariance_test.cc runs them at every batch size too):

  wide_relu     Linear(1024, 256), ReLU, Linear(256, 256), ReLU,
                Linear(256, 10), Softmax: a long sum per output (1024
                products) and ReLU fused into the kernel
  wide_bn_mixed Linear(96, 256), BatchNorm1d(256), ReLU, Linear(256, 64),
                GELU, Linear(64, 64), LeakyReLU(0.1), Linear(64, 3), Softmax:
                a BatchNorm1d folded into a Linear, a ReLU fused past it,
                activations that are not fused, and outputs that fill a
                slab (64) or part of one (3)

Each folder holds model.onnx (torch 1.13's exporter, opset 13, dynamic
batch) and reference.json with PyTorch's numbers, as in
tests/data/reference/README.md. Deterministic; run from the repository root:
  /usr/bin/python3 tests/data/make_packed_models.py
"""
import json
import os
import shutil

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "packed")
ROWS = 17  # odd, and more than the 8 rows a vector register holds


def models():
    torch.manual_seed(7)
    wide_bn = nn.Sequential(nn.Linear(96, 256), nn.BatchNorm1d(256), nn.ReLU(),
                            nn.Linear(256, 64), nn.GELU(), nn.Linear(64, 64),
                            nn.LeakyReLU(0.1), nn.Linear(64, 3), nn.Softmax(dim=-1))
    norm = wide_bn[1]
    with torch.no_grad():
        norm.weight.copy_(torch.rand(256) * 1.5 + 0.25)
        norm.bias.copy_(torch.randn(256) * 0.5)
        norm.running_mean.copy_(torch.randn(256) * 0.7)
        norm.running_var.copy_(torch.rand(256) * 2 + 0.1)
    return {
        "wide_relu": nn.Sequential(nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 256),
                                   nn.ReLU(), nn.Linear(256, 10), nn.Softmax(dim=-1)),
        "wide_bn_mixed": wide_bn,
    }


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
        "layers": [type(m).__name__ for m in model],
    }


def main():
    for name, model in models().items():
        model.eval()
        width = model[0].in_features
        x = torch.randn(ROWS, width, generator=torch.Generator().manual_seed(11))
        path = os.path.join(OUT, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        torch.onnx.export(model, torch.zeros(1, width), os.path.join(path, "model.onnx"),
                          input_names=["features"], output_names=["scores"],
                          dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}},
                          opset_version=13)
        with open(os.path.join(path, "reference.json"), "w") as f:
            json.dump(reference(model, x), f)


if __name__ == "__main__":
    main()
