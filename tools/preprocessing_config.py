#!/usr/bin/env python3
"""Writes the feature_names and preprocessing of a model's config.textproto
(protobuf text format of seqserve.v1.ModelConfig) from the training data or
from the fitted scikit-learn transformer the model was trained behind.

    preprocessing_config.py --csv train.csv [--features a,b,c]
        [--min-max a] [--as-sent b] [--unknown error|zeros|other]
        [--missing refuse|mean] >> models/m/config.textproto
    preprocessing_config.py --pickle transformer.pkl [--features a,b,c]
        >> models/m/config.textproto

From a CSV (one column per feature, a header naming them; --features picks
and orders them, else every column in the header's order), as
scikit-learn's transformers would fit the same column:
- a column whose values are all numbers is standardized (StandardScaler:
  the mean and the population standard deviation, ddof 0, computed in
  float64; a deviation of 0 becomes 1, as StandardScaler's scale_ does),
  or scaled to [0, 1] when named in --min-max (MinMaxScaler's data_min_ and
  data_max_), or sent as it is when named in --as-sent;
- any other column is one-hot encoded over its distinct values in sorted
  order (OneHotEncoder's categories='auto'), an unknown value refused
  (--unknown error, OneHotEncoder's default), all zeros (zeros, its
  handle_unknown='ignore') or counted in a last column (other);
- a value left empty, "nan" or "NA" is missing: --missing mean fills it with
  the column's mean (SimpleImputer's default strategy; the most frequent
  value of a categorical column), refuse (the default) leaves the server to
  refuse a row without it.

From a pickle (scikit-learn must be importable to read it), the fitted
attributes are read, never refitted: a StandardScaler (mean_, scale_), a
MinMaxScaler (data_min_, data_max_, feature_range, clip), a OneHotEncoder
(categories_, handle_unknown; drop is refused) or a ColumnTransformer of
those, "passthrough" and "drop". A ColumnTransformer puts its transformers'
outputs side by side in its own order, so feature_names are written in that
order: the model's inputs come in it. Feature names come from the fitted
feature_names_in_ (fitted on a DataFrame) or --features.

Numbers are written as the float32 the server reads, so the text shows the
values it computes with. Python's standard library only.
"""
import argparse
import csv
import math
import os
import pickle
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drift_baseline import MISSING, f32, text_float, text_string  # noqa: E402

UNKNOWN = {"error": "UNKNOWN_ERROR", "zeros": "UNKNOWN_ZEROS", "other": "UNKNOWN_OTHER"}


class Refused(Exception):
    pass


# --- the transforms, as seqserve.v1.FeatureTransform fields ---------------

def standardize(mean, std):
    return {"standardize": {"mean": mean, "std": std if std != 0 else 1.0}}


def min_max(low_value, high_value, feature_range=(0.0, 1.0), clip=False):
    transform = {"min_max": {"min": low_value, "max": high_value}}
    if tuple(feature_range) != (0.0, 1.0):
        transform["min_max"]["low"], transform["min_max"]["high"] = feature_range
    if clip:  # MinMaxScaler(clip=True) clips its output; inputs clipped to the data's range
        transform["clip"] = {"min": low_value, "max": high_value}
    return transform


def one_hot(categories, unknown):
    return {"one_hot": {"categories": [str(c) for c in categories], "unknown": UNKNOWN[unknown]}}


def write(features, transforms, out):
    out.write("feature_names: [" + ", ".join(text_string(f) for f in features) + "]\n")
    for feature in features:
        transform = transforms.get(feature)
        if not transform:
            continue
        parts = [f"feature: {text_string(feature)}"]
        if "clip" in transform:
            clip = transform["clip"]
            parts.append("clip { " + " ".join(f"{k}: {text_float(f32(v))}"
                                              for k, v in clip.items()) + " }")
        if "standardize" in transform:
            s = transform["standardize"]
            parts.append(f"standardize {{ mean: {text_float(f32(s['mean']))} "
                         f"std: {text_float(f32(s['std']))} }}")
        if "min_max" in transform:
            parts.append("min_max { " + " ".join(f"{k}: {text_float(f32(v))}"
                                                 for k, v in transform["min_max"].items()) + " }")
        if "one_hot" in transform:
            o = transform["one_hot"]
            parts.append("one_hot { categories: [" +
                         ", ".join(text_string(c) for c in o["categories"]) +
                         f"] unknown: {o['unknown']} }}")
        if "missing_value" in transform:
            parts.append(f"missing_value: {text_float(f32(transform['missing_value']))}")
        if "missing_category" in transform:
            parts.append(f"missing_category: {text_string(transform['missing_category'])}")
        out.write("preprocessing { " + " ".join(parts) + " }\n")


# --- from a CSV of training data -------------------------------------------

