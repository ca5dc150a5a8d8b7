#!/usr/bin/env python3
"""Writes a model's drift baseline (seqserve.v1.DriftBaseline, text format)
from a CSV of its training data.

    drift_baseline.py --config models/m/config.textproto --csv train.csv \\
        [--bins 10] [--class-column predicted] > models/m/baseline.textproto

One entry per feature of the config's feature_names, each read from the CSV
column of that name (a value left empty, "nan" or "NA" is missing and not
counted):
- a feature the config one-hot encodes (preprocessing { feature one_hot })
  counts the config's categories, then every other value in the last bin;
- a column whose values are all numbers gets quantile bin edges (--bins
  bins; fewer where values repeat) and the count in each bin, binned as the
  server bins (edges[i-1] <= x < edges[i]; below the first edge, at or above
  the last);
- any other column is categorical: its --max-categories most frequent
  values, then the rest in the last bin.

class_counts come from --class-column, each row's predicted class as an
index or a label of the config's labels (a one-label binary model: the
label or "not <label>"); a config without labels needs --classes. Running the model over the CSV to get them is not
this tool's job: without the column, class_counts is left out and the
server computes no PSI for the predicted class.

Python's standard library only; values are rounded to float32 as the server
reads them, so a value equal to an edge lands in the same bin here and there.
"""
import argparse
import bisect
import collections
import csv
import math
import struct
import sys

MISSING = {"", "nan", "NaN", "NA", "null", "None"}


# --- protobuf text format: just enough to read a ModelConfig --------------

def _tokens(text):
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{}[]<>:,;":
            yield c
            i += 1
        elif c in "\"'":
            quote, i, out = c, i + 1, []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                    out.append({"n": "\n", "t": "\t", "r": "\r"}.get(text[i], text[i]))
                else:
                    out.append(text[i])
                i += 1
            if i >= n:
                raise ValueError("unterminated string")
            i += 1
            yield ("str", "".join(out))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "{}[]<>:,;#\"'":
                i += 1
            yield ("word", text[start:i])


def parse_text_proto(text):
    """Fields as {name: [values]}; a message value is such a dict."""
    tokens = list(_tokens(text))
    pos = 0

    def message(end):
        nonlocal pos
        fields = collections.defaultdict(list)
        while pos < len(tokens) and tokens[pos] != end:
            name = tokens[pos]
            if not isinstance(name, tuple) or name[0] != "word":
                raise ValueError(f"expected a field name, found {name!r}")
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            if tokens[pos] == "[":
                pos += 1
                while tokens[pos] != "]":
                    fields[name[1]].append(value())
                    if tokens[pos] == ",":
                        pos += 1
                pos += 1
            else:
                fields[name[1]].append(value())
            if pos < len(tokens) and tokens[pos] in (",", ";"):
                pos += 1
        pos += 1
        return fields

    def value():
        nonlocal pos
        token = tokens[pos]
        if token in ("{", "<"):
            pos += 1
            return message("}" if token == "{" else ">")
        pos += 1
        if token[0] == "str":
            # Adjacent strings concatenate.
            parts = [token[1]]
            while pos < len(tokens) and isinstance(tokens[pos], tuple) and tokens[pos][0] == "str":
                parts.append(tokens[pos][1])
                pos += 1
            return "".join(parts)
        return token[1]

    tokens.append(None)
    result = message(None)
    return result


# --- binning, as the server does it ----------------------------------------

