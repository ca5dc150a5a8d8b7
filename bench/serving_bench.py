#!/usr/bin/python3
"""End-to-end serving: Classify against gRPC's empty call and a Python server.

On the 3-16-3 species sample, one row per call, per concurrency level:
Classify, the empty grpc.health.v1.Health/Check on the same server (gRPC's
own floor), and the same Classify load against bench/python_server.py
(grpcio + PyTorch). The three sides alternate over --rounds rounds,
rotating which goes first, and each ratio (Classify / Health, seqserve /
Python) is reported as the median and (min-max) over rounds, each from one
round.

Dynamic batching is bench/batching_bench.py; start-up and memory,
bench/startup_bench.py.

Load comes from `seqclient bench` (asynchronous calls, perf_analyzer style).
Needs the release build and Debian's python3-torch, python3-onnx, python3-grpcio:
  /usr/bin/python3 bench/serving_bench.py [--seconds 2 --rounds 5]
"""
import argparse
import csv
import io
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build/release")
SEQSERVE = os.path.join(BUILD, "cmd/seqserve")
SEQCLIENT = os.path.join(BUILD, "cmd/seqclient")
STUBS = os.path.join(BUILD, "examples/python/stubs")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_serving(port):
    """True when grpc.health.v1.Health/Check answers SERVING (raw bytes)."""
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            return check(b"", timeout=1) == b"\x08\x01"
        except grpc.RpcError:
            return False


def start_seqserve(repository, *flags, wrapper=(), timeout=60):
    """Starts seqserve (under `wrapper`, such as taskset, if given) and waits
    until its health check says SERVING."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([*wrapper, SEQSERVE, f"--port={port}", "--host=127.0.0.1",
                                f"--model_repository={repository}", "--poll_seconds=0",
                                "--log_level=warn", *flags])
    while not health_serving(port):
        if process.poll() is not None:
            sys.exit("seqserve exited")
        if time.perf_counter() - started > timeout:
            process.kill()
            sys.exit(f"seqserve was not SERVING within {timeout} s")
        time.sleep(0.002)
    return process, port, time.perf_counter() - started


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bench(port, concurrency, seconds, *args):
    out = subprocess.run([SEQCLIENT, f"--target=127.0.0.1:{port}", "bench", "--csv",
                          f"--concurrency={concurrency}", f"--duration_seconds={seconds}",
                          *args], check=True, capture_output=True, text=True).stdout
    return next(csv.DictReader(io.StringIO(out)))


def start_python_server(models, timeout=60):
    port = free_port()
    process = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "bench/python_server.py"),
                                f"--port={port}", f"--model_repository={models}",
                                f"--stubs={STUBS}"], stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            sys.exit(f"bench/python_server.py exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit(f"bench/python_server.py did not listen within {timeout} s")


def spread(values, digits=2):
    return (f"{statistics.median(values):.{digits}f} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2, help="per side and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--levels", default="1,2,4,8,16,32,64")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    models = os.path.join(ROOT, "models")

    server, port, _ = start_seqserve(models)
    try:
        python, python_port = start_python_server(models)
    except SystemExit:
        server.terminate()
        raise
    sides = {"health": (port, "--rpc=health"), "classify": (port, "--model=species"),
             "python": (python_port, "--model=species")}
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("Classify species (3-16-3), 1 row per call, against Health/Check and the "
          f"Python server; {args.rounds} rounds of {args.seconds:g} s per side")
    print("| concurrency | Health/Check calls/s | Classify calls/s | Classify / Health | "
          "Health p99 us | Classify p99 us | Python calls/s | seqserve / Python | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    try:
        for level in levels:
            calls = {side: [] for side in sides}
            p99 = {side: [] for side in sides}
            errors = 0
            for round_index in range(args.rounds):
                order = list(sides)
                order = order[round_index % 3:] + order[:round_index % 3]
                for side in order:
                    side_port, flag = sides[side]
                    result = bench(side_port, level, args.seconds, flag)
                    calls[side].append(float(result["requests_per_s"]))
                    p99[side].append(float(result["p99_us"]))
                    errors += int(result["errors"])
            to_health = [c / h for c, h in zip(calls["classify"], calls["health"])]
            to_python = [c / p for c, p in zip(calls["classify"], calls["python"])]
            print(f"| {level} | {statistics.median(calls['health']):.0f} | "
                  f"{statistics.median(calls['classify']):.0f} | {spread(to_health)} | "
                  f"{statistics.median(p99['health']):.0f} | "
                  f"{statistics.median(p99['classify']):.0f} | "
                  f"{statistics.median(calls['python']):.0f} | {spread(to_python, 1)}x | "
                  f"{errors} |", flush=True)
        print(f"seqserve peak resident after the load: {peak_rss_mb(server.pid):.1f} MB")
    finally:
        for process in (server, python):
            process.terminate()
            process.wait()
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
