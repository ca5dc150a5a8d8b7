#!/usr/bin/python3
"""The batch-invariant Linear kernel against the oneDNN kernels it replaced.

Runs bench/forward_bench's kernels/<model>/{onednn,invariant}/<rows>
benchmarks: the four benchmark models' Linear + ReLU chains on core's
LinearKernel and on the oneDNN kernels core had before
(bench/onednn_linear_kernel.h), through the same loop. For each model and
batch size one forward_bench process runs both sides --repetitions times,
repetitions of the two sides randomly interleaved
(--benchmark_enable_random_interleaving), so drift and other load hit both;
repetition i of one side is paired with repetition i of the other.

Prints a Markdown table: the median time per pass of each side (CPU time of
the calling thread; both sides run on it alone), and the throughput ratio
invariant / oneDNN (above 1: the invariant kernel is faster) as the median
and (min-max) over the pairs, from CPU time and from wall time. Also the
load average at start and end (`uptime`).

  /usr/bin/python3 bench/invariant_bench.py [--repetitions 5] [--min-time 0.3]
      [--binary build/release/bench/forward_bench] [--models 64x10,...]
      [--batches 1,8,32,256]
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["3-16-3", "784-1024-1024-10", "256-4096-2", "64x10"]
BATCHES = [1, 8, 32, 256]
SCALE = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def run_pair(binary, model, rows, repetitions, min_time):
    """{side: [(cpu_us, wall_us) per repetition]} from one forward_bench run."""
    out = subprocess.run(
        [binary, f"--benchmark_filter=^kernels/{model}/(onednn|invariant)/{rows}$",
         f"--benchmark_repetitions={repetitions}", "--benchmark_enable_random_interleaving=true",
         f"--benchmark_min_time={min_time}", "--benchmark_format=json"],
        env=dict(os.environ, OMP_NUM_THREADS="1"), check=True, capture_output=True,
        text=True).stdout
    times = {"onednn": [], "invariant": []}
    for entry in json.loads(out)["benchmarks"]:
        if entry.get("run_type") != "iteration":
            continue
        side = entry["run_name"].split("/")[2]
        scale = SCALE[entry["time_unit"]]
        times[side].append((entry["repetition_index"], entry["cpu_time"] * scale,
                            entry["real_time"] * scale))
    return {side: [(cpu, wall) for _, cpu, wall in sorted(values)]
            for side, values in times.items()}


def spread(values):
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "build/release/bench/forward_bench"))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{args.repetitions} repetitions of {args.min_time} s per side, interleaved\n")
    print("| model | batch | oneDNN µs | invariant µs | invariant / oneDNN throughput "
          "(CPU time) | (wall time) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model in args.models.split(","):
        for rows in map(int, args.batches.split(",")):
            times = run_pair(args.binary, model, rows, args.repetitions, args.min_time)
            old, new = times["onednn"], times["invariant"]
            cpu = [o[0] / n[0] for o, n in zip(old, new)]
            wall = [o[1] / n[1] for o, n in zip(old, new)]
            print(f"| {model} | {rows} | {statistics.median(o[0] for o in old):.2f} | "
                  f"{statistics.median(n[0] for n in new):.2f} | {spread(cpu)} | "
                  f"{spread(wall)} |", flush=True)
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