def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def parse_number(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return f32(value) if math.isfinite(value) else value


def quantile_edges(values, bins):
    """Edges between `bins` equal-count groups of the sorted values, deduped."""
    ordered = sorted(v for v in values if not math.isnan(v))
    finite = [v for v in ordered if math.isfinite(v)]
    if not finite:
        return []
    edges = []
    for k in range(1, bins):
        edge = finite[min(len(finite) - 1, (k * len(finite)) // bins)]
        if not edges or edge > edges[-1]:
            edges.append(edge)
    if not edges:
        edges = [finite[0]]
    return edges


def text_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def text_float(x):
    # repr of a float32-exact double reads back as the same float32.
    return repr(float(x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the model's config.textproto")
    parser.add_argument("--csv", required=True, help="training data, one column per feature")
    parser.add_argument("--bins", type=int, default=10, help="bins per numeric feature")
    parser.add_argument("--max-categories", type=int, default=50,
                        help="categories kept per categorical column without one_hot")
    parser.add_argument("--class-column", help="a column with each row's predicted class")
    parser.add_argument("--classes", type=int, default=0,
                        help="the model's classes (2 for one output), when its config has no labels")
    args = parser.parse_args(argv)
    if args.bins < 2:
        parser.error("--bins must be at least 2")

    try:
        with open(args.config, encoding="utf-8") as f:
            config = parse_text_proto(f.read())
    except (OSError, ValueError, IndexError, TypeError) as e:
        sys.exit(f"{args.config}: cannot read the config: {e}")
    names = config.get("feature_names", [])
    if not names:
        sys.exit(f"{args.config}: the config has no feature_names; drift needs them")
    one_hot = {}
    for transform in config.get("preprocessing", []):
        for encoding in transform.get("one_hot", []):
            one_hot[transform["feature"][0]] = list(encoding.get("categories", []))
    labels = config.get("labels", [])

    with open(args.csv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        wanted = list(names) + ([args.class_column] if args.class_column else [])
        for name in wanted:
            if name not in columns:
                sys.exit(f"{args.csv}: no column '{name}' (columns: {', '.join(columns)})")
        raw = {name: [] for name in wanted}
        for row in reader:
            for name in wanted:
                raw[name].append((row.get(name) or "").strip())

    out = []
    for name in names:
        present = [v for v in raw[name] if v not in MISSING]
        if not present:
            sys.exit(f"{args.csv}: column '{name}' has no values")
        numbers = [parse_number(v) for v in present]
        out.append("features {")
        out.append(f"  name: {text_string(name)}")
        if name in one_hot or any(n is None for n in numbers):
            if name in one_hot:
                categories = one_hot[name]
            else:
                frequent = collections.Counter(present).most_common(args.max_categories)
                categories = [c for c, _ in frequent]
            index = {c: i for i, c in enumerate(categories)}
            counts = [0] * (len(categories) + 1)
            for v in present:
                counts[index.get(v, len(categories))] += 1
            for c in categories:
                out.append(f"  categories: {text_string(c)}")
        else:
            edges = quantile_edges(numbers, args.bins)
            if not edges:
                sys.exit(f"{args.csv}: column '{name}' has no finite values")
            counts = [0] * (len(edges) + 1)
            for x in numbers:
                if not math.isnan(x):
                    counts[bisect.bisect_right(edges, x)] += 1
            out.append("  edges: [" + ", ".join(text_float(e) for e in edges) + "]")
        out.append("  counts: [" + ", ".join(str(c) for c in counts) + "]")
        out.append("}")

    if args.class_column:
        if len(labels) == 1:
            names_of_classes = ["not " + labels[0], labels[0]]
        else:
            names_of_classes = list(labels)
        counts = collections.Counter()
        for v in raw[args.class_column]:
            if v in MISSING:
                continue
            if v in names_of_classes:
                counts[names_of_classes.index(v)] += 1
            elif v.isdigit():
                counts[int(v)] += 1
            else:
                sys.exit(f"{args.csv}: column '{args.class_column}' holds '{v}', neither a "
                         f"class index nor one of the labels {names_of_classes}")
        classes = max(len(names_of_classes), args.classes, max(counts, default=-1) + 1)
        if len(labels) == 1 and classes > 2:
            sys.exit(f"{args.csv}: a binary model has classes 0 and 1; "
                     f"column '{args.class_column}' names {classes - 1}")
        out.append("class_counts: [" + ", ".join(str(counts[c]) for c in range(classes)) + "]")

    sys.stdout.write(f"# Drift baseline of {args.csv} for {args.config}, by tools/drift_baseline.py\n")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
