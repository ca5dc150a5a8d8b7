#!/usr/bin/python3
"""tools/capture_to_csv.py: captured lines (as seqserve writes them, with a
missing feature, a category and two files) become the CSV a training script
reads back with csv.DictReader; a record of another model is refused.

Usage: capture_to_csv_test.py TOOL
"""
import csv
import io
import os
import subprocess
import sys
import tempfile

RECORDS = [
    '{"model":"animals","version":1,"time":"2026-12-05T13:00:00.000000Z","request_id":"a",'
    '"caller":"","protocol":"grpc","output":"softmax","labels":["bird","mammal","reptile"],'
    '"rows":[{"features":{"limbs":4,"eggs":0,"colour":"brown"},"inputs":[4,0,1],'
    '"scores":[1.5e-17,1,1.4e-10],"predicted_index":1,"predicted_label":"mammal","score":1},'
    '{"features":{"limbs":2,"eggs":null,"colour":"white, grey"},"inputs":[2,1,0],'
    '"scores":[0.99,6.4e-07,7.4e-05],"predicted_index":0,"predicted_label":"bird","score":0.99}]}',
    '{"model":"animals","version":2,"time":"2026-12-05T13:00:01.000000Z","request_id":"b",'
    '"caller":"","protocol":"http","output":"softmax","labels":["bird","mammal","reptile"],'
    '"rows":[{"features":{"limbs":0,"eggs":1,"colour":"green"},"inputs":[0,1,0],'
    '"scores":[8.5e-05,4.6e-05,0.99],"predicted_index":2,"predicted_label":"reptile",'
    '"score":0.99}]}',
]
OTHER = ('{"model":"mammal","version":1,"labels":["mammal"],"rows":[{"features":'
         '{"limbs":4},"inputs":[4],"scores":[0.9],"predicted_index":1,'
         '"predicted_label":"mammal","score":0.9}]}')


def run(tool, *files):
    return subprocess.run([sys.executable, tool, *files], capture_output=True, text=True)


def main():
    tool = sys.argv[1]
    problems = []
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for i, line in enumerate(RECORDS):
            paths.append(os.path.join(directory, f"animals-{i}.jsonl"))
            with open(paths[-1], "w") as f:
                f.write(line + "\n")
        done = run(tool, *paths)
        if done.returncode != 0:
            problems.append(f"exit {done.returncode}: {done.stderr}")
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        expected_columns = ["limbs", "eggs", "colour", "predicted_label", "predicted_index",
                            "score_bird", "score_mammal", "score_reptile"]
        header = done.stdout.splitlines()[0].split(",") if done.stdout else []
        if header != expected_columns:
            problems.append(f"columns {header}, expected {expected_columns}")
        expected = [
            {"limbs": "4", "eggs": "0", "colour": "brown", "predicted_label": "mammal",
             "predicted_index": "1", "score_bird": "1.5e-17", "score_mammal": "1",
             "score_reptile": "1.4e-10"},
            {"limbs": "2", "eggs": "", "colour": "white, grey", "predicted_label": "bird",
             "predicted_index": "0", "score_bird": "0.99", "score_mammal": "6.4e-07",
             "score_reptile": "7.4e-05"},
            {"limbs": "0", "eggs": "1", "colour": "green", "predicted_label": "reptile",
             "predicted_index": "2", "score_bird": "8.5e-05", "score_mammal": "4.6e-05",
             "score_reptile": "0.99"},
        ]
        if rows != expected:
            problems.append(f"rows {rows}, expected {expected}")

        other = os.path.join(directory, "mammal-0.jsonl")
        with open(other, "w") as f:
            f.write(OTHER + "\n")
        mixed = run(tool, paths[0], other)
        if mixed.returncode == 0 or "differ" not in mixed.stderr:
            problems.append(f"a second model was not refused: {mixed.returncode} {mixed.stderr}")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
