#!/usr/bin/python3
"""Explanations: their cost against one Classify, and against Captum.

The four benchmark models of bench/compare_engines.py (same builder, same
seed: Linear + ReLU, no head, so the default head is the logits), exported
to ONNX; for each model, batch size (1, 32, 256) and method, on one thread
each:

  seqserve classify   bench/explain_bench classify/<model>/<rows>: Predict()
                      and each row's predicted class (core alone)
  seqserve <method>   bench/explain_bench explain/<model>/<method>/<rows>:
                      Attribute() of each row's predicted class against the
                      zero baseline (integrated gradients: Gauss-Legendre,
                      50 steps); it also returns the scores, the predicted
                      classes and, for integrated gradients, the deltas
  PyTorch forward     the module under inference_mode, then argmax
  Captum <method>     the same module: the predicted classes (a forward under
                      no_grad, as Attribute() makes one), then Saliency,
                      InputXGradient, or IntegratedGradients(n_steps=50,
                      method="gausslegendre", return_convergence_delta=True),
                      zero baseline; the module's parameters require grad as
                      torch leaves them, so autograd also forms their
                      gradients
  shapley             where the model has at most 16 features (3-16-3 only):
                      Captum's ShapleyValues (exact: every one of the n!
                      orderings, n x n! + 1 forward calls of all the rows, the
                      default perturbations_per_eval=1), and a plain
                      enumeration in torch (the 2^n coalitions of every row
                      in one forward call, then the weighted sums in float64,
                      as core does); on wider models explain_bench reports
                      Attribute()'s refusal and nothing is timed

Also, --rounds times, bench/explain_bench quadrature/gausslegendre/50: the
Gauss-Legendre points and weights integrated gradients computes per call.

Every case runs all its sides in turn for --rounds rounds, rotating which
goes first; seqserve's sides are one explain_bench process each (Google
Benchmark, wall time per call; loading is not timed), Python's a loop of
calls for --seconds. Both make one untimed call on one row first. Each table
gives the median time per call over rounds, and ratios as the median and
(min-max) over rounds, each ratio from one round.

Before timing, the script checks that both sides compute the same thing:
for each model and method, the attributions of explain_bench --attributions
(32 rows; --quick: 1) against Captum's on the same features and targets,
and Shapley against both torch sides; it stops when one differs by more
than --tolerance (absolute, default 1e-5).

Captum is not on PyPI's mirror here; run it from its source:
  fetch the repository pytorch/captum, then
  git --git-dir=CAPTUM_GIT archive HEAD captum | tar -x -C /tmp/captum-src
  /usr/bin/python3 bench/explain_bench.py --captum-src /tmp/captum-src
It needs Debian's python3-torch, python3-onnx, python3-tqdm and
python3-matplotlib (Captum imports both), and libopenblas0-pthread
(scripts/bench-packages.txt). --quick runs every side once, briefly, at one
row; without Captum it skips Captum's sides and says so (the ctest
Bench.ExplainQuick).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from compare_engines import MODELS, ROOT, build, export  # noqa: E402

METHODS = ["saliency", "input_x_gradient", "integrated_gradients", "shapley"]
BATCHES = [1, 32, 256]
MAX_SHAPLEY_FEATURES = 16
SCALE = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}


def load_avg():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def spread(values, digits=2):
    return (f"{statistics.median(values):.{digits}f}x "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def spread_us(values):
    return (f"{statistics.median(values) / 1e3:.1f} µs "
            f"({min(values) / 1e3:.1f}-{max(values) / 1e3:.1f})")


def micros(ns):
    return f"{ns / 1e3:.1f}" if ns >= 1e5 else f"{ns / 1e3:.2f}"


# ---------------------------------------------------------------- seqserve


class Core:
    """bench/explain_bench on the exported files."""

    def __init__(self, binary, paths):
        self.binary = binary
        self.paths = paths

    def env(self, name, rows):
        return dict(os.environ, SEQSERVE_BENCH_FILES=f"{name}={self.paths[name]}",
                    SEQSERVE_BENCH_ROWS=str(rows))

    def time(self, benchmark, name, rows, seconds):
        """Nanoseconds per call, or the benchmark's error message."""
        out = subprocess.run([self.binary, "--benchmark_format=json",
                              f"--benchmark_filter=^{benchmark}/{rows}$",
                              f"--benchmark_min_time={seconds}"],
                             env=self.env(name, rows), check=True, capture_output=True,
                             text=True).stdout
        entries = json.loads(out)["benchmarks"]
        if len(entries) != 1:
            sys.exit(f"explain_bench: {len(entries)} results for {benchmark}/{rows}")
        if entries[0].get("error_occurred"):
            return entries[0]["error_message"]
        return entries[0]["real_time"] * SCALE[entries[0]["time_unit"]]

    def attributions(self, name, method, rows):
        out = subprocess.run([self.binary, "--attributions", name, method, str(rows)],
                             env=self.env(name, rows), check=True, capture_output=True,
                             text=True).stdout
        return json.loads(out)


