#!/usr/bin/env node
// Classifies feature rows with seqserve from Node.js, through @grpc/grpc-js.
//   node examples/node/classify.js --model species [--target host:port]
//       [--output default|logits|sigmoid|softmax|log_softmax] [--version N]
//       [--tls_ca_file ca.pem] [--token TOKEN] [ROW ...]
// Rows are arguments ("4,0,1 2,1,0") or, without any, lines of stdin.
// The token defaults to $SEQSERVE_TOKEN, which keeps it out of shell history.
// A failed call prints its status code's name and message and exits 1.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');
const OUTPUTS = ['default', 'logits', 'sigmoid', 'softmax', 'log_softmax'];

const definition = protoLoader.loadSync('seqserve/v1/classifier.proto', {
  includeDirs: [PROTO_ROOT],
  enums: String,
  longs: String,
  defaults: true,
});
const { Classifier } = grpc.loadPackageDefinition(definition).seqserve.v1;

// grpc.status maps names to numbers: the name of a number.
function codeName(code) {
  return Object.keys(grpc.status).find((name) => grpc.status[name] === code) || String(code);
}

// Feature rows from 'a,b,c' texts; blank lines and '#' comments skipped.
function parseRows(lines) {
  const rows = [];
  lines.forEach((line, i) => {
    const text = line.trim();
    if (!text || text.startsWith('#')) return;
    const row = text.split(',').map(Number);
    if (row.some((value) => !Number.isFinite(value))) {
      throw new Error(`row ${i + 1}: '${text}' is not comma-separated numbers`);
    }
    rows.push(row);
  });
  if (rows.length === 0) throw new Error('no feature rows given (as arguments or on stdin)');
  if (rows.some((row) => row.length !== rows[0].length)) {
    throw new Error('rows have different numbers of features');
  }
  return rows;
}

function classify(client, request, metadata) {
  const deadline = new Date(Date.now() + 10000);
  return new Promise((resolve, reject) => {
    client.Classify(request, metadata, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response));
  });
}

async function main() {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const at = args.indexOf(name);
    if (at < 0) return fallback;
    const [, value] = args.splice(at, 2);
    return value;
  };
  const model = option('--model');
  const target = option('--target', 'localhost:8500');
  const output = option('--output', 'default');
  const version = option('--version', '0');
  const caFile = option('--tls_ca_file');
  const token = option('--token') || process.env.SEQSERVE_TOKEN || '';
  if (!model) throw new Error('--model is required');
  if (!OUTPUTS.includes(output)) throw new Error(`--output is one of ${OUTPUTS.join(', ')}`);
  const rows = parseRows(args.length ? args : fs.readFileSync(0, 'utf8').split('\n'));

  const credentials = caFile
    ? grpc.credentials.createSsl(fs.readFileSync(caFile))
    : grpc.credentials.createInsecure();
  const client = new Classifier(target, credentials);
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  try {
    const response = await classify(client, {
      model,
      version,
      features: rows.flat(),
      rows: rows.length,
      output: `OUTPUT_MODE_${output.toUpperCase()}`,
    }, metadata);
    // The mode as seqserve prints it: "softmax" for OUTPUT_MODE_SOFTMAX.
    const mode = String(response.output).replace(/^OUTPUT_MODE_/, '').toLowerCase();
    console.log(`${response.model} v${response.version} (${mode})`);
    response.results.forEach((result, i) => {
      const scores = result.scores.map((s) => s.toFixed(6)).join(' ');
      const predicted = result.predictedLabel || result.predictedIndex;
      console.log(`  ${rows[i].join(',')} -> ${predicted} scores ${scores}`);
    });
  } catch (error) {
    console.error(`${codeName(error.code)}: ${error.details}`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main().catch((error) => {
  console.error(error.message);
  process.exitCode = 2;
});
