#!/usr/bin/env node
// Classifies a few animals with seqserve from Node.js, through @grpc/grpc-js.
//   node examples/node/classify.js [host:port] [default|logits|sigmoid|softmax|log_softmax]
//       [--tls_ca_file ca.pem] [--token TOKEN]
// The token defaults to $SEQSERVE_TOKEN, which keeps it out of shell history.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');
const ANIMALS = [['dog', [4, 0, 1]], ['eagle', [2, 1, 0]], ['snake', [0, 1, 0]]];

const definition = protoLoader.loadSync('seqserve/v1/classifier.proto', {
  includeDirs: [PROTO_ROOT],
  enums: String,
  longs: String,
  defaults: true,
});
const { Classifier } = grpc.loadPackageDefinition(definition).seqserve.v1;

function classify(client, model, output, metadata) {
  const request = {
    model,
    features: ANIMALS.flatMap(([, row]) => row),
    rows: ANIMALS.length,
    output: `OUTPUT_MODE_${output.toUpperCase()}`,
  };
  const deadline = new Date(Date.now() + 10000);
  return new Promise((resolve, reject) => {
    client.Classify(request, metadata, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response));
  });
}

async function main() {
  const args = process.argv.slice(2);
  const option = (name) => {
    const at = args.indexOf(name);
    if (at < 0) return undefined;
    const [, value] = args.splice(at, 2);
    return value;
  };
  const caFile = option('--tls_ca_file');
  const token = option('--token') || process.env.SEQSERVE_TOKEN || '';
  const target = args[0] || 'localhost:8500';
  const output = args[1] || 'default';
  const credentials = caFile
    ? grpc.credentials.createSsl(fs.readFileSync(caFile))
    : grpc.credentials.createInsecure();
  const client = new Classifier(target, credentials);
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  try {
    for (const model of ['species', 'mammal']) {
      const response = await classify(client, model, output, metadata);
      console.log(`${response.model} v${response.version} (${response.output})`);
      response.results.forEach((result, i) => {
        const scores = result.scores.map((s) => s.toFixed(6)).join(' ');
        console.log(`  ${ANIMALS[i][0].padEnd(6)} -> ${result.predictedLabel.padEnd(11)} scores ${scores}`);
      });
    }
  } catch (error) {
    console.error(`${error.code}: ${error.details}`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main();
