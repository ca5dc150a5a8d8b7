#!/usr/bin/python3
"""Forward pass of the same models in PyTorch and in seqserve's core, one run.

Builds a 3-16-3 and a 784-1024-1024-10 nn.Sequential (seeded), exports both to
ONNX, times PyTorch on one thread, runs bench/forward_bench on the exported
files, and prints time per call and the throughput ratio per case.

Needs Debian's python3-torch (run with /usr/bin/python3) and the release
build: cmake --preset release && cmake --build --preset release
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
from torch import nn

MODELS = {"3-16-3": [3, 16, 3], "784-1024-1024-10": [784, 1024, 1024, 10]}
BATCHES = [1, 32, 256]


def build(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(widths[i], widths[i + 1]))
    layers.append(nn.Softmax(dim=-1))
    return nn.Sequential(*layers).eval()


def export(model, width, path):
    torch.onnx.export(model, torch.zeros(1, width), path,
                      input_names=["features"], output_names=["scores"],
                      dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}},
                      opset_version=13)


def time_torch(body, rows, width, seconds):
    """Median nanoseconds per forward call of the body (logits, as core's Forward)."""
    x = torch.rand(rows, width)
    samples = []
    with torch.inference_mode():
        for _ in range(20):
            body(x)
        for _ in range(5):
            calls, start = 0, time.perf_counter_ns()
            while time.perf_counter_ns() - start < seconds * 1e9 / 5:
                for _ in range(10):
                    body(x)
                calls += 10
            samples.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(samples)


def time_core(binary, paths, seconds):
    env = dict(os.environ, SEQSERVE_BENCH_SMALL=paths["3-16-3"],
               SEQSERVE_BENCH_LARGE=paths["784-1024-1024-10"])
    out = subprocess.run([binary, "--benchmark_format=json",
                          f"--benchmark_min_time={seconds / 5}",
                          "--benchmark_repetitions=5",
                          "--benchmark_report_aggregates_only=true"],
                         env=env, check=True, capture_output=True, text=True).stdout
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
    result = {}
    for entry in json.loads(out)["benchmarks"]:
        if entry.get("aggregate_name") != "median":
            continue
        _, model, rows = entry["run_name"].split("/")
        result[(model, int(rows))] = entry["real_time"] * scale[entry["time_unit"]]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-binary", default="build/release/bench/forward_bench")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="measuring time per case and side")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        paths, bodies = {}, {}
        for name, widths in MODELS.items():
            model = build(widths)
            paths[name] = os.path.join(tmp, f"{name}.onnx")
            export(model, widths[0], paths[name])
            bodies[name] = model[:-1]  # without the Softmax: logits, as Forward
        core = time_core(args.bench_binary, paths, args.seconds)
        print(f"{'model':<18} {'batch':>5} {'PyTorch us':>11} {'seqserve us':>12} "
              f"{'speedup':>8}")
        for name, widths in MODELS.items():
            for rows in BATCHES:
                torch_ns = time_torch(bodies[name], rows, widths[0], args.seconds)
                core_ns = core[(name, rows)]
                print(f"{name:<18} {rows:>5} {torch_ns / 1e3:>11.3f} "
                      f"{core_ns / 1e3:>12.3f} {torch_ns / core_ns:>7.2f}x")


if __name__ == "__main__":
    main()