# ---------------------------------------------------------------- PyTorch and Captum


def predicted(body, x):
    with torch.no_grad():
        return body(x).argmax(1)


def shapley_enumeration(body, x, targets):
    """Exact Shapley values against the zero baseline: all 2^n coalitions of
    every row in one forward call, the weighted sums in float64."""
    rows, n = x.shape
    count = 1 << n
    masks = torch.tensor([[(m >> k) & 1 for k in range(n)] for m in range(count)],
                         dtype=torch.bool)
    with torch.inference_mode():
        inputs = torch.where(masks[None, :, :], x[:, None, :], torch.zeros(()))
        out = body(inputs.reshape(rows * count, n)).reshape(rows, count, -1)
        value = out.gather(2, targets[:, None, None].expand(rows, count, 1))[:, :, 0]
        value = value.double()
        sizes = masks.sum(1)
        # k! (n - k - 1)! / n! for a coalition of k features before the one added
        weight = torch.tensor([math.factorial(k) * math.factorial(n - k - 1) /
                               math.factorial(n) for k in range(n)], dtype=torch.float64)
        phi = torch.zeros(rows, n, dtype=torch.float64)
        for k in range(n):
            without = torch.tensor([m for m in range(count) if not (m >> k) & 1])
            phi[:, k] = ((value[:, without | (1 << k)] - value[:, without])
                         * weight[sizes[without]]).sum(1)
        return phi


class Sides:
    """The Python sides of one model: callables of (x) -> attributions."""

    def __init__(self, body, captum):
        self.body = body
        self.captum = captum
        if captum is not None:
            self.saliency = captum.Saliency(body)
            self.input_x_gradient = captum.InputXGradient(body)
            self.integrated_gradients = captum.IntegratedGradients(body)
            self.shapley_values = captum.ShapleyValues(body)

    def classify(self, x):
        with torch.inference_mode():
            return self.body(x).argmax(1)

    def captum_method(self, method, x, targets=None):
        if targets is None:  # what an explanation of the predicted class does
            targets = predicted(self.body, x)
        if method == "saliency":
            return self.saliency.attribute(x, target=targets, abs=True)
        if method == "input_x_gradient":
            return self.input_x_gradient.attribute(x, target=targets).detach()
        if method == "integrated_gradients":
            return self.integrated_gradients.attribute(
                x, target=targets, n_steps=50, method="gausslegendre",
                return_convergence_delta=True)[0]
        if method == "shapley":
            return self.shapley_values.attribute(x, target=targets)
        raise ValueError(method)

    def enumeration(self, x, targets=None):
        if targets is None:
            targets = predicted(self.body, x)
        return shapley_enumeration(self.body, x, targets)


def time_python(call, x, x1, seconds):
    """Nanoseconds per call of call(x), after one untimed call on one row."""
    call(x1)
    calls, start = 0, time.perf_counter_ns()
    while True:
        call(x)
        calls += 1
        elapsed = time.perf_counter_ns() - start
        if elapsed >= seconds * 1e9:
            return elapsed / calls


