#!/usr/bin/env python3
"""Turns seqserve capture files (JSON Lines, one call a line) into one CSV.

    tools/capture_to_csv.py FILE... > rows.csv

One CSV line per captured row: the raw features by name (as the caller sent
them: numbers, categories, empty when missing), then predicted_label,
predicted_index, and one score column per output (score_<label>, or
score_<i> when the model has no labels). The columns are the first record's;
a record of another model or feature set is refused, so a mixed directory
does not become a CSV with shifted columns. Python's standard library only.
"""
import csv
import json
import sys


def columns_of(record):
    features = list(record["rows"][0]["features"].keys()) if record["rows"] else []
    outputs = len(record["rows"][0].get("scores", [])) if record["rows"] else 0
    labels = record.get("labels", [])
    if len(labels) == outputs:
        scores = [f"score_{label}" for label in labels]
    else:
        scores = [f"score_{i}" for i in range(outputs)]
    return features, scores


def cell(value):
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 2**53 else repr(value)
    return str(value)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    writer = csv.writer(sys.stdout, lineterminator="\n")
    features = scores = None
    model = None
    for path in argv[1:]:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    print(f"{path}:{number}: not JSON: {error.msg}", file=sys.stderr)
                    return 1
                if not record.get("rows"):
                    continue
                if features is None:
                    features, scores = columns_of(record)
                    model = record.get("model")
                    writer.writerow(features + ["predicted_label", "predicted_index"] + scores)
                elif (record.get("model"), columns_of(record)) != (model, (features, scores)):
                    print(f"{path}:{number}: model {record.get('model')!r} or its features "
                          f"differ from the first record's ({model!r})", file=sys.stderr)
                    return 1
                for row in record["rows"]:
                    values = [cell(row["features"].get(name)) for name in features]
                    values += [row.get("predicted_label", ""), row.get("predicted_index", "")]
                    values += [cell(score) for score in row.get("scores", [])]
                    writer.writerow(values)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
