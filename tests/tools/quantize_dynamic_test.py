#!/usr/bin/env python3
"""tools/quantize_dynamic.py on PyTorch's export of the species reference
model (Gemm layers): the weights it writes are quantize_dynamic's symmetric
int8 with per-output (or one) scales, seqmodel loads the file in INT8 and
keeps PyTorch's class on every reference row, and a Gemm that is not a
Linear layer is refused.

    quantize_dynamic_test.py ROOT SEQMODEL
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT, SEQMODEL = sys.argv[1], sys.argv[2]
TOOL = os.path.join(ROOT, "tools", "quantize_dynamic.py")
REFERENCE = os.path.join(ROOT, "tests", "data", "reference")


def tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


class QuantizeDynamicTool(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.source = os.path.join(REFERENCE, "species.onnx")
        with open(os.path.join(REFERENCE, "species.json")) as f:
            self.reference = json.load(f)

    def tearDown(self):
        self.dir.cleanup()

    def quantize(self, *flags):
        out = os.path.join(self.dir.name, "model_int8.onnx")
        result = tool(self.source, out, *flags)
        self.assertEqual(result.returncode, 0, result.stderr)
        return out

    def test_weights_are_symmetric_int8_with_a_scale_per_output(self):
        for flags, per_channel in (((), True), (("--per-tensor",), False)):
            model = onnx.load(self.quantize(*flags))
            onnx.checker.check_model(model)
            ops = [n.op_type for n in model.graph.node]
            self.assertNotIn("Gemm", ops)
            self.assertEqual(ops.count("MatMulInteger"), ops.count("DynamicQuantizeLinear"))
            source = onnx.load(self.source)
            floats = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer}
            values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
            gemms = [n for n in source.graph.node if n.op_type == "Gemm"]
            self.assertEqual(len(gemms), ops.count("MatMulInteger"))
            for gemm in gemms:
                w = floats[gemm.input[1]].T  # transB=1: torch's out x in
                q = values[gemm.input[1] + "_quantized"]
                scale = values[gemm.input[1] + "_scale"]
                self.assertEqual(q.dtype, np.int8)
                self.assertEqual(q.shape, w.shape)
                self.assertEqual(scale.shape, (w.shape[1],) if per_channel else ())
                self.assertLessEqual(np.abs(q.astype(np.int32)).max(), 127)
                np.testing.assert_array_equal(values[gemm.input[1] + "_zero_point"], 0)
                largest = np.abs(w).max(axis=0) if per_channel else np.abs(w).max()
                np.testing.assert_array_equal(scale, (largest + largest) / np.float32(254))
                # Each weight is within half a step of its float value.
                self.assertTrue(np.all(np.abs(q * scale - w) <= scale / 2 * (1 + 1e-6)))

    def test_seqmodel_runs_the_file_in_int8_and_keeps_pytorchs_classes(self):
        out = self.quantize()
        inspect = subprocess.run([SEQMODEL, "inspect", out], capture_output=True, text=True)
        self.assertEqual(inspect.returncode, 0, inspect.stderr)
        self.assertIn("precision:    int8", inspect.stdout)
        rows = os.path.join(self.dir.name, "rows.csv")
        with open(rows, "w") as f:
            for row in self.reference["inputs"]:
                f.write(",".join(repr(v) for v in row) + "\n")
        run = subprocess.run([SEQMODEL, "run", out, "--input", rows, "--format", "json",
                              "--output", "softmax"], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        answers = json.loads(run.stdout)["results"]
        self.assertEqual(len(answers), len(self.reference["inputs"]))
        for answer, softmax in zip(answers, self.reference["softmax"]):
            self.assertEqual(answer["predicted_index"], int(np.argmax(softmax)), answer)
            np.testing.assert_allclose(answer["scores"], softmax, atol=0.05)

    def test_a_gemm_that_is_not_a_linear_layer_is_refused(self):
        model = onnx.load(self.source)
        gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
        kept = [a for a in gemm.attribute if a.name != "alpha"]
        del gemm.attribute[:]
        gemm.attribute.extend(kept + [helper.make_attribute("alpha", 2.0)])
        scaled = os.path.join(self.dir.name, "scaled.onnx")
        onnx.save(model, scaled)
        result = tool(scaled, os.path.join(self.dir.name, "out.onnx"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("alpha", result.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
