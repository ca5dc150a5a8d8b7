#!/usr/bin/env python3
"""tools/drift_baseline.py on a small training CSV: quantile bins, one-hot
categories with the rest in the last bin, class counts by label, output that
protoc reads as a seqserve.v1.DriftBaseline, and clear refusals.

    drift_baseline_test.py ROOT PROTOC
"""
import os
import subprocess
import sys
import tempfile
import unittest

ROOT, PROTOC = sys.argv[1], sys.argv[2]
TOOL = os.path.join(ROOT, "tools", "drift_baseline.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import drift_baseline  # noqa: E402

CONFIG = """
# A comment, then the fields the tool reads among others.
description: "test model"
labels: ["bird", "mammal", "reptile"]
feature_names: ["size", "colour", "habitat"]
preprocessing { feature: "size" standardize { mean: 500 std: 290 } }
preprocessing {
  feature: "colour"
  one_hot { categories: ["red", "green"] unknown: UNKNOWN_OTHER }
}
drift { baseline_file: "baseline.textproto" }
"""


class DriftBaselineTool(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.config = self.path("config.textproto", CONFIG)
        rows = ["size,colour,habitat,predicted"]
        colours = ["red", "green", "blue", "red"]
        for i in range(1000):
            size = "" if i == 7 else str(i)  # one missing value
            habitat = "sea" if i % 10 == 0 else "land"
            predicted = ["bird", "mammal", "2"][i % 3]
            rows.append(f"{size},{colours[i % 4]},{habitat},{predicted}")
        self.csv = self.path("train.csv", "\n".join(rows) + "\n")

    def tearDown(self):
        self.dir.cleanup()

    def path(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_tool(self, *extra):
        return subprocess.run([sys.executable, TOOL, "--config", self.config, "--csv", self.csv,
                               *extra], capture_output=True, text=True)

    def test_bins_categories_and_classes(self):
        result = self.run_tool("--bins", "4", "--class-column", "predicted")
        self.assertEqual(result.returncode, 0, result.stderr)
        baseline = drift_baseline.parse_text_proto(result.stdout)
        size, colour, habitat = baseline["features"]
        self.assertEqual(size["name"], ["size"])
        # Quartiles of 0..999 less 7: three edges, about 250 rows a bin.
        edges = [float(e) for e in size["edges"]]
        self.assertEqual(len(edges), 3)
        self.assertEqual(edges, sorted(edges))
        counts = [int(c) for c in size["counts"]]
        self.assertEqual(sum(counts), 999)
        self.assertEqual(len(counts), 4)
        for c in counts:
            self.assertAlmostEqual(c, 250, delta=2)
        # One-hot categories from the config; blue counts as other.
        self.assertEqual(colour["categories"], ["red", "green"])
        self.assertEqual([int(c) for c in colour["counts"]], [500, 250, 250])
        # A text column without one_hot: categories by frequency.
        self.assertEqual(habitat["categories"], ["land", "sea"])
        self.assertEqual([int(c) for c in habitat["counts"]], [900, 100, 0])
        self.assertEqual([int(c) for c in baseline["class_counts"]], [334, 333, 333])

        # protoc reads it as the server's message.
        encoded = subprocess.run(
            [PROTOC, "-I", os.path.join(ROOT, "proto"), "--encode=seqserve.v1.DriftBaseline",
             "seqserve/v1/config.proto"],
            input=result.stdout.encode(), capture_output=True)
        self.assertEqual(encoded.returncode, 0, encoded.stderr.decode())

    def test_without_a_class_column_class_counts_are_left_out(self):
        result = self.run_tool()
        self.assertEqual(result.returncode, 0, result.stderr)
        baseline = drift_baseline.parse_text_proto(result.stdout)
        self.assertNotIn("class_counts", baseline)
        self.assertEqual(len(baseline["features"][0]["edges"]), 9)

    def test_edges_bin_as_the_server_bins(self):
        # x equal to an edge goes above it: bisect_right, as upper_bound.
        self.assertEqual(drift_baseline.quantile_edges([0, 0, 1, 1], 2), [1.0])
        self.assertEqual(drift_baseline.quantile_edges([5, 5, 5], 4), [5.0])

    def test_refusals_name_what_is_wrong(self):
        self.csv = self.path("other.csv", "size,colour\n1,red\n")
        result = self.run_tool()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no column 'habitat'", result.stderr)

        self.config = self.path("bare.textproto", 'labels: "x"\n')
        result = self.run_tool()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("the config has no feature_names", result.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
