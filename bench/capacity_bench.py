#!/usr/bin/python3
"""Capacity: one replica's throughput per model size and protocol, and how
throughput through HAProxy changes with 1, 2 and 3 replicas.

1. One replica, called directly: the species sample (3-16-3, 115
   parameters) and 784-1024-1024-10 (1.86 M parameters, exported the way
   bench/batching_bench.py does), one row per call, at --concurrency:
   gRPC Classify and the Open Inference Protocol's ModelInfer over gRPC
   (`seqclient bench`), REST :classify (wrk on keep-alive connections).
2. Through HAProxy with deploy/haproxy/haproxy.cfg as shipped: 1, 2 and 3
   replicas of the species sample in its backends (the other slots point at
   a closed port, which its health check marks DOWN), gRPC and REST at
   --concurrency.

Every figure is the median over --rounds rounds of --seconds each, the
sides of a round alternating (rotated each round); p99 is the median of the
rounds' p99s. Load generator, proxy and replicas share this machine's cores:
read part 2 for its shape, not as records. Needs the release build,
Debian's haproxy, wrk, python3-torch and python3-onnx; run with
/usr/bin/python3:
  /usr/bin/python3 bench/capacity_bench.py [--seconds 2] [--rounds 3]
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
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batching_bench import cpu_seconds, export_large_model  # noqa: E402
from serving_bench import ROOT, SEQCLIENT, free_port, start_seqserve  # noqa: E402

HAPROXY_CONFIG = os.path.join(ROOT, "deploy/haproxy/haproxy.cfg")
WIDTHS = {"species": 3, "large": 784}


def grpc_bench(target, model, concurrency, seconds, protocol="v1"):
    out = subprocess.run([SEQCLIENT, f"--target={target}", "bench", "--csv", f"--model={model}",
                          f"--protocol={protocol}", f"--concurrency={concurrency}",
                          f"--duration_seconds={seconds}"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"seqclient bench against {target} failed:\n{out.stderr}")
    row = next(csv.DictReader(io.StringIO(out.stdout)))
    if int(row["errors"]):
        sys.exit(f"gRPC errors: {row}")
    return float(row["requests_per_s"]), float(row["p99_us"])


def rest_bench(port, model, concurrency, seconds, work):
    script = os.path.join(work, f"{model}.lua")
    if not os.path.exists(script):
        features = ",".join(["0.5"] * WIDTHS[model])
        with open(script, "w") as lua:
            lua.write('wrk.method = "POST"\n'
                      f'wrk.body = \'{{"features": [{features}], "rows": 1}}\'\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
                          "-s", script, f"http://{port}/v1/models/{model}:classify"],
                         check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        sys.exit(f"REST errors:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    value, unit = re.search(r"\s99%\s+([0-9.]+)(us|ms|s)", out).groups()
    return rate, float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def median_table(runs):
    """{side: [(rate, p99), ...]} -> {side: (median rate, median p99)}."""
    return {side: (statistics.median(r for r, _ in values),
                   statistics.median(p for _, p in values)) for side, values in runs.items()}


def single_replica(args, repository, work):
    print(f"### One replica, called directly (concurrency {args.concurrency})\n")
    process, port, _ = start_seqserve(repository, f"--http_port={free_port()}")
    http_port = None
    try:
        # The HTTP port from the process's command line.
        http_port = int(next(a for a in process.args if a.startswith("--http_port="))
                        .split("=")[1])
        sides = [(model, protocol) for model in WIDTHS for protocol in ("grpc", "v2", "rest")]
        runs = {side: [] for side in sides}
        cpu = {side: [] for side in sides}
        for round_index in range(args.rounds):
            order = sides[round_index % len(sides):] + sides[:round_index % len(sides)]
            for model, protocol in order:
                cpu_before, started = cpu_seconds(process.pid), time.perf_counter()
                if protocol == "rest":
                    result = rest_bench(f"127.0.0.1:{http_port}", model, args.concurrency,
                                        args.seconds, work)
                else:
                    result = grpc_bench(f"127.0.0.1:{port}", model, args.concurrency,
                                        args.seconds, "v2" if protocol == "v2" else "v1")
                # The server's CPU per call: its CPU time over the calls the
                # rate and the side's wall time give (the load generator's
                # start and warm-up fall in the window: a slight overstatement).
                calls = result[0] * (time.perf_counter() - started)
                runs[(model, protocol)].append(result)
                cpu[(model, protocol)].append(
                    (cpu_seconds(process.pid) - cpu_before) / calls * 1e6)
        print("| model | protocol | calls/s | p99 us | server CPU us per call | "
              "calls/s per server core |")
        print("| --- | --- | --- | --- | --- | --- |")
        for (model, protocol), (rate, p99) in median_table(runs).items():
            name = {"species": "species 3-16-3", "large": "784-1024-1024-10"}[model]
            label = {"grpc": "gRPC Classify", "v2": "gRPC ModelInfer (v2)",
                     "rest": "REST :classify"}[protocol]
            per_call = statistics.median(cpu[(model, protocol)])
            print(f"| {name} | {label} | {rate:.0f} | {p99:.0f} | {per_call:.1f} | "
                  f"{1e6 / per_call:.0f} |", flush=True)
    finally:
        process.terminate()
        process.wait()
    print()


def replica_states(admin):
    with urllib.request.urlopen(f"http://{admin}/stats;csv;norefresh", timeout=5) as answer:
        rows = list(csv.reader(io.StringIO(answer.read().decode().lstrip("# "))))
    header = rows[0]
    return [row[header.index("status")] for row in rows[1:]
            if row and row[0] == "seqserve_http" and row[1].startswith("seqserve-")]


def start_proxy(replicas, count, work):
    """HAProxy with `count` of the replicas in its backends; waits until
    exactly that many are UP."""
    closed = free_port()
    environment = dict(os.environ)
    ports = {name: free_port() for name in ("grpc", "http", "admin")}
    for key, port in ports.items():
        environment[f"SEQSERVE_PROXY_{key.upper()}"] = f"127.0.0.1:{port}"
    for i in range(3):
        grpc_port, http_port = replicas[i][1:] if i < count else (closed, closed)
        environment[f"SEQSERVE_{i + 1}_GRPC"] = f"127.0.0.1:{grpc_port}"
        environment[f"SEQSERVE_{i + 1}_HTTP"] = f"127.0.0.1:{http_port}"
    log = open(os.path.join(work, "haproxy.log"), "a")
    proxy = subprocess.Popen(["haproxy", "-db", "-f", HAPROXY_CONFIG], env=environment,
                             stdout=log, stderr=log)
    admin = f"127.0.0.1:{ports['admin']}"
    started = time.perf_counter()
    while True:
        try:
            states = replica_states(admin)
            if states.count("UP") == count and states.count("DOWN") == 3 - count:
                return proxy, ports
        except OSError:
            pass
        if time.perf_counter() - started > 30:
            proxy.kill()
            sys.exit(f"HAProxy did not see {count} replicas UP within 30 s")
        time.sleep(0.1)


def through_proxy(args, repository, work):
    print(f"### Through HAProxy: species, concurrency {args.concurrency}\n")
    replicas = []
    try:
        for _ in range(3):
            http_port = free_port()
            process, port, _ = start_seqserve(repository, f"--http_port={http_port}")
            replicas.append((process, port, http_port))
        counts = [1, 2, 3]
        runs = {(count, protocol): [] for count in counts for protocol in ("grpc", "rest")}
        cpu = {side: [] for side in runs}
        for round_index in range(args.rounds):
            for count in counts[round_index % 3:] + counts[:round_index % 3]:
                proxy, ports = start_proxy(replicas, count, work)
                try:
                    for protocol in ("grpc", "rest"):
                        pids = [proxy.pid] + [process.pid for process, _, _ in replicas]
                        before, started = [cpu_seconds(pid) for pid in pids], time.perf_counter()
                        if protocol == "grpc":
                            result = grpc_bench(f"127.0.0.1:{ports['grpc']}", "species",
                                                args.concurrency, args.seconds)
                        else:
                            result = rest_bench(f"127.0.0.1:{ports['http']}", "species",
                                                args.concurrency, args.seconds, work)
                        calls = result[0] * (time.perf_counter() - started)
                        used = [cpu_seconds(pid) - b for pid, b in zip(pids, before)]
                        runs[(count, protocol)].append(result)
                        cpu[(count, protocol)].append(
                            (used[0] / calls * 1e6, sum(used[1:]) / calls * 1e6))
                finally:
                    proxy.terminate()
                    proxy.wait()
        table = median_table(runs)
        print("| replicas | protocol | calls/s | p99 us | proxy CPU us per call | "
              "replicas' CPU us per call |")
        print("| --- | --- | --- | --- | --- | --- |")
        for count in counts:
            for protocol in ("grpc", "rest"):
                rate, p99 = table[(count, protocol)]
                proxy_us = statistics.median(c[0] for c in cpu[(count, protocol)])
                replica_us = statistics.median(c[1] for c in cpu[(count, protocol)])
                print(f"| {count} | {'gRPC Classify' if protocol == 'grpc' else 'REST :classify'} "
                      f"| {rate:.0f} | {p99:.0f} | {proxy_us:.1f} | {replica_us:.1f} |",
                      flush=True)
    finally:
        for process, _, _ in replicas:
            process.terminate()
            process.wait()
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="capacity_bench.")
    repository = os.path.join(work, "models")
    subprocess.run(["cp", "-r", os.path.join(ROOT, "models"), repository], check=True)
    export_large_model(repository)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs\n")
    single_replica(args, repository, work)
    through_proxy(args, repository, work)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
