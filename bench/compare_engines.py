#!/usr/bin/python3
"""Forward pass of the same ONNX files in seqserve's core, ONNX Runtime and PyTorch.

Builds four nn.Sequential bodies (seeded; Linear + ReLU, no head, so every
side computes the same logits), exports each to one ONNX file, and times, on
one thread each:

  core     bench/forward_bench on the file (Sequential::Forward, Google Benchmark)
  ORT      onnxruntime-node in bench/ort (intraOpNumThreads 1, graph
           optimizations 'all'): a loop of `await session.run` inside Node,
           binding overhead included (see bench/ort/ort_time.js)
  PyTorch  the module under inference_mode, torch.set_num_threads(1),
           OPENBLAS_NUM_THREADS=1

Every case runs the three sides in turn for --rounds rounds, rotating which
goes first, and reports the median time per call of each side and the
median, minimum and maximum over rounds of the throughput ratios core/ORT and
core/PyTorch (each ratio from the same round). Also ORT's floor: an Identity
graph of one value at batch 1, the binding's cost per run.

--core-before BINARY adds a fourth side: another build's forward_bench
(say, of the commit before a change to core), with its ratio to core.

--precision int8 times the quantized model instead: each file rewritten by
tools/quantize_dynamic.py in the form ONNX Runtime's quantize_dynamic writes
(per-channel int8 weights, DynamicQuantizeLinear + MatMulInteger), which
core runs in INT8 with the file's weights and ORT with its own int8 kernels
(fused into DynamicQuantizeMatMul by its optimizer); PyTorch runs
torch.ao.quantization.quantize_dynamic(body, {nn.Linear}, torch.qint8) of
the same body (its own int8 weights, fbgemm). ORT quantizes a batch with
one scale, core each row with its own: the same file, not the same bits
beyond batch 1.

Needs the release build, `npm ci` in bench/ort, Debian's python3-torch and
python3-onnx; run with /usr/bin/python3. --quick runs every side once,
briefly, on every model at batch 1: a check that the script still works.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# One thread on every side. torch.set_num_threads() covers PyTorch's own
# pool, not the threads of the OpenBLAS it calls into: set those before
# OpenBLAS loads.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
MODELS = {
    "3-16-3": [3, 16, 3],
    "784-1024-1024-10": [784, 1024, 1024, 10],
    "256-4096-2": [256, 4096, 2],
    "64x10": [64] * 11,  # ten Linear(64, 64)
}
BATCHES = [1, 8, 32, 256]


def build(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(widths[i], widths[i + 1]))
    return nn.Sequential(*layers).eval()


def export(model, width, path):
    torch.onnx.export(model, torch.zeros(1, width), path,
                      input_names=["features"], output_names=["logits"],
                      dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13)


def export_identity(path):
    """One float in, the same float out: what ORT's binding costs per run."""
    import onnx
    from onnx import TensorProto, helper
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [value("x")], [value("y")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def time_torch(body, rows, width, seconds):
    """Nanoseconds per forward call of the body."""
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


def time_core(binary, name, path, rows, seconds):
    """Nanoseconds per Forward call, from one run of bench/forward_bench."""
    env = dict(os.environ, SEQSERVE_BENCH_FILES=f"{name}={path}")
    out = subprocess.run([binary, "--benchmark_format=json",
                          f"--benchmark_filter=^forward/{name}/{rows}$",
                          f"--benchmark_min_time={seconds}"],
                         env=env, check=True, capture_output=True, text=True).stdout
    entry = json.loads(out)["benchmarks"][0]
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
    return entry["real_time"] * scale[entry["time_unit"]]


class OrtSide:
    """bench/ort/ort_time.js kept running, one request per line."""

    def __init__(self):
        self.process = subprocess.Popen(
            ["node", os.path.join(ROOT, "bench/ort/ort_time.js")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def time(self, path, rows, width, seconds):
        self.process.stdin.write(json.dumps(
            {"model": path, "rows": rows, "width": width, "seconds": seconds}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            sys.exit("bench/ort/ort_time.js exited (run `npm ci` in bench/ort)")
        return json.loads(line)["ns_per_run"]

    def close(self):
        self.process.stdin.close()
        if self.process.wait(timeout=30) != 0:
            sys.exit("bench/ort/ort_time.js failed")


def spread(values):
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-binary",
                        default=os.path.join(ROOT, "build/release/bench/forward_bench"))
    parser.add_argument("--core-before", metavar="BINARY",
                        help="another build's forward_bench, timed as a fourth side")
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="measuring time per side, case and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated names from: " + ", ".join(MODELS))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                        help="int8: the files quantized as ONNX Runtime's quantize_dynamic "
                             "writes them, on every side")
    parser.add_argument("--quick", action="store_true",
                        help="one short round at batch 1: checks that the sides run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.batches = 0.02, 1, "1"
    names = args.models.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        paths, bodies = {}, {}
        for name in names:
            bodies[name] = build(MODELS[name])
            paths[name] = os.path.join(tmp, f"{name}.onnx")
            export(bodies[name], MODELS[name][0], paths[name])
            if args.precision == "int8":
                import onnx
                from quantize_dynamic import quantize_model
                quantized = os.path.join(tmp, f"{name}_int8.onnx")
                onnx.save_model(quantize_model(onnx.load(paths[name])), quantized)
                paths[name] = quantized
                bodies[name] = torch.ao.quantization.quantize_dynamic(
                    bodies[name], {nn.Linear}, dtype=torch.qint8)
        print(f"precision: {args.precision}")
        identity = os.path.join(tmp, "identity.onnx")
        export_identity(identity)
        ort = OrtSide()
        print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        floor = [ort.time(identity, 1, 1, args.seconds) for _ in range(args.rounds)]
        print(f"ORT floor (Identity of one value, batch 1): "
              f"{statistics.median(floor) / 1e3:.2f} us/run\n")
        before = " core before µs | core / before |" if args.core_before else ""
        print("| model | batch | core µs | ORT µs | PyTorch µs "
              "| core / ORT throughput | core / PyTorch throughput |" + before)
        print("| --- " * (9 if args.core_before else 7) + "|", flush=True)
        for name in names:
            width = MODELS[name][0]
            for rows in batches:
                sides = {
                    "core": lambda: time_core(args.bench_binary, name, paths[name], rows,
                                              args.seconds),
                    "ort": lambda: ort.time(paths[name], rows, width, args.seconds),
                    "torch": lambda: time_torch(bodies[name], rows, width, args.seconds),
                }
                if args.core_before:
                    sides["before"] = lambda: time_core(args.core_before, name, paths[name],
                                                        rows, args.seconds)
                order = list(sides)
                times = {side: [] for side in sides}
                for round_index in range(args.rounds):
                    # Rotate who goes first so drift on a shared machine
                    # does not always favour the same side.
                    shift = round_index % len(order)
                    for side in order[shift:] + order[:shift]:
                        times[side].append(sides[side]())
                vs_ort = [o / c for o, c in zip(times["ort"], times["core"])]
                vs_torch = [t / c for t, c in zip(times["torch"], times["core"])]
                med = {side: statistics.median(v) / 1e3 for side, v in times.items()}
                line = (f"| {name} | {rows} | {med['core']:.2f} | {med['ort']:.2f} "
                        f"| {med['torch']:.2f} | {spread(vs_ort)} | {spread(vs_torch)} |")
                if args.core_before:
                    vs_before = [b / c for b, c in zip(times["before"], times["core"])]
                    line += f" {med['before']:.2f} | {spread(vs_before)} |"
                print(line, flush=True)
        ort.close()
        print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
