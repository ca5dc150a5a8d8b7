#!/usr/bin/python3
"""Dynamic batching against its ceiling: 784-1024-1024-10, concurrency 64.

End to end: seqserve with --max_batch_rows=256 (batching) and =1 (none),
alternated over --rounds rounds, under `seqclient bench` at concurrency 64,
one row per call. The gain is batching calls/s over no-batching calls/s of
the same round. After each batching round the server's
seqserve_batch_rows histogram (/metrics) gives the rows per forward pass it
formed.

Ceiling: what the forward pass alone allows, time per row at batch 1 over
time per row at the batch the batcher formed (its mean, rounded), from
bench/forward_bench on the same ONNX file, on one thread, timed between the
end-to-end rounds.

The server's CPU time per call (from /proc, user plus system) beside the
forward pass's share of it shows what batching cannot shrink: the cost of
each call outside the forward pass. (The CPU window also holds the load
generator's 100 warm-up calls and one /metrics read: under 1% of a step.)

--against FLAGS prints another table instead: each layout with batching
and without, the server started with and without FLAGS in alternation,
calls/s and CPU per call of both and their ratio.

Two layouts: unpinned (server, with its default inference threads, and load
generator share both cores) and pinned (taskset: the generator on core 0,
the server on core 1 with one inference thread).

Needs the release build and Debian's python3-torch, python3-onnx,
python3-grpcio; run with /usr/bin/python3. --quick: one short round per
layout, a check that the script still runs.
"""
import argparse
import collections
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import ROOT, SEQCLIENT, free_port, spread, start_seqserve  # noqa: E402

CONCURRENCY = 64
LAYOUTS = {
    "unpinned": {"server": [], "client": [], "flags": []},
    "pinned": {"server": ["taskset", "-c", "1"], "client": ["taskset", "-c", "0"],
               "flags": ["--inference_threads=1"]},
}


def export_large_model(directory):
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                          nn.ReLU(), nn.Linear(1024, 10), nn.Softmax(dim=-1)).eval()
    os.makedirs(os.path.join(directory, "large", "1"))
    torch.onnx.export(model, torch.zeros(1, 784),
                      os.path.join(directory, "large", "1", "model.onnx"),
                      input_names=["features"], output_names=["scores"],
                      dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}},
                      opset_version=13)


