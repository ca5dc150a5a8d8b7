// Runs every model of tests/data/reference/quantized/ in ONNX Runtime and
// compares its answers with reference.json's (numpy following the ONNX
// operator specs), row by row (a batch of one, as seqserve quantizes each
// row) and as one batch (ONNX Runtime's DynamicQuantizeLinear takes one
// scale for the whole batch), with graph optimizations off and on (on,
// ONNX Runtime fuses the quantized MatMul into one kernel). Prints, for
// each, how many values are numpy's bits and the largest difference;
// fails when a row-by-row run without optimizations is not within 1e-6
// (the spec's arithmetic, which the quantized cases follow exactly), or
// the half-precision model is not within 2e-3 of the float32 answer.
//
// From the repository root, with bench/ort's onnxruntime-node installed:
//   NODE_PATH=bench/ort/node_modules node tests/data/check_quantized_ort.js
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const root = path.join(__dirname, 'reference', 'quantized');

// float32 to IEEE binary16 bits, rounding to nearest even (finite, normal
// range: the test rows are).
function toHalf(value) {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  let mantissa = bits & 0x7fffff;
  if (exponent <= 0) return sign;  // below the normal range: zero
  let half = sign | (exponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half += 1;
  return half;
}

function fromHalf(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

async function run(session, rows, half) {
  const width = rows[0].length;
  const flat = rows.flat();
  const input = half
      ? new ort.Tensor('float16', Uint16Array.from(flat.map(toHalf)), [rows.length, width])
      : new ort.Tensor('float32', Float32Array.from(flat), [rows.length, width]);
  const result = await session.run({[session.inputNames[0]]: input});
  const data = result[session.outputNames[0]].data;
  return half ? Array.from(data, fromHalf) : Array.from(data);
}

async function check(name) {
  const folder = path.join(root, name);
  const reference = JSON.parse(fs.readFileSync(path.join(folder, 'reference.json'), 'utf8'));
  const half = name === 'half';
  const want = Float32Array.from(reference.output.flat());
  for (const level of ['disabled', 'all']) {
    const session = await ort.InferenceSession.create(path.join(folder, 'model.onnx'), {
      intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: level,
    });
    for (const mode of ['row by row', 'one batch']) {
      let got = [];
      if (mode === 'row by row') {
        for (const row of reference.inputs) got = got.concat(await run(session, [row], half));
      } else {
        got = await run(session, reference.inputs, half);
      }
      let same = 0;
      let worst = 0;
      for (let i = 0; i < want.length; ++i) {
        if (Math.fround(got[i]) === want[i]) ++same;
        worst = Math.max(worst, Math.abs(got[i] - want[i]));
      }
      console.log(`${name} (${level}, ${mode}): ${same}/${want.length} values are numpy's ` +
                  `bits, largest difference ${worst.toExponential(2)}`);
      const bound = half ? 2e-3 : 1e-6;
      if ((half || (level === 'disabled' && mode === 'row by row')) && worst > bound) {
        throw new Error(`${name} (${level}, ${mode}): differs by ${worst}, over ${bound}`);
      }
    }
  }
}

(async () => {
  for (const name of fs.readdirSync(root).sort()) await check(name);
})().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
