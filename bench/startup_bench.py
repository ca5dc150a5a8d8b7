#!/usr/bin/env python3
"""Start-up: time from process start to SERVING and peak resident memory.

Starts seqserve on a repository (the samples by default) and waits for its
own "health SERVING" log line, which it prints once every model is loaded
and the gRPC port answers; nothing polls the port meanwhile, so the
measurement does not compete with the start for the CPU. The peak resident
memory (VmHWM) is read at that moment. With several --binary, the builds
alternate round by round and each is reported with its median and range.

  bench/startup_bench.py [--rounds 9] [--binary A --binary B] [--repository DIR]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import ROOT, SEQSERVE, peak_rss_mb  # noqa: E402


def start_once(binary, repository):
    """(seconds to SERVING, peak resident MB) of one start, then stops it."""
    started = time.perf_counter()
    process = subprocess.Popen([binary, "--port=0", "--http_port=-1", "--host=127.0.0.1",
                                f"--model_repository={repository}", "--poll_seconds=0",
                                "--log_level=info", "--drain_seconds=0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in process.stdout:  # the log, one flushed line per event
            if "health SERVING" in line:
                return time.perf_counter() - started, peak_rss_mb(process.pid)
        sys.exit(f"{binary} exited before SERVING (code {process.wait()})")
    finally:
        process.terminate()
        process.wait()


def summary(values, unit):
    return (f"{statistics.median(values):.1f} {unit} "
            f"({min(values):.1f}-{max(values):.1f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", action="append",
                        help="a seqserve binary (repeat to compare builds; default: the release build)")
    parser.add_argument("--repository", default=os.path.join(ROOT, "models"))
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    binaries = args.binary or [SEQSERVE]
    results = {binary: ([], []) for binary in binaries}
    for _ in range(args.rounds):
        for binary in binaries:
            seconds, rss = start_once(binary, args.repository)
            results[binary][0].append(seconds * 1000)
            results[binary][1].append(rss)
    print(f"load average {os.getloadavg()[0]:.2f}, {args.rounds} rounds, builds alternating")
    print("| build | SERVING ms, median (range) | peak resident MB, median (range) |")
    print("| --- | --- | --- |")
    for binary, (ms, rss) in results.items():
        print(f"| {binary} | {summary(ms, 'ms')} | {summary(rss, 'MB')} |")


if __name__ == "__main__":
    main()
