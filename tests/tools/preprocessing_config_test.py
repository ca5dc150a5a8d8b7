#!/usr/bin/env python3
"""tools/preprocessing_config.py: from a training CSV, statistics as
scikit-learn's transformers fit them (population deviation, sorted
categories, the imputer's mean); from fitted transformers, their attributes
(objects with scikit-learn's class and attribute names, since the test
machine has no scikit-learn); output that protoc reads as a
seqserve.v1.ModelConfig; clear refusals.

    preprocessing_config_test.py ROOT PROTOC
"""
import io
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import unittest

ROOT, PROTOC = sys.argv[1], sys.argv[2]
TOOL = os.path.join(ROOT, "tools", "preprocessing_config.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import drift_baseline  # noqa: E402
import preprocessing_config  # noqa: E402


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


class StandardScaler:
    def __init__(self, mean, scale, names=None):
        self.mean_, self.scale_, self.n_features_in_ = mean, scale, len(scale)
        if names:
            self.feature_names_in_ = names


class MinMaxScaler:
    def __init__(self, low, high, feature_range=(0, 1), clip=False):
        self.data_min_, self.data_max_, self.n_features_in_ = low, high, len(low)
        self.feature_range, self.clip = feature_range, clip


class OneHotEncoder:
    def __init__(self, categories, handle_unknown="error", drop=None):
        self.categories_, self.handle_unknown, self.drop = categories, handle_unknown, drop


class ColumnTransformer:
    def __init__(self, transformers, names):
        self.transformers_, self.feature_names_in_ = transformers, names


class PreprocessingConfigTool(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.limbs = [4, 2, 0, 4, 6, 8, 4, 2]
        self.weights = ["30", "", "2", "12.5", "NA", "70", "3", "0.25"]
        self.coats = ["hair", "feathers", "scales", "hair", "", "hair", "scales", "feathers"]
        lines = ["limbs,coat,weight"] + [f"{l},{c},{w}" for l, c, w in
                                         zip(self.limbs, self.coats, self.weights)]
        self.csv = os.path.join(self.dir.name, "train.csv")
        with open(self.csv, "w") as f:
            f.write("\n".join(lines) + "\n")

    def tearDown(self):
        self.dir.cleanup()

    def run_tool(self, *args):
        return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)

    def config(self, text):
        """The text as protoc reads it, and as fields."""
        encoded = subprocess.run(
            [PROTOC, f"--proto_path={ROOT}/proto", "--encode=seqserve.v1.ModelConfig",
             "seqserve/v1/config.proto"], input=text.encode(), capture_output=True)
        self.assertEqual(encoded.returncode, 0, encoded.stderr.decode() + text)
        fields = drift_baseline.parse_text_proto(text)
        return {t["feature"][0]: t for t in fields["preprocessing"]}, fields["feature_names"]

    def test_a_csv_gives_what_scikit_learns_transformers_would_fit(self):
        result = self.run_tool("--csv", self.csv, "--missing", "mean", "--unknown", "zeros")
        self.assertEqual(result.returncode, 0, result.stderr)
        transforms, names = self.config(result.stdout)
        self.assertEqual(names, ["limbs", "coat", "weight"])
        limbs = transforms["limbs"]["standardize"][0]
        self.assertEqual(float(limbs["mean"][0]), f32(statistics.fmean(self.limbs)))
        self.assertEqual(float(limbs["std"][0]), f32(statistics.pstdev(self.limbs)))
        self.assertNotIn("missing_value", transforms["limbs"])  # none missing
        weights = [float(w) for w in self.weights if w not in ("", "NA")]
        weight = transforms["weight"]
        self.assertEqual(float(weight["standardize"][0]["mean"][0]), f32(statistics.fmean(weights)))
        self.assertEqual(float(weight["standardize"][0]["std"][0]), f32(statistics.pstdev(weights)))
        self.assertEqual(float(weight["missing_value"][0]), f32(statistics.fmean(weights)))
        coat = transforms["coat"]["one_hot"][0]
        self.assertEqual(coat["categories"], ["feathers", "hair", "scales"])
        self.assertEqual(coat["unknown"], ["UNKNOWN_ZEROS"])
        self.assertEqual(transforms["coat"]["missing_category"], ["hair"])  # the most frequent

    def test_columns_can_be_picked_scaled_to_a_range_or_left_as_sent(self):
        result = self.run_tool("--csv", self.csv, "--features", "weight,limbs",
                               "--min-max", "weight", "--as-sent", "limbs")
        self.assertEqual(result.returncode, 0, result.stderr)
        transforms, names = self.config(result.stdout)
        self.assertEqual(names, ["weight", "limbs"])
        self.assertEqual(list(transforms), ["weight"])
        self.assertEqual(transforms["weight"]["min_max"][0], {"min": ["0.25"], "max": ["70.0"]})
        self.assertNotIn("missing_value", transforms["weight"])  # refused, the default

    def test_a_constant_column_is_divided_by_one_as_standard_scaler_does(self):
        path = os.path.join(self.dir.name, "constant.csv")
        with open(path, "w") as f:
            f.write("x\n3\n3\n3\n")
        transforms, _ = self.config(self.run_tool("--csv", path).stdout)
        self.assertEqual(transforms["x"]["standardize"][0], {"mean": ["3.0"], "std": ["1.0"]})

    def test_fitted_transformers_are_read_in_a_column_transformers_order(self):
        fitted = ColumnTransformer(
            [("cat", OneHotEncoder([["feathers", "hair"]], "ignore"), ["coat"]),
             ("num", StandardScaler([2.5, 14.75], [1.5, 11.25]), ["limbs", "weight"]),
             ("range", MinMaxScaler([10.0], [20.0], (-1, 1), clip=True), ["age"]),
             ("gone", "drop", ["id"]),
             ("remainder", "passthrough", [5])],
            ["coat", "limbs", "weight", "age", "id", "legs"])
        names, transforms = preprocessing_config.from_fitted(fitted)
        self.assertEqual(names, ["coat", "limbs", "weight", "age", "legs"])
        out = io.StringIO()
        preprocessing_config.write(names, transforms, out)
        parsed, written = self.config(out.getvalue())
        self.assertEqual(written, names)
        self.assertEqual(parsed["coat"]["one_hot"][0],
                         {"categories": ["feathers", "hair"], "unknown": ["UNKNOWN_ZEROS"]})
        self.assertEqual(parsed["weight"]["standardize"][0], {"mean": ["14.75"], "std": ["11.25"]})
        self.assertEqual(parsed["age"]["min_max"][0],
                         {"min": ["10.0"], "max": ["20.0"], "low": ["-1.0"], "high": ["1.0"]})
        self.assertEqual(parsed["age"]["clip"][0], {"min": ["10.0"], "max": ["20.0"]})
        self.assertNotIn("legs", parsed)

    def test_a_scaler_fitted_on_an_array_takes_the_names_given(self):
        scaler = StandardScaler([1.0, 2.0], [0.5, 0.0])
        with self.assertRaisesRegex(preprocessing_config.Refused, "give --features"):
            preprocessing_config.from_fitted(scaler)
        with self.assertRaisesRegex(preprocessing_config.Refused, "2 features, 1 names"):
            preprocessing_config.from_fitted(scaler, ["a"])
        names, transforms = preprocessing_config.from_fitted(scaler, ["a", "b"])
        self.assertEqual(transforms["b"], {"standardize": {"mean": 2.0, "std": 1.0}})

    def test_what_has_no_equivalent_is_refused(self):
        with self.assertRaisesRegex(preprocessing_config.Refused, "drop"):
            preprocessing_config.from_fitted(OneHotEncoder([["a", "b"]], drop="first"), ["x"])
        with self.assertRaisesRegex(preprocessing_config.Refused, "infrequent_if_exist"):
            preprocessing_config.from_fitted(OneHotEncoder([["a"]], "infrequent_if_exist"), ["x"])
        with self.assertRaisesRegex(preprocessing_config.Refused, "a fitted dict is not read"):
            preprocessing_config.from_fitted({})
        result = self.run_tool("--csv", self.csv, "--min-max", "coat")
        self.assertEqual(result.returncode, 1)
        self.assertIn("column 'coat' is not numeric ('hair')", result.stderr)
        result = self.run_tool("--csv", self.csv, "--features", "limbs,size")
        self.assertEqual(result.returncode, 1)
        self.assertIn("no column 'size' (columns: limbs, coat, weight)", result.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
