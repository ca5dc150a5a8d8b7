#!/usr/bin/python3
"""seqserve.v1 Classify against the Open Inference Protocol's ModelInfer.

One seqserve on the species sample; `seqclient bench` alternates the two
protocols (v2 with raw tensors, as high-rate v2 clients send them) for
--rounds rounds at each concurrency, so both sides see the same machine
state. Reports calls/s per side and the v2/v1 ratio: median and min-max
over the rounds.
  /usr/bin/python3 bench/protocol_bench.py [--seconds 3] [--rounds 5]
"""
import argparse
import csv
import io
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import ROOT, SEQCLIENT, start_seqserve  # noqa: E402


def bench(port, protocol, concurrency, seconds):
    out = subprocess.run(
        [SEQCLIENT, f"--target=127.0.0.1:{port}", "bench", "--model=species",
         f"--protocol={protocol}", f"--concurrency={concurrency}",
         f"--duration_seconds={seconds}", "--csv"],
        check=True, capture_output=True, text=True).stdout
    row = next(csv.DictReader(io.StringIO(out)))
    if int(row["errors"]) != 0:
        sys.exit(f"{protocol}: {row['errors']} failed calls")
    return float(row["requests_per_s"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", default="1,64")
    args = parser.parse_args()
    server, port, _ = start_seqserve(os.path.join(ROOT, "models"), "--http_port=-1")
    try:
        print(f"load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds of "
              f"{args.seconds} s per side")
        print("| concurrency | v1 Classify calls/s (median) | v2 ModelInfer calls/s (median) "
              "| v2/v1 median | v2/v1 min-max |")
        print("| --- | --- | --- | --- | --- |")
        for level in args.concurrency.split(","):
            v1, v2, ratios = [], [], []
            for round_index in range(args.rounds):
                # Alternate which side goes first.
                order = ["v1", "v2"] if round_index % 2 == 0 else ["v2", "v1"]
                rate = {p: bench(port, p, level, args.seconds) for p in order}
                v1.append(rate["v1"])
                v2.append(rate["v2"])
                ratios.append(rate["v2"] / rate["v1"])
            print(f"| {level} | {statistics.median(v1):.0f} | {statistics.median(v2):.0f} "
                  f"| {statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