# ---------------------------------------------------------------- check


class CountingForward(torch.nn.Module):
    """The body, counting its forward calls and rows."""

    def __init__(self, body):
        super().__init__()
        self.body = body
        self.calls = self.rows = 0

    def forward(self, x):
        self.calls += 1
        self.rows += x.shape[0]
        return self.body(x)


def check(core, names, bodies, captum, rows, tolerance):
    """Stops unless seqserve's attributions match Captum's and torch's."""
    print(f"Check, {rows} rows: largest |seqserve - other| (largest |value|)")
    for name in names:
        width = MODELS[name][0]
        sides = Sides(bodies[name], captum)
        for method in METHODS:
            answer = core.attributions(name, method, rows)
            if "error" in answer:
                if method == "shapley" and width > MAX_SHAPLEY_FEATURES:
                    print(f"  {name} {method}: refused by seqserve: {answer['error']}")
                    continue
                sys.exit(f"{name} {method}: {answer['error']}")
            x = torch.tensor(answer["features"], dtype=torch.float32).reshape(rows, width)
            targets = torch.tensor(answer["targets"])
            values = torch.tensor(answer["values"], dtype=torch.float64).reshape(rows, width)
            mine = predicted(bodies[name], x)
            if not torch.equal(mine, targets):
                print(f"  {name}: PyTorch predicts another class for "
                      f"{int((mine != targets).sum())} rows; explaining seqserve's")
            others = []
            if captum is not None:
                if method == "shapley":
                    counted = CountingForward(bodies[name])
                    got = Sides(counted, captum).captum_method(method, x, targets)
                    others.append((f"Captum ShapleyValues ({counted.calls} forward calls, "
                                   f"{counted.rows} rows)", got))
                else:
                    others.append(("Captum", sides.captum_method(method, x, targets)))
            if method == "shapley":
                others.append(("torch enumeration", sides.enumeration(x, targets)))
            for label, other in others:
                other = other.detach().double()
                worst = float((values - other).abs().max())
                scale = float(other.abs().max())
                verdict = "ok" if worst <= tolerance else "DIFFERS"
                print(f"  {name} {method} vs {label}: {worst:.2e} ({scale:.2e}) {verdict}")
                if worst > tolerance:
                    sys.exit(f"{name} {method}: seqserve and {label} differ by {worst:g}")
    print(flush=True)


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-binary",
                        default=os.path.join(ROOT, "build/release/bench/explain_bench"))
    parser.add_argument("--captum-src", default=os.environ.get("CAPTUM_SRC"),
                        help="a directory holding Captum's source package captum/")
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="measuring time per side, case and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated names from: " + ", ".join(MODELS))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--check-rows", type=int, default=32)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--quick", action="store_true",
                        help="one short round at one row: checks that the sides run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.batches, args.check_rows = 0.01, 1, "1", 1
    names = args.models.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Input Tensor .* did not already require")

    if args.captum_src:
        sys.path.insert(0, args.captum_src)
    try:
        import captum.attr as captum
        commit = ""
        if args.captum_src:
            commit = f" from {args.captum_src}"
        print(f"Captum {getattr(sys.modules['captum'], '__version__', '?')}{commit}, "
              f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread")
    except ImportError as error:
        if not args.quick:
            sys.exit(f"cannot import Captum ({error}): give --captum-src (see --help)")
        print(f"Captum not importable ({error}): its sides are skipped")
        captum = None

    with tempfile.TemporaryDirectory() as tmp:
        paths, bodies = {}, {}
        for name in names:
            bodies[name] = build(MODELS[name])
            paths[name] = os.path.join(tmp, f"{name}.onnx")
            export(bodies[name], MODELS[name][0], paths[name])
        core = Core(args.bench_binary, paths)
        check(core, names, bodies, captum, args.check_rows, args.tolerance)

        print(f"load average at start: {load_avg()}", flush=True)
        quadrature = [core.time("quadrature/gausslegendre", names[0], 50, args.seconds)
                      for _ in range(args.rounds)]
        results = {}  # (name, rows) -> {side: [ns per round] or refusal text}
        for name in names:
            width = MODELS[name][0]
            sides = Sides(bodies[name], captum)
            generator = torch.Generator().manual_seed(1)
            for rows in batches:
                x = torch.rand(rows, width, generator=generator)
                x1 = x[:1].clone()
                timers = {
                    "core:classify": lambda: core.time(f"classify/{name}", name, rows,
                                                       args.seconds),
                    "torch:classify": lambda: time_python(sides.classify, x, x1,
                                                          args.seconds),
                }
                for method in METHODS:
                    timers[f"core:{method}"] = (
                        lambda method=method: core.time(f"explain/{name}/{method}", name,
                                                        rows, args.seconds))
                    if method == "shapley" and width > MAX_SHAPLEY_FEATURES:
                        continue
                    if captum is not None:
                        timers[f"captum:{method}"] = (
                            lambda method=method: time_python(
                                lambda v: sides.captum_method(method, v), x, x1,
                                args.seconds))
                if width <= MAX_SHAPLEY_FEATURES:
                    timers["torch:shapley"] = lambda: time_python(sides.enumeration, x, x1,
                                                                  args.seconds)
                order = list(timers)
                times = {side: [] for side in timers}
                for round_index in range(args.rounds):
                    shift = round_index % len(order)
                    for side in order[shift:] + order[:shift]:
                        times[side].append(timers[side]())
                results[(name, rows)] = times
                print(f"  measured {name} at {rows} rows (load {load_avg()})", flush=True)
        print(f"load average at end: {load_avg()}\n")

        print("seqserve alone: explanation / Classify (time per call; the "
              "explanations' own times are in the next table)\n")
        refusals = set()
        print("| model | rows | Classify µs | " + " | ".join(f"{m} / Classify" for m in METHODS)
              + " |")
        print("| --- " * (3 + len(METHODS)) + "|")
        for (name, rows), times in results.items():
            cells = []
            for method in METHODS:
                side = times[f"core:{method}"]
                if any(isinstance(v, str) for v in side):
                    refusals.add(side[0])
                    cells.append(f"refused ({MODELS[name][0]} features)")
                    continue
                cells.append(spread([e / c for e, c in zip(side, times["core:classify"])], 1))
            print(f"| {name} | {rows} | {micros(statistics.median(times['core:classify']))} | "
                  + " | ".join(cells) + " |")
        for refusal in sorted(refusals):
            print(f"\nrefused: Attribute() answered \"{refusal}\"")
        print(f"\nGauss-Legendre points and weights, 50 steps (computed on every call of "
              f"integrated gradients): {spread_us(quadrature)}")
        print("\nseqserve against Captum and PyTorch (time per call; "
              "Captum / seqserve above 1: seqserve faster)\n")
        print("| model | rows | method | seqserve µs | Captum µs | Captum / seqserve "
              "| PyTorch forward µs | Captum / PyTorch forward |")
        print("| --- " * 8 + "|")
        for (name, rows), times in results.items():
            for method in METHODS:
                for label, key in (("Captum", f"captum:{method}"),
                                   ("torch enumeration", "torch:shapley")):
                    if key not in times or (label != "Captum" and method != "shapley"):
                        continue
                    core_side = times[f"core:{method}"]
                    ratios = [o / c for o, c in zip(times[key], core_side)]
                    vs_forward = [o / f for o, f in zip(times[key], times["torch:classify"])]
                    shown = (f"{method} ({label})" if method == "shapley" and label != "Captum"
                             else "shapley (Captum ShapleyValues)" if method == "shapley"
                             else method)
                    print(f"| {name} | {rows} | {shown} | {micros(statistics.median(core_side))} "
                          f"| {micros(statistics.median(times[key]))} | {spread(ratios)} "
                          f"| {micros(statistics.median(times['torch:classify']))} "
                          f"| {spread(vs_forward, 1)} |")


if __name__ == "__main__":
    main()
