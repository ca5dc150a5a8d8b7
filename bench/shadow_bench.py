#!/usr/bin/python3
"""Callers' latency with a shadow version at 100%, against none.

Three seqserve processes on copies of the species sample (3-16-3), the
calls all routed to version 1 by `traffic { version: 1 percent: 100 }`:
  none    no shadow;
  shadow  `shadow { version: 2 percent: 100 }`, version 2 the same model;
  slow    the same, version 2 a deliberately slow model of the same widths
          (3-2048-2048-3, about 4.2 M multiply-adds a row).
`seqclient bench` (one row per call) alternates the sides over --rounds
rounds at each concurrency, rotating which goes first; each ratio to
`none` is the median and (min-max) of the rounds' own ratios. After each
side the script waits until its server has no rows queued, so a slow
shadow's backlog does not run into the next side. At the end each
server's seqserve_shadow_* counters say how many copies were compared and
how many dropped.
  /usr/bin/python3 bench/shadow_bench.py [--seconds 2 --rounds 5 --levels 1,16]
"""
import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import ROOT, SEQCLIENT, SEQSERVE, free_port, health_serving  # noqa: E402

SIDES = ("none", "shadow", "slow")


def slow_model(hidden=2048):
    """A text model 3-hidden-hidden-3 with small weights: slow, finite."""
    def linear(inputs, outputs):
        weights = ",".join(["0.001"] * (inputs * outputs))
        bias = ",".join(["0"] * outputs)
        return (f"layers {{ linear {{ in_features: {inputs} out_features: {outputs} "
                f"weight: [{weights}] bias: [{bias}] }} }}\n")
    return ("input_width: 3\n" + linear(3, hidden) + "layers { relu {} }\n" +
            linear(hidden, hidden) + "layers { relu {} }\n" + linear(hidden, 3))


def make_repository(root, side):
    species = os.path.join(ROOT, "models/species")
    model = os.path.join(root, "species")
    os.makedirs(os.path.join(model, "1"))
    os.makedirs(os.path.join(model, "2"))
    shutil.copy(os.path.join(species, "1/model.onnx"), os.path.join(model, "1/model.onnx"))
    if side == "slow":
        with open(os.path.join(model, "2/model.textproto"), "w") as out:
            out.write(slow_model())
    else:
        shutil.copy(os.path.join(species, "1/model.onnx"), os.path.join(model, "2/model.onnx"))
    with open(os.path.join(species, "config.textproto")) as config:
        text = config.read()
    text += "version_policy { all {} }\ntraffic { version: 1 percent: 100 }\n"
    if side != "none":
        text += "shadow { version: 2 percent: 100 }\n"
    with open(os.path.join(model, "config.textproto"), "w") as out:
        out.write(text)


def start(repository, timeout=120):
    port, http_port = free_port(), free_port()
    process = subprocess.Popen([SEQSERVE, f"--port={port}", "--host=127.0.0.1",
                                f"--http_port={http_port}", f"--model_repository={repository}",
                                "--poll_seconds=0", "--log_level=warn"])
    started = time.perf_counter()
    while not health_serving(port):
        if process.poll() is not None or time.perf_counter() - started > timeout:
            process.kill()
            sys.exit("seqserve did not start")
        time.sleep(0.01)
    return process, port, http_port


def metrics(http_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def total(text, prefix):
    """The sum of every series of a family whose line starts with `prefix`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


def settle(http_port, timeout=30):
    """Waits until the server has no rows queued (a shadow's backlog included)
    and its shadow's copies stopped ending for 100 ms (the pass that took the
    last of them has ended), so that no side's work runs into the next side."""
    started = time.perf_counter()
    ended, steady_since = None, time.perf_counter()
    while True:
        text = metrics(http_port)
        now_ended = (total(text, "seqserve_shadow_compared_rows_total{")
                     + total(text, "seqserve_shadow_dropped_total{"))
        if now_ended != ended:
            ended, steady_since = now_ended, time.perf_counter()
        if (total(text, "seqserve_queued_rows{") == 0
                and time.perf_counter() - steady_since >= 0.1):
            return
        if time.perf_counter() - started > timeout:
            sys.exit(f"work still running after {timeout} s")
        time.sleep(0.01)


def bench(port, concurrency, seconds):
    out = subprocess.run([SEQCLIENT, f"--target=127.0.0.1:{port}", "bench", "--csv",
                          "--model=species", f"--concurrency={concurrency}",
                          f"--duration_seconds={seconds}"],
                         check=True, capture_output=True, text=True).stdout
    return next(csv.DictReader(io.StringIO(out)))


def spread(values):
    return (f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2, help="per side and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--levels", default="1,16")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="shadow_bench.")
    servers = {}
    try:
        for side in SIDES:
            make_repository(os.path.join(work, side), side)
            servers[side] = start(os.path.join(work, side))
        print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print(f"species (3-16-3), 1 row per call, {args.rounds} rounds of {args.seconds:g} s "
              "per side; ratios to no shadow: median (min-max) over the rounds")
        print("| concurrency | side | calls/s | p50 us | p99 us | p50 / none | p99 / none | "
              "calls/s / none | errors |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
        for level in [int(level) for level in args.levels.split(",")]:
            runs = {side: [] for side in SIDES}
            for round_index in range(args.rounds):
                order = list(SIDES[round_index % 3:] + SIDES[:round_index % 3])
                for side in order:
                    process, port, http_port = servers[side]
                    runs[side].append(bench(port, level, args.seconds))
                    settle(http_port)
            for side in SIDES:
                def values(key, of=side):
                    return [float(run[key]) for run in runs[of]]
                ratio = {key: [s / n for s, n in zip(values(key), values(key, "none"))]
                         for key in ("p50_us", "p99_us", "requests_per_s")}
                errors = sum(int(run["errors"]) for run in runs[side])
                print(f"| {level} | {side} | {statistics.median(values('requests_per_s')):.0f} | "
                      f"{statistics.median(values('p50_us')):.0f} | "
                      f"{statistics.median(values('p99_us')):.0f} | "
                      + ("- | - | - |" if side == "none" else
                         f"{spread(ratio['p50_us'])} | {spread(ratio['p99_us'])} | "
                         f"{spread(ratio['requests_per_s'])} |")
                      + f" {errors} |", flush=True)
        for side in ("shadow", "slow"):
            text = metrics(servers[side][2])
            compared = total(text, "seqserve_shadow_compared_rows_total{")
            agreed = total(text, "seqserve_shadow_agreed_rows_total{")
            dropped = total(text, "seqserve_shadow_dropped_total{")
            served = total(text, "seqserve_requests_total{")
            print(f"{side}: {served:.0f} calls answered, {compared:.0f} rows compared "
                  f"({agreed:.0f} agreed), {dropped:.0f} copies dropped")
    finally:
        for process, _, _ in servers.values():
            process.terminate()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
