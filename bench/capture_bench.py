#!/usr/bin/python3
"""Payload capture and drift statistics: what they cost callers.

One seqserve serves the same model under four names, each with its own
config:
  plain     neither;
  captured  `capture { sample_rate: 1.0 files { directory: "captured" } }`
            (JSON Lines files in the model's directory);
  drifting  `drift { baseline_file: "baseline.textproto" }` (a window of
            10000 rows, the default);
  both      capture and drift together.
Two models, each its own family of four: the species sample (3-16-3), where
a call's own work is smallest and capture's share of it largest, and a
784-1024-1024-10 model (random weights, written with onnx.helper; 784
named features, so a captured record is about 20 KB and a drift row 784
bins). `--models species` leaves the large one out.

The baselines come from tools/drift_baseline.py over a CSV of rows drawn
uniformly from [0, 4), the range `seqclient bench` draws its row from,
each row's predicted class from a short-lived seqserve serving the plain
model. `seqclient bench` sends the same row in every call, so the window's
PSIs rise above the threshold and the log says so once per feature (the
server's log goes to a file; its drift lines are counted at the end).

`seqclient bench` (gRPC Classify, one row per call) alternates the four
names over --rounds rounds at --concurrency, rotating which goes first,
after a short unmeasured warm-up of each; each ratio to plain is the median
and (min-max) of the rounds' own ratios. After each side the script waits
until no rows are queued and the capture counters have stopped moving for
100 ms, so the capture writer's backlog does not run into the next side.
The server's CPU per call (user plus system, from /proc, over the load
generator's run) is reported beside.

At the end, per captured model: calls answered (seqserve_requests_total),
records written (seqserve_capture_records_total), dropped
(seqserve_capture_dropped_total), write errors, and the lines counted in
its files (the first and last line of each file parsed as JSON). The
files' size limit is raised (max_total_bytes) so that none is removed
during the run and the count can be checked.

Needs the release build and Debian's python3-grpcio, python3-onnx and
python3-numpy; run with /usr/bin/python3:
  /usr/bin/python3 bench/capture_bench.py [--seconds 2 --rounds 5 --concurrency 64]
"""
import argparse
import csv
import glob
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serving_bench  # noqa: E402
from serving_bench import ROOT, free_port, health_serving, spread  # noqa: E402

SIDES = ("plain", "captured", "drifting", "both")
CAPTURE = ('capture { sample_rate: 1.0 files { directory: "captured" '
           'max_total_bytes: 68719476736 } }\n')
DRIFT = 'drift { baseline_file: "baseline.textproto" }\n'
LARGE_WIDTHS = (784, 1024, 1024, 10)
TRAINING_ROWS = {"species": 2000, "large": 1000}


def write_large_onnx(path, seed=0):
    """784-1024-1024-10 with ReLUs and a softmax, nn.Linear's default init,
    as torch.onnx.export writes it at opset 13 (Gemm with transB)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    nodes, initializers, previous = [], [], "features"
    for i, (inputs, outputs) in enumerate(zip(LARGE_WIDTHS, LARGE_WIDTHS[1:])):
        bound = 1.0 / np.sqrt(inputs)
        weight = rng.uniform(-bound, bound, (outputs, inputs)).astype(np.float32)
        bias = rng.uniform(-bound, bound, outputs).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, f"w{i}"),
                         numpy_helper.from_array(bias, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [f"gemm{i}"],
                                      alpha=1.0, beta=1.0, transB=1))
        previous = f"gemm{i}"
        if i < len(LARGE_WIDTHS) - 2:
            nodes.append(helper.make_node("Relu", [previous], [f"relu{i}"]))
            previous = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [previous], ["scores"], axis=1))
    graph = helper.make_graph(
        nodes, "large",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", LARGE_WIDTHS[0]])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", LARGE_WIDTHS[-1]])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, path)


def base_config(family):
    """The family's config without capture or drift."""
    if family == "species":
        with open(os.path.join(ROOT, "models/species/config.textproto")) as config:
            return config.read()
    names = ", ".join(f'"f{i}"' for i in range(LARGE_WIDTHS[0]))
    labels = ", ".join(f'"c{i}"' for i in range(LARGE_WIDTHS[-1]))
    return (f'description: "784-1024-1024-10, random weights"\nlabels: [{labels}]\n'
            f"feature_names: [{names}]\n")


def feature_names(family):
    if family == "species":
        return ["limbs", "lays_eggs", "has_hair"]
    return [f"f{i}" for i in range(LARGE_WIDTHS[0])]


def make_model(repository, name, model_file, config):
    directory = os.path.join(repository, name)
    os.makedirs(os.path.join(directory, "1"))
    shutil.copy(model_file, os.path.join(directory, "1", os.path.basename(model_file)))
    with open(os.path.join(directory, "config.textproto"), "w") as out:
        out.write(config)
    return directory


