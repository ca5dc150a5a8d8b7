// ONNX Runtime side of bench/compare_engines.py: a long-lived process that
// answers one timing request per input line, so sessions are created once.
//
// Request (one JSON object per line):
//   {"model": PATH, "rows": N, "width": W, "seconds": S}
// Answer (one JSON line): {"ns_per_run": ..., "runs": ...}.
//
// What a run includes: one `await session.run(feeds)` in a loop inside
// Node, so the N-API binding, output tensor allocation and the promise's
// resolution are in it; process start, session creation and the input
// tensor's creation are not. At batch 1 on a small model that overhead is
// most of the time: compare_engines.py also times an Identity graph of one
// value to show it.
'use strict';

const ort = require('onnxruntime-node');
const readline = require('readline');

const sessions = new Map();

async function session(path) {
  if (!sessions.has(path)) {
    sessions.set(path, await ort.InferenceSession.create(path, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    }));
  }
  return sessions.get(path);
}

// Runs until `seconds` have passed, checking the clock every `batch` runs.
async function time(sess, feeds, seconds) {
  for (let i = 0; i < 10; ++i) await sess.run(feeds);
  const budget = BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  let runs = 0;
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 10; ++i) await sess.run(feeds);
    runs += 10;
    elapsed = process.hrtime.bigint() - start;
  }
  return {ns_per_run: Number(elapsed) / runs, runs};
}

async function answer(request) {
  const sess = await session(request.model);
  const name = sess.inputNames[0];
  const width = request.width;
  const values = new Float32Array(request.rows * width);
  for (let i = 0; i < values.length; ++i) values[i] = Math.random();
  const feeds = {[name]: new ort.Tensor('float32', values, [request.rows, width])};
  return time(sess, feeds, request.seconds);
}

async function main() {
  const lines = readline.createInterface({input: process.stdin});
  for await (const line of lines) {
    if (!line.trim()) continue;
    const result = await answer(JSON.parse(line));
    process.stdout.write(JSON.stringify(result) + '\n');
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