def number(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def from_csv(path, features, min_max_columns, as_sent, unknown, missing):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise Refused(f"{path}: no rows under the header")
    header = list(rows[0].keys())
    features = features or header
    for name in features + min_max_columns + as_sent:
        if name not in header:
            raise Refused(f"{path}: no column '{name}' (columns: {', '.join(header)})")
    transforms = {}
    for name in features:
        present = [row[name] for row in rows if row[name] is not None and row[name].strip() not in MISSING]
        if not present:
            raise Refused(f"{path}: column '{name}' has no values")
        values = [number(v) for v in present]
        transform = {}
        if all(v is not None for v in values):
            mean = math.fsum(values) / len(values)
            if name in min_max_columns:
                transform = min_max(min(values), max(values))
            elif name not in as_sent:
                std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
                transform = standardize(mean, std)
            if missing == "mean" and len(present) < len(rows):
                transform["missing_value"] = mean
        else:
            if name in min_max_columns or name in as_sent:
                raise Refused(f"{path}: column '{name}' is not numeric "
                              f"('{next(p for p, v in zip(present, values) if v is None)}')")
            categories = sorted(set(v.strip() for v in present))
            transform = one_hot(categories, unknown)
            if missing == "mean" and len(present) < len(rows):
                counts = {c: 0 for c in categories}
                for v in present:
                    counts[v.strip()] += 1
                transform["missing_category"] = max(categories, key=lambda c: counts[c])
        transforms[name] = transform
    return features, transforms


# --- from fitted scikit-learn transformers ---------------------------------

def names_of(fitted, given, width):
    names = list(getattr(fitted, "feature_names_in_", []) if given is None else given)
    if not names:
        raise Refused(f"{type(fitted).__name__} was not fitted on named columns: give --features")
    if len(names) != width:
        raise Refused(f"{type(fitted).__name__} has {width} features, {len(names)} names given")
    return [str(n) for n in names]


def from_fitted(fitted, features=None):
    """(feature names in the model's input order, {name: transform})."""
    kind = type(fitted).__name__
    if kind == "ColumnTransformer":
        ordered, transforms = [], {}
        for _, inner, columns in fitted.transformers_:
            if inner == "drop":
                continue
            if isinstance(columns, str):
                columns = [columns]
            columns = list(columns)
            known = list(getattr(fitted, "feature_names_in_", []))
            if known and all(isinstance(c, int) for c in columns):  # the remainder's, by position
                columns = [known[c] for c in columns]
            if not all(isinstance(c, str) for c in columns):
                raise Refused("ColumnTransformer columns are picked by position: fit it on a "
                              "DataFrame so that they have names")
            columns = [str(c) for c in columns]
            if inner == "passthrough":
                ordered += columns
                continue
            names, inner_transforms = from_fitted(inner, columns)
            ordered += names
            transforms.update(inner_transforms)
        return ordered, transforms
    if kind == "StandardScaler":
        width = int(fitted.n_features_in_)
        names = names_of(fitted, features, width)
        means = fitted.mean_ if fitted.mean_ is not None else [0.0] * width
        scales = fitted.scale_ if fitted.scale_ is not None else [1.0] * width
        return names, {n: standardize(float(m), float(s)) for n, m, s in zip(names, means, scales)}
    if kind == "MinMaxScaler":
        width = int(fitted.n_features_in_)
        names = names_of(fitted, features, width)
        feature_range = tuple(float(x) for x in fitted.feature_range)
        return names, {n: min_max(float(lo), float(hi), feature_range, bool(getattr(fitted, "clip", False)))
                       for n, lo, hi in zip(names, fitted.data_min_, fitted.data_max_)}
    if kind == "OneHotEncoder":
        if getattr(fitted, "drop", None) is not None:
            raise Refused("OneHotEncoder(drop=...) leaves out a column per feature; seqserve's "
                          "one_hot writes every category")
        handle = getattr(fitted, "handle_unknown", "error")
        unknown = {"error": "error", "ignore": "zeros"}.get(handle)
        if unknown is None:
            raise Refused(f"OneHotEncoder(handle_unknown='{handle}') has no seqserve equivalent")
        names = names_of(fitted, features, len(fitted.categories_))
        return names, {n: one_hot(list(c), unknown) for n, c in zip(names, fitted.categories_)}
    raise Refused(f"a fitted {kind} is not read: StandardScaler, MinMaxScaler, OneHotEncoder or "
                  "a ColumnTransformer of them")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", help="training data, a header naming the columns")
    source.add_argument("--pickle", help="a fitted scikit-learn transformer, pickled")
    parser.add_argument("--features", help="comma-separated: the model's features, in order")
    parser.add_argument("--min-max", default="", help="--csv: columns scaled to [0, 1]")
    parser.add_argument("--as-sent", default="", help="--csv: numeric columns left as sent")
    parser.add_argument("--unknown", choices=sorted(UNKNOWN), default="error",
                        help="--csv: what an unknown category does")
    parser.add_argument("--missing", choices=["refuse", "mean"], default="refuse",
                        help="--csv: what a missing value does")
    args = parser.parse_args(argv)
    split = lambda text: [s for s in (text or "").split(",") if s]  # noqa: E731
    try:
        if args.csv:
            features, transforms = from_csv(args.csv, split(args.features), split(args.min_max),
                                            split(args.as_sent), args.unknown, args.missing)
        else:
            with open(args.pickle, "rb") as f:
                fitted = pickle.load(f)
            features, transforms = from_fitted(fitted, split(args.features) or None)
    except (Refused, OSError) as error:
        print(f"preprocessing_config.py: {error}", file=sys.stderr)
        return 1
    write(features, transforms, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
