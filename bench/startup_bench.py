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
import selectors
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import ROOT, SEQSERVE, peak_rss_mb, spread  # noqa: E402


def start_once(binary, repository, timeout=30):
    """(seconds to SERVING, peak resident MB) of one start, then stops it."""
    started = time.perf_counter()
    process = subprocess.Popen([binary, "--port=0", "--http_port=-1", "--host=127.0.0.1",
                                f"--model_repository={repository}", "--poll_seconds=0",
                                "--log_level=info", "--drain_seconds=0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = []
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            pending = b""
            # The log, one flushed line per event; a repository that never
            # gets to SERVING ends the wait at the deadline.
            while time.perf_counter() - started < timeout:
                if not selector.select(timeout=0.5):
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                decoded = [line.decode(errors="replace") for line in lines]
                log += decoded
                if any("health SERVING" in line for line in decoded):
                    return time.perf_counter() - started, peak_rss_mb(process.pid)
        sys.exit(f"{binary} did not get to SERVING within {timeout} s; its log ended:\n"
                 + "\n".join(log[-10:]))
    finally:
        process.kill()
        process.wait()




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
        print(f"| {binary} | {spread(ms, 1)} ms | {spread(rss, 1)} MB |")


if __name__ == "__main__":
    main()
