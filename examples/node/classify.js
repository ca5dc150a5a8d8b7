#!/usr/bin/env node
// Classifies a few animals with seqserve from Node.js, through @grpc/grpc-js.
//   node examples/node/classify.js [host:port] [default|logits|sigmoid|softmax|log_softmax]
'use strict';

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

function classify(client, model, output) {
  const request = {
    model,
    features: ANIMALS.flatMap(([, row]) => row),
    rows: ANIMALS.length,
    output: `OUTPUT_MODE_${output.toUpperCase()}`,
  };
  const deadline = new Date(Date.now() + 10000);
  return new Promise((resolve, reject) => {
    client.Classify(request, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response));
  });
}

async function main() {
  const target = process.argv[2] || 'localhost:8500';
  const output = process.argv[3] || 'default';
  const client = new Classifier(target, grpc.credentials.createInsecure());
  try {
    for (const model of ['species', 'mammal']) {
      const response = await classify(client, model, output);
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
