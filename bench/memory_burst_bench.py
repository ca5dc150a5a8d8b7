#!/usr/bin/python3
"""Memory after a burst: 200 Classify calls of 15 MB at once, then what the
server keeps resident.

A 784-input model (784 -> 2, so the forward pass costs little and the
messages are what takes memory); 200 gRPC calls of 4,782 rows each (15.0 MB
of features) sent together from 200 threads; the server's resident size
(VmRSS) before the burst, at its peak (VmHWM) and every second for --after
seconds once the last answer came. Each --side is one server setting:
space-separated seqserve flags (--name=value) and environment variables
(NAME=VALUE), "" for the defaults; sides alternate over --rounds rounds, a
fresh server each. Needs the release build and Debian's python3-grpcio;
run with /usr/bin/python3:
  /usr/bin/python3 bench/memory_burst_bench.py [--rounds 3] \
      [--side "" --side --memory_trim_seconds=0 --side "--memory_trim_seconds=0 MALLOC_ARENA_MAX=2"]
"""
import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import SEQSERVE, free_port, health_serving  # noqa: E402

WIDTH, ROWS, CALLS = 784, 4782, 200


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def classify_request(model, rows):
    """seqserve.v1.ClassifyRequest's wire bytes: model (1), features (3,
    packed), rows (4)."""
    features = struct.pack(f"<{rows * WIDTH}f", *([0.5] * (rows * WIDTH)))
    name = model.encode()
    return (b"\x0a" + varint(len(name)) + name + b"\x1a" + varint(len(features)) + features
            + b"\x20" + varint(rows))


def resident_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def write_model(repository):
    directory = os.path.join(repository, "wide", "1")
    os.makedirs(directory)
    weights = ", ".join(["0.001"] * (2 * WIDTH))
    with open(os.path.join(directory, "model.textproto"), "w") as model:
        model.write(f"input_width: {WIDTH}\n"
                    f"layers {{ linear {{ in_features: {WIDTH} out_features: 2 "
                    f"weight: [{weights}] bias: [0, 0] }} }}\n")


def one_side(repository, setting, after, burst):
    environment, flags = dict(os.environ), []
    for token in setting.split():
        if token.startswith("--"):
            flags.append(token)
        else:
            name, value = token.split("=", 1)
            environment[name] = value
    port = free_port()
    server = subprocess.Popen([SEQSERVE, f"--port={port}", "--host=127.0.0.1", "--http_port=-1",
                               f"--model_repository={repository}", "--poll_seconds=0",
                               "--log_level=warn", f"--max_request_rows={ROWS}", *flags],
                              env=environment)
    try:
        while not health_serving(port):
            time.sleep(0.01)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_send_message_length", 32 << 20),
            ("grpc.max_receive_message_length", 32 << 20)])
        classify = channel.unary_unary("/seqserve.v1.Classifier/Classify",
                                       request_serializer=None, response_deserializer=None)
        small = classify_request("wide", 1)
        for _ in range(20):
            classify(small, timeout=30)
        time.sleep(1)
        before = resident_kib(server.pid)
        def call(_):
            try:
                classify(burst, timeout=120)
                return 0
            except grpc.RpcError:  # RESOURCE_EXHAUSTED past the memory quota
                return 1
        with ThreadPoolExecutor(CALLS) as pool:
            failed = sum(pool.map(call, range(CALLS)))
        peak = resident_kib(server.pid, "VmHWM")
        samples = []
        for _ in range(int(after)):
            time.sleep(1)
            samples.append(resident_kib(server.pid))
        channel.close()
        return before, peak, samples, failed
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--after", type=float, default=10)
    parser.add_argument("--side", action="append", default=None)
    args = parser.parse_args()
    settings = args.side or [""]
    work = tempfile.mkdtemp(prefix="memory_burst_bench.")
    try:
        repository = os.path.join(work, "models")
        write_model(repository)
        burst = classify_request("wide", ROWS)
        print(f"{CALLS} calls of {len(burst) / 1e6:.1f} MB at once; resident MB")
        print("| server setting | before | peak | 1 s after | 10 s after | "
              "10 s after / before | refused calls |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        results = {setting: [] for setting in settings}
        for round_index in range(args.rounds):
            order = settings[round_index % len(settings):] + settings[:round_index % len(settings)]
            for setting in order:
                results[setting].append(one_side(repository, setting, args.after, burst))
        for setting, runs in results.items():
            def median(pick):
                return statistics.median(pick(run) for run in runs) / 1024
            ratios = [run[2][-1] / run[0] for run in runs]
            print(f"| {setting or '(defaults)'} | {median(lambda r: r[0]):.0f} | "
                  f"{median(lambda r: r[1]):.0f} | {median(lambda r: r[2][0]):.0f} | "
                  f"{median(lambda r: r[2][-1]):.0f} | {statistics.median(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f}) | {sum(r[3] for r in runs)} |",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
