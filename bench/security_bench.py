#!/usr/bin/python3
"""Classify over TLS against plaintext, and with bearer tokens against without.

Four seqserve processes on the samples, one per configuration (plaintext,
TLS, plaintext + tokens, TLS + tokens), all running at once; `seqclient
bench` loads them in turn, round after round, at each concurrency level, so
drift on a shared machine hits every configuration alike. The figure per
configuration and level is the median over the rounds. Certificates
(EC P-256) come from the openssl command.
  /usr/bin/python3 bench/security_bench.py [--seconds 3] [--rounds 3]
"""
import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import ROOT, SEQCLIENT, SEQSERVE, free_port  # noqa: E402

TOKEN = "bench-token-0123456789abcdef0123456789abcdef"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(directory):
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr = os.path.join(directory, "server.key"), os.path.join(directory, "server.csr")
    cert, ext = os.path.join(directory, "server.pem"), os.path.join(directory, "san.ext")
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-days", "2", "-subj", "/CN=bench ca",
            "-keyout", ca_key, "-out", ca)
    openssl("req", *curve, "-subj", "/CN=localhost", "-keyout", key, "-out", csr)
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", cert)
    return ca, cert, key


def client_flags(port, tls, ca):
    return [f"--target=127.0.0.1:{port}"] + ([f"--tls_ca_file={ca}"] if tls else [])


def start(tls, tokens, ca, cert, key, tokens_file):
    port = free_port()
    flags = [f"--port={port}", "--host=127.0.0.1", "--http_port=-1",
             f"--model_repository={os.path.join(ROOT, 'models')}", "--poll_seconds=0",
             "--log_level=warn"]
    if tls:
        flags += [f"--tls_cert_file={cert}", f"--tls_key_file={key}"]
    if tokens:
        flags += [f"--auth_tokens_file={tokens_file}"]
    process = subprocess.Popen([SEQSERVE, *flags])
    # Health over the server's own transport (TLS or not), so not
    # serving_bench's plaintext probe.
    deadline = time.perf_counter() + 60
    while subprocess.run([SEQCLIENT, *client_flags(port, tls, ca), "--deadline_ms=500",
                          "health"], capture_output=True).returncode != 0:
        if process.poll() is not None:
            sys.exit("seqserve exited")
        if time.perf_counter() > deadline:
            process.kill()
            sys.exit("seqserve was not SERVING within 60 s")
        time.sleep(0.05)
    return process, port


def bench(port, tls, tokens, ca, concurrency, seconds):
    environment = dict(os.environ, SEQSERVE_TOKEN=TOKEN if tokens else "")
    out = subprocess.run([SEQCLIENT, *client_flags(port, tls, ca), "bench", "--csv",
                          "--model=species", f"--concurrency={concurrency}",
                          f"--duration_seconds={seconds}"],
                         check=True, capture_output=True, text=True, env=environment).stdout
    return next(csv.DictReader(io.StringIO(out)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", default="1,64")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    configurations = [("plaintext", False, False), ("TLS", True, False),
                      ("plaintext + tokens", False, True), ("TLS + tokens", True, True)]
    with tempfile.TemporaryDirectory() as directory:
        ca, cert, key = make_certificates(directory)
        tokens_file = os.path.join(directory, "tokens.txt")
        with open(tokens_file, "w") as f:
            # A realistic file: the matching token is the last of 20.
            f.writelines(f"caller{i}:other-token-{i:040d}\n" for i in range(19))
            f.write(f"bench:{TOKEN}\n")
        servers = {}
        results = {(name, level): [] for name, _, _ in configurations for level in levels}
        try:
            for name, tls, tokens in configurations:
                servers[name] = start(tls, tokens, ca, cert, key, tokens_file)
            for _ in range(args.rounds):
                for level in levels:
                    for name, tls, tokens in configurations:
                        row = bench(servers[name][1], tls, tokens, ca, level, args.seconds)
                        if int(row["errors"]):
                            sys.exit(f"{name} at {level}: {row['errors']} errors")
                        results[(name, level)].append(row)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait()

    def median(name, level, field):
        return statistics.median(float(r[field]) for r in results[(name, level)])

    print(f"Classify species (3-16-3), 1 row per call, {args.rounds} rounds of "
          f"{args.seconds:g} s, medians")
    print("| concurrency | configuration | calls/s | rounds' range | p50 us | p99 us | "
          "vs plaintext |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for level in levels:
        base = median("plaintext", level, "requests_per_s")
        for name, _, _ in configurations:
            rate = median(name, level, "requests_per_s")
            rates = [float(r["requests_per_s"]) for r in results[(name, level)]]
            print(f"| {level} | {name} | {rate:.0f} | {min(rates):.0f}-{max(rates):.0f} | "
                  f"{median(name, level, 'p50_us'):.0f} | {median(name, level, 'p99_us'):.0f} | "
                  f"{rate / base:.2f} |")
    print("\ntokens / no tokens, same transport:")
    for level in levels:
        for transport in ("plaintext", "TLS"):
            with_tokens = median(f"{transport} + tokens", level, "requests_per_s")
            without = median(transport, level, "requests_per_s")
            print(f"  concurrency {level}, {transport}: {with_tokens / without:.2f}")


if __name__ == "__main__":
    main()