def start(binary, repository, log, timeout=120):
    port, http_port = free_port(), free_port()
    process = subprocess.Popen([binary, f"--port={port}", "--host=127.0.0.1",
                                f"--http_port={http_port}", f"--model_repository={repository}",
                                "--poll_seconds=0", "--log_level=warn"],
                               stdout=log, stderr=subprocess.STDOUT)
    started = time.perf_counter()
    while not health_serving(port):
        if process.poll() is not None or time.perf_counter() - started > timeout:
            process.kill()
            sys.exit(f"seqserve did not start (log: {log.name})")
        time.sleep(0.01)
    return process, port, http_port


def stop(process):
    process.terminate()
    process.wait()


def label_rows(seqclient, port, model, names, rows, chunk=250):
    """Each row's predicted class index from the server."""
    predicted = []
    for first in range(0, len(rows), chunk):
        text = "\n".join([",".join(names)] + [",".join(f"{v:.6g}" for v in row)
                                              for row in rows[first:first + chunk]]) + "\n"
        out = subprocess.run([seqclient, f"--target=127.0.0.1:{port}", "classify",
                              f"--model={model}", "--input=-", "--format=csv"], input=text,
                             check=True, capture_output=True, text=True).stdout
        predicted += [int(row["predicted_index"]) for row in csv.DictReader(io.StringIO(out))]
    if len(predicted) != len(rows):
        sys.exit(f"labelled {len(predicted)} of {len(rows)} rows")
    return predicted


