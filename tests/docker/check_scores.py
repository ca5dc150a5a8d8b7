#!/usr/bin/python3
"""Checks seqclient's CSV answer against PyTorch's numbers for the same rows.

Reads `seqclient classify --format csv` output on stdin (a header, then one
line per row ending with that row's scores) and compares the scores with
REFERENCE_JSON[KEY] (tests/data/reference/) within 1e-5 relative plus 1e-6
absolute, the suite's tolerance.
Usage: check_scores.py REFERENCE_JSON KEY < answer.csv
"""
import csv
import json
import sys


def main(reference_path, key):
    with open(reference_path) as f:
        expected = json.load(f)[key]
    lines = list(csv.reader(sys.stdin))
    rows = lines[1:]
    if len(rows) != len(expected):
        print(f"FAIL: {len(rows)} rows answered, {len(expected)} expected")
        return 1
    problems = 0
    for index, (row, want) in enumerate(zip(rows, expected)):
        got = [float(value) for value in row[len(row) - len(want):]]
        for column, (g, w) in enumerate(zip(got, want)):
            if abs(g - w) > 1e-5 * abs(w) + 1e-6:
                print(f"FAIL: row {index} column {column}: {g} instead of {w}")
                problems += 1
    print(f"{reference_path} {key}: {len(rows)} rows, {problems} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
