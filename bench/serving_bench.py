#!/usr/bin/python3
"""End-to-end serving benchmarks, every comparison measured in one run.

1. Classify on the 3-16-3 species sample, batch 1, against the empty
   grpc.health.v1.Health/Check on the same server (gRPC's own floor), per
   concurrency level, alternating the two.
2. The same Classify load against bench/python_server.py (grpcio + PyTorch).
3. A 784-1024-1024-10 model at concurrency 64, batch 1 per request, with
   dynamic batching (--max_batch_rows=256) and without (--max_batch_rows=1).
4. seqserve's peak resident memory with the samples, and time from start to
   SERVING.

Load comes from `seqclient bench` (asynchronous calls, perf_analyzer style).
Needs the release build and Debian's python3-torch, python3-onnx, python3-grpcio:
  /usr/bin/python3 bench/serving_bench.py [--seconds 5]
"""
import argparse
import csv
import io
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build/release")
SEQSERVE = os.path.join(BUILD, "server/seqserve")
SEQCLIENT = os.path.join(BUILD, "client/seqclient")
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


def start_seqserve(repository, *flags, wrapper=()):
    """Starts seqserve (under `wrapper`, such as taskset, if given)."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([*wrapper, SEQSERVE, f"--port={port}", "--host=127.0.0.1",
                                f"--model_repository={repository}", "--poll_seconds=0",
                                "--log_level=warn", *flags])
    while not health_serving(port):
        if process.poll() is not None:
            sys.exit("seqserve exited")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--levels", default="1,2,4,8,16,32,64")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    models = os.path.join(ROOT, "models")

    # 4. start-up time and memory, and 1. Classify against Health/Check.
    server, port, startup = start_seqserve(models)
    print(f"seqserve on the samples: SERVING {startup * 1000:.0f} ms after start, "
          f"{peak_rss_mb(server.pid):.1f} MB peak resident at that point")
    rows = []
    for level in levels:
        health = bench(port, level, args.seconds, "--rpc=health")
        classify = bench(port, level, args.seconds, "--model=species")
        rows.append((level, health, classify))
    print(f"peak resident after the load: {peak_rss_mb(server.pid):.1f} MB")
    server.terminate()
    server.wait()

    # 2. The Python server under the same load.
    python_port = free_port()
    python = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "bench/python_server.py"),
                               f"--port={python_port}", f"--model_repository={models}",
                               f"--stubs={STUBS}"], stdout=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", python_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    python_rows = {level: bench(python_port, level, args.seconds, "--model=species")
                   for level in levels}
    python.terminate()
    python.wait()

    print("\nClassify species (3-16-3), 1 row per call, against Health/Check and the "
          "Python server")
    print("| concurrency | Health/Check calls/s | Classify calls/s | ratio | "
          "Health p99 us | Classify p99 us | Python calls/s | seqserve / Python |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for level, health, classify in rows:
        h, c = float(health["requests_per_s"]), float(classify["requests_per_s"])
        p = float(python_rows[level]["requests_per_s"])
        errors = int(health["errors"]) + int(classify["errors"]) + int(python_rows[level]["errors"])
        print(f"| {level} | {h:.0f} | {c:.0f} | {c / h:.2f} | {float(health['p99_us']):.0f} | "
              f"{float(classify['p99_us']):.0f} | {p:.0f} | {c / p:.1f}x |"
              + (f" errors: {errors}" if errors else ""))

    # 3. Dynamic batching on a large model.
    with tempfile.TemporaryDirectory() as repository:
        export_large_model(repository)
        results = {}
        for label, batch_rows in (("batching", 256), ("no batching", 1)):
            server, port, _ = start_seqserve(repository, f"--max_batch_rows={batch_rows}")
            results[label] = bench(port, 64, args.seconds, "--model=large")
            server.terminate()
            server.wait()
    on, off = results["batching"], results["no batching"]
    print("\n784-1024-1024-10, 1 row per call, concurrency 64")
    print("| dynamic batching | calls/s | p50 us | p99 us | errors |")
    print("| --- | --- | --- | --- | --- |")
    for label, r in results.items():
        print(f"| {label} | {float(r['requests_per_s']):.0f} | {float(r['p50_us']):.0f} | "
              f"{float(r['p99_us']):.0f} | {r['errors']} |")
    print(f"batching / no batching: "
          f"{float(on['requests_per_s']) / float(off['requests_per_s']):.2f}x")


if __name__ == "__main__":
    main()
