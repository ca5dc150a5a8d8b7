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

# One thread on both sides. torch.set_num_threads() covers PyTorch's own
# pool, not the threads of the OpenBLAS it calls into: set those before
# OpenBLAS loads.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402
from torch import nn  # noqa: E402

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
    """Nanoseconds per forward call of the body (logits, as core's Forward)."""
    x = torch.rand(rows, width)
    with torch.inference_mode():
        for _ in range(10):
            body(x)
        calls, start = 0, time.perf_counter_ns()
        while time.perf_counter_ns() - start < seconds * 1e9:
            for _ in range(10):
                body(x)
            calls += 10
        return (time.perf_counter_ns() - start) / calls


def time_core(binary, paths, name, rows, seconds):
    """Nanoseconds per Forward call of one case of bench/forward_bench."""
    env = dict(os.environ, SEQSERVE_BENCH_SMALL=paths["3-16-3"],
               SEQSERVE_BENCH_LARGE=paths["784-1024-1024-10"])
    out = subprocess.run([binary, "--benchmark_format=json",
                          f"--benchmark_filter=^forward/{name}/{rows}$",
                          f"--benchmark_min_time={seconds}"],
                         env=env, check=True, capture_output=True, text=True).stdout
    entry = json.loads(out)["benchmarks"][0]
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
    return entry["real_time"] * scale[entry["time_unit"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-binary", default="build/release/bench/forward_bench")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="measuring time per case and side")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternations of the two sides per case")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        paths, bodies = {}, {}
        for name, widths in MODELS.items():
            model = build(widths)
            paths[name] = os.path.join(tmp, f"{name}.onnx")
            export(model, widths[0], paths[name])
            bodies[name] = model[:-1]  # without the Softmax: logits, as Forward
        print(f"{'model':<18} {'batch':>5} {'PyTorch us':>11} {'seqserve us':>12} "
              f"{'speedup':>8}")
        for name, widths in MODELS.items():
            for rows in BATCHES:
                # Alternate the two sides so drift on a shared machine hits
                # both alike; report the medians.
                torch_ns, core_ns = [], []
                for _ in range(args.rounds):
                    torch_ns.append(time_torch(bodies[name], rows, widths[0],
                                               args.seconds / args.rounds))
                    core_ns.append(time_core(args.bench_binary, paths, name, rows,
                                             args.seconds / args.rounds))
                t, c = statistics.median(torch_ns), statistics.median(core_ns)
                print(f"{name:<18} {rows:>5} {t / 1e3:>11.3f} {c / 1e3:>12.3f} "
                      f"{t / c:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