def batch_rows(http_port):
    """Forward passes and rows per pass, from the server's histogram."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics").read().decode()

    def value(name):  # 0 until the first pass creates the series
        found = re.search(rf'^{name}\{{[^}}]*\}} (\S+)', text, re.M)
        return float(found[1]) if found else 0.0

    count, total = value("seqserve_batch_rows_count"), value("seqserve_batch_rows_sum")
    buckets = [(float(le), float(n)) for le, n in re.findall(
        r'^seqserve_batch_rows_bucket\{[^}]*le="([^"+]+)"\} (\S+)', text, re.M)]
    return count, total, buckets


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# One end-to-end step: calls/s at concurrency 64, errors, the forward
# passes and rows formed (and the histogram's buckets), and the server's CPU
# time per call.
Step = collections.namedtuple(
    "Step", "calls_per_s errors passes rows buckets cpu_us_per_call")


def end_to_end(layout, repository, max_batch_rows, seconds, flags):
    """One Step of seqclient bench against a fresh server."""
    http_port = free_port()
    server, port, _ = start_seqserve(repository, f"--max_batch_rows={max_batch_rows}",
                                     f"--http_port={http_port}", *layout["flags"], *flags,
                                     wrapper=layout["server"])
    try:
        before, cpu_before = batch_rows(http_port), cpu_seconds(server.pid)
        out = subprocess.run(layout["client"] + [
            SEQCLIENT, f"--target=127.0.0.1:{port}", "bench", "--csv",
            f"--concurrency={CONCURRENCY}", f"--duration_seconds={seconds}", "--model=large"],
            check=True, capture_output=True, text=True).stdout
        after, cpu_after = batch_rows(http_port), cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait()
    result = next(csv.DictReader(io.StringIO(out)))
    passes, rows = after[0] - before[0], after[1] - before[1]
    buckets = [(le, n - dict(before[2]).get(le, 0.0)) for le, n in after[2]]
    cpu_per_call = (cpu_after - cpu_before) * 1e6 / max(1, int(result["requests"]))
    return Step(float(result["requests_per_s"]), int(result["errors"]), passes, rows, buckets,
                cpu_per_call)


def forward_ns(binary, path, rows, seconds):
    """Nanoseconds per Forward call at each batch size, one thread."""
    env = dict(os.environ, SEQSERVE_BENCH_FILES=f"large={path}",
               SEQSERVE_BENCH_ROWS=",".join(map(str, rows)))
    out = subprocess.run([binary, "--benchmark_format=json",
                          f"--benchmark_min_time={seconds}"],
                         env=env, check=True, capture_output=True, text=True).stdout
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
    return {int(b["name"].rsplit("/", 1)[1]): b["real_time"] * scale[b["time_unit"]]
            for b in json.loads(out)["benchmarks"]}


def compare_flags(args, repository):
    """calls/s and server CPU per call with args.against over without it."""
    print(f"| layout | max_batch_rows | calls/s without | calls/s with {args.against} | ratio | "
          "server CPU µs per call without | with | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for name in args.layouts.split(","):
        for setting in (256, 1):
            calls, cpu, ratios, errors = {False: [], True: []}, {False: [], True: []}, [], 0
            for round_index in range(args.rounds):
                for with_flags in ((False, True) if round_index % 2 == 0 else (True, False)):
                    flags = args.server_flags.split() + (args.against.split() if with_flags
                                                         else [])
                    result = end_to_end(LAYOUTS[name], repository, setting, args.seconds, flags)
                    calls[with_flags].append(result.calls_per_s)
                    cpu[with_flags].append(result.cpu_us_per_call)
                    errors += result.errors
                ratios.append(calls[True][-1] / calls[False][-1])
            print(f"| {name} | {setting} | {spread(calls[False], 0)} | {spread(calls[True], 0)} | "
                  f"{spread(ratios)}x | {spread(cpu[False], 0)} | {spread(cpu[True], 0)} | "
                  f"{errors} |", flush=True)


def ceiling_table(args, repository, path):
    """Batching against no batching and against the forward pass's ceiling."""
    print("| layout | batching calls/s | none calls/s | gain | rows per pass | "
          "ceiling at that batch | gain / ceiling | server CPU µs per call, batching "
          "(forward) | none (forward) | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for name in args.layouts.split(","):
        layout = LAYOUTS[name]
        on, off, gains, means, ceilings, fractions, errors = [], [], [], [], [], [], 0
        cpu_on, cpu_off, forward_on, forward_off = [], [], [], []
        histogram = {}
        for round_index in range(args.rounds):
            # Alternate which setting goes first.
            order = (256, 1) if round_index % 2 == 0 else (1, 256)
            step = {}
            for setting in order:
                step[setting] = end_to_end(layout, repository, setting, args.seconds,
                                           args.server_flags.split())
                errors += step[setting].errors
            on_step, off_step = step[256], step[1]
            mean = on_step.rows / on_step.passes if on_step.passes else 1.0
            batch = max(1, round(mean))
            times = forward_ns(args.forward_bench, path, sorted({1, batch}),
                               min(args.seconds / 4, 1.0))
            ceiling = times[1] / (times[batch] / batch)
            on.append(on_step.calls_per_s)
            off.append(off_step.calls_per_s)
            gains.append(on_step.calls_per_s / off_step.calls_per_s)
            means.append(mean)
            ceilings.append(ceiling)
            fractions.append(gains[-1] / ceiling)
            cpu_on.append(on_step.cpu_us_per_call)
            cpu_off.append(off_step.cpu_us_per_call)
            forward_on.append(times[batch] / batch / 1e3)
            forward_off.append(times[1] / 1e3)
            for le, n in on_step.buckets:
                histogram[le] = histogram.get(le, 0.0) + n
        print(f"| {name} | {spread(on, 0)} | {spread(off, 0)} | {spread(gains)}x | "
              f"{spread(means, 1)} | {spread(ceilings)}x | {spread(fractions)} | "
              f"{spread(cpu_on, 0)} ({spread(forward_on, 0)}) | "
              f"{spread(cpu_off, 0)} ({spread(forward_off, 0)}) | {errors} |", flush=True)
        previous, shares = 0.0, []
        for le, n in sorted(histogram.items()):
            shares.append(f"<={le:g}: {n - previous:.0f}")
            previous = n
        print(f"  {name}: forward passes by rows, all rounds: {', '.join(shares)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forward-bench",
                        default=os.path.join(ROOT, "build/release/bench/forward_bench"))
    parser.add_argument("--seconds", type=float, default=4, help="per end-to-end step")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--server-flags", default="",
                        help="more seqserve flags for both settings, space-separated "
                             "(e.g. --max_queue_delay_micros=200)")
    parser.add_argument("--against", default="",
                        help="instead of the ceiling table: seqserve flags, space-separated "
                             "(e.g. --sched_batch), compared with and without, alternating, "
                             "with batching and without")
    parser.add_argument("--quick", action="store_true",
                        help="one short round per layout: checks that the script runs")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 0.5, 1

    with tempfile.TemporaryDirectory() as repository:
        export_large_model(repository)
        path = os.path.join(repository, "large", "1", "model.onnx")
        print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        if args.against:
            compare_flags(args, repository)
        else:
            ceiling_table(args, repository, path)
        print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")



if __name__ == "__main__":
    main()