def make_repository(work, families, seqserve, seqclient):
    """The four names per family; the baselines from rows labelled by a
    short-lived server on the plain models."""
    import random
    repository = os.path.join(work, "models")
    labelling = os.path.join(work, "labelling")
    files = {}
    for family in families:
        if family == "species":
            files[family] = os.path.join(ROOT, "models/species/1/model.onnx")
        else:
            files[family] = os.path.join(work, "model.onnx")
            write_large_onnx(files[family])
        make_model(labelling, family, files[family], base_config(family))
    with open(os.path.join(work, "labelling.log"), "w") as log:
        process, port, _ = start(seqserve, labelling, log)
        try:
            generator = random.Random(1)
            training = {}
            for family in families:
                names = feature_names(family)
                rows = [[generator.uniform(0.0, 4.0) for _ in names]
                        for _ in range(TRAINING_ROWS[family])]
                training[family] = (names, rows,
                                    label_rows(seqclient, port, family, names, rows))
        finally:
            stop(process)
    for family in families:
        names, rows, predicted = training[family]
        table = os.path.join(work, f"{family}-training.csv")
        with open(table, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(names + ["predicted"])
            for row, label in zip(rows, predicted):
                writer.writerow([f"{v:.6g}" for v in row] + [label])
        for side in SIDES:
            config = base_config(family)
            if side in ("captured", "both"):
                config += CAPTURE
            if side in ("drifting", "both"):
                config += DRIFT
            directory = make_model(repository, f"{family}_{side}", files[family], config)
            if side in ("drifting", "both"):
                with open(os.path.join(directory, "baseline.textproto"), "w") as out:
                    subprocess.run([sys.executable, os.path.join(ROOT, "tools/drift_baseline.py"),
                                    "--config", os.path.join(directory, "config.textproto"),
                                    "--csv", table, "--bins", "10",
                                    "--class-column", "predicted"], stdout=out, check=True)
    return repository


def metrics(http_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def total(text, prefix):
    """The sum of every series whose line starts with `prefix`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


def settle(http_port, timeout=60):
    """Waits until no rows are queued and the capture counters (written,
    dropped) have not moved for 100 ms: the writer has caught up."""
    started = time.perf_counter()
    ended, steady_since = None, time.perf_counter()
    while True:
        text = metrics(http_port)
        now_ended = (total(text, "seqserve_capture_records_total{")
                     + total(text, "seqserve_capture_dropped_total{"))
        if now_ended != ended:
            ended, steady_since = now_ended, time.perf_counter()
        if (total(text, "seqserve_queued_rows{") == 0
                and time.perf_counter() - steady_since >= 0.1):
            return
        if time.perf_counter() - started > timeout:
            sys.exit(f"work still running after {timeout} s")
        time.sleep(0.02)


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(seqclient, port, model, concurrency, seconds, pid):
    before = cpu_seconds(pid)
    out = subprocess.run([seqclient, f"--target=127.0.0.1:{port}", "bench", "--csv",
                          f"--model={model}", f"--concurrency={concurrency}",
                          f"--duration_seconds={seconds}"],
                         check=True, capture_output=True, text=True).stdout
    result = next(csv.DictReader(io.StringIO(out)))
    result["cpu_us_per_call"] = ((cpu_seconds(pid) - before) * 1e6
                                 / max(1, int(result["requests"])))
    return result


def count_captured(directory):
    """Lines in a model's capture files, their bytes, and the files; the
    first and last line of each parsed as JSON."""
    lines = size = 0
    paths = sorted(glob.glob(os.path.join(directory, "*.jsonl")))
    for path in paths:
        first = last = None
        with open(path, "rb") as captured:
            for line in captured:
                lines += 1
                size += len(line)
                if first is None:
                    first = line
                last = line
        for line in (first, last):
            if line is not None:
                json.loads(line)
    return lines, size, len(paths)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2, help="per side and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds per side, unmeasured")
    parser.add_argument("--models", default="species,large", help="species and/or large")
    parser.add_argument("--seqserve", default=serving_bench.SEQSERVE)
    parser.add_argument("--seqclient", default=serving_bench.SEQCLIENT)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    families = [family for family in args.models.split(",") if family]
    for family in families:
        if family not in TRAINING_ROWS:
            parser.error(f"unknown model '{family}'")
    work = tempfile.mkdtemp(prefix="capture_bench.")
    process = None
    try:
        repository = make_repository(work, families, args.seqserve, args.seqclient)
        log = open(os.path.join(work, "seqserve.log"), "w")
        process, port, http_port = start(args.seqserve, repository, log)
        print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print(f"concurrency {args.concurrency}, 1 row per call, {args.rounds} rounds of "
              f"{args.seconds:g} s per side; ratios to plain: median (min-max) over the rounds")
        print("| model | side | calls/s | p50 us | p99 us | calls/s / plain | p99 / plain | "
              "p50 / plain | server CPU us/call | CPU / plain | errors |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
        for family in families:
            for side in SIDES:
                bench(args.seqclient, port, f"{family}_{side}", args.concurrency, args.warmup,
                      process.pid)
                settle(http_port)
            runs = {side: [] for side in SIDES}
            for round_index in range(args.rounds):
                shift = round_index % len(SIDES)
                for side in SIDES[shift:] + SIDES[:shift]:
                    runs[side].append(bench(args.seqclient, port, f"{family}_{side}",
                                            args.concurrency, args.seconds, process.pid))
                    settle(http_port)
            for side in SIDES:
                def values(key, of=side):
                    return [float(run[key]) for run in runs[of]]
                ratio = {key: [s / p for s, p in zip(values(key), values(key, "plain"))]
                         for key in ("requests_per_s", "p99_us", "p50_us", "cpu_us_per_call")}
                errors = sum(int(run["errors"]) for run in runs[side])
                print(f"| {family} | {side} | {statistics.median(values('requests_per_s')):.0f} | "
                      f"{statistics.median(values('p50_us')):.0f} | "
                      f"{statistics.median(values('p99_us')):.0f} | "
                      + ("- | - | - | " if side == "plain" else
                         f"{spread(ratio['requests_per_s'])} | {spread(ratio['p99_us'])} | "
                         f"{spread(ratio['p50_us'])} | ")
                      + f"{statistics.median(values('cpu_us_per_call')):.1f} | "
                      + ("- |" if side == "plain" else f"{spread(ratio['cpu_us_per_call'])} |")
                      + f" {errors} |", flush=True)
        text = metrics(http_port)
        print("| model | calls answered | records written | dropped | write errors | "
              "lines in files | files | MB |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for family in families:
            for side in ("captured", "both"):
                model = f"{family}_{side}"
                label = f'model="{model}"'
                answered = total(text, "seqserve_requests_total{protocol=\"grpc\","
                                 f"method=\"Classify\",{label},")
                written = total(text, f"seqserve_capture_records_total{{{label}")
                dropped = total(text, f"seqserve_capture_dropped_total{{{label}")
                failed = total(text, f"seqserve_capture_errors_total{{{label}")
                lines, size, count = count_captured(os.path.join(repository, model, "captured"))
                print(f"| {model} | {answered:.0f} | {written:.0f} | {dropped:.0f} | "
                      f"{failed:.0f} | {lines} | {count} | {size / 1e6:.1f} |")
        log.flush()
        with open(log.name) as logged:
            drift_lines = [line for line in logged if "drift:" in line]
        for family in families:
            for side in ("drifting", "both"):
                model = f"{family}_{side}"
                window = total(text, f'seqserve_drift_window_rows{{model="{model}"')
                warned = sum(f"model {model} version" in line for line in drift_lines)
                print(f"{model}: {warned} drift lines in the log, window rows {window:.0f}")
    finally:
        if process is not None:
            stop(process)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
