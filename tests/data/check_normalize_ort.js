// Runs every model of tests/data/reference/normalize/ in ONNX Runtime and
// compares its output with reference.json's (numpy's float32 arithmetic):
// bit for bit where `exact_output` is set (no Linear rounding in between),
// else within 1e-6 relative plus 1e-7 absolute. Checks that the files are
// what ONNX Runtime runs and that numpy's step-by-step numbers are its.
//
// Given a folder written by `make_normalize_models.py --probe DIR`, the
// models also output each elementwise module's result, compared bit for
// bit with reference.json's `elementwise` outputs.
//
// From the repository root, with bench/ort's onnxruntime-node installed
// (`npm install --ignore-scripts` in bench/ort):
//   NODE_PATH=bench/ort/node_modules node tests/data/check_normalize_ort.js [DIR]
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const dir = process.argv[2] || path.join(__dirname, 'reference', 'normalize');

async function check(folder, level) {
  const reference = JSON.parse(fs.readFileSync(path.join(folder, 'reference.json'), 'utf8'));
  const session = await ort.InferenceSession.create(path.join(folder, 'model.onnx'), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: level,
  });
  const rows = reference.inputs.length;
  const width = reference.inputs[0].length;
  const input = new ort.Tensor('float32', Float32Array.from(reference.inputs.flat()),
                               [rows, width]);
  const result = await session.run({[session.inputNames[0]]: input});
  const got = result[session.outputNames[0]].data;
  const want = Float32Array.from(reference.output.flat());
  if (got.length !== want.length) throw new Error(`${folder}: ${got.length} values, want ${want.length}`);
  let differing = 0;
  let worst = 0;
  for (let i = 0; i < want.length; ++i) {
    if (got[i] !== want[i]) ++differing;
    const error = Math.abs(got[i] - want[i]);
    worst = Math.max(worst, error);
    if (error > 1e-6 * Math.abs(want[i]) + 1e-7) {
      throw new Error(`${folder} (${level}): value ${i} is ${got[i]}, numpy gives ${want[i]}`);
    }
  }
  if (reference.exact_output && differing > 0) {
    throw new Error(`${folder} (${level}): ${differing} values differ from numpy's bits`);
  }
  // A probe model's second output: the first elementwise module's result
  // on the inputs, which must be numpy's bits.
  if (session.outputNames.length > 1) {
    const tensor = result[session.outputNames[1]].data;
    const expected = Float32Array.from(reference.elementwise[0].output.flat());
    if (reference.elementwise[0].index !== 0) throw new Error(`${folder}: no first module`);
    for (let i = 0; i < expected.length; ++i) {
      if (!Object.is(tensor[i], expected[i])) {
        throw new Error(`${folder} (${level}): the first module's value ${i} is ` +
                        `${tensor[i]}, numpy gives ${expected[i]}`);
      }
    }
    console.log(`${path.basename(folder)} (${level}): first module: ` +
                `${expected.length} values, bit-equal`);
  }
  return {differing, worst, values: want.length};
}

(async () => {
  const folders = fs.readdirSync(dir).sort();
  for (const name of folders) {
    for (const level of ['disabled', 'all']) {
      const r = await check(path.join(dir, name), level);
      console.log(`${name} (${level}): ${r.values} values, ${r.differing} not bit-equal, ` +
                  `largest difference ${r.worst}`);
    }
  }
  console.log(`ok: ${folders.length} models`);
})().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
