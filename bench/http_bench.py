#!/usr/bin/python3
"""REST against gRPC, and metrics on against off, measured in one run.

1. Classify on the species sample (3-16-3), one row per call: REST
   (POST /v1/models/species:classify, JSON) driven by wrk on keep-alive
   connections, against gRPC driven by `seqclient bench`, on the same
   server, alternating, at concurrency 1 and 64.
2. gRPC Classify on a server with metrics on against one with --metrics=false,
   alternating, at concurrency 1 and 64.

Every pair is measured --rounds times; the tables give the median ratio and
its range. Needs the release build, Debian's wrk and python3-grpcio (the
servers' start waits for their gRPC health check):
  /usr/bin/python3 bench/http_bench.py [--seconds 3] [--rounds 3]
"""
import argparse
import csv
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import ROOT, SEQCLIENT, free_port, spread  # noqa: E402
from serving_bench import start_seqserve as start_on  # noqa: E402

BODY = '{"features": [4, 0, 1], "rows": 1}'


def start_seqserve(*flags):
    """seqserve on the samples, with an HTTP port: (process, port, http_port)."""
    http_port = free_port()
    process, port, _ = start_on(os.path.join(ROOT, "models"), f"--http_port={http_port}",
                                *flags)
    return process, port, http_port


def grpc_rate(port, concurrency, seconds):
    out = subprocess.run([SEQCLIENT, f"--target=127.0.0.1:{port}", "bench", "--csv",
                          "--model=species", f"--concurrency={concurrency}",
                          f"--duration_seconds={seconds}"],
                         check=True, capture_output=True, text=True).stdout
    row = next(csv.DictReader(io.StringIO(out)))
    if int(row["errors"]):
        sys.exit(f"gRPC errors: {row}")
    return float(row["requests_per_s"])


def rest_rate(http_port, concurrency, seconds, script):
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", script,
                          f"http://127.0.0.1:{http_port}/v1/models/species:classify"],
                         check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        sys.exit(f"REST errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n'
                     f"wrk.body = '{BODY}'\n"
                     'wrk.headers["Content-Type"] = "application/json"\n')

    server, port, http_port = start_seqserve()
    try:
        plain, plain_port, _ = start_seqserve("--metrics=false")
    except SystemExit:
        server.terminate()
        raise
    rest = {1: [], 64: []}
    metrics = {1: [], 64: []}
    rates = {}
    try:
        for _ in range(args.rounds):
            for level in (1, 64):
                g = grpc_rate(port, level, args.seconds)
                r = rest_rate(http_port, level, args.seconds, script.name)
                off = grpc_rate(plain_port, level, args.seconds)
                rest[level].append(r / g)
                metrics[level].append(g / off)
                rates.setdefault(level, []).append((g, r, off))
    finally:
        for process in (server, plain):
            process.terminate()
            process.wait()
        os.unlink(script.name)

    print(f"{args.rounds} rounds of {args.seconds} s per side, alternating\n")
    print("| concurrency | gRPC calls/s (median) | REST calls/s (median) | REST / gRPC | "
          "metrics off calls/s (median) | metrics on / off |")
    print("| --- | --- | --- | --- | --- | --- |")
    for level in (1, 64):
        g = statistics.median(x[0] for x in rates[level])
        r = statistics.median(x[1] for x in rates[level])
        off = statistics.median(x[2] for x in rates[level])
        print(f"| {level} | {g:.0f} | {r:.0f} | {spread(rest[level])} | {off:.0f} | "
              f"{spread(metrics[level])} |")


if __name__ == "__main__":
    main()
