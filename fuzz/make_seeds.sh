#!/usr/bin/env bash
# Regenerates the binary seeds in fuzz/corpus/ from what the repository
# already holds: the reference ONNX files (in both export forms), and the
# text-format sources in fuzz/seeds/ (ONNX models and ClassifyRequests)
# encoded with protoc.
# The text targets' seeds are plain files kept in fuzz/corpus/ by hand.
# Needs protoc (protobuf-compiler) and libonnx-dev's onnx.proto.
set -euo pipefail
cd "$(dirname "$0")/.."

onnx_dir=fuzz/corpus/fuzz_onnx_loader
request_dir=fuzz/corpus/fuzz_classify_request
mkdir -p "$onnx_dir" "$request_dir"

for model in tests/data/reference/*.onnx; do
  cp "$model" "$onnx_dir/reference_$(basename "$model")"
done
cp models/species/1/model.onnx "$onnx_dir/models_species.onnx"
# Today's exporter's form (external data, which the fuzzer's fixture
# directory stands in for).
for model in tests/data/reference/modern/*/model.onnx; do
  cp "$model" "$onnx_dir/modern_$(basename "$(dirname "$model")").onnx"
done
# Every layer in both export forms (tests/data/make_layer_models.py).
for model in tests/data/reference/layers/*/model.onnx; do
  cp "$model" "$onnx_dir/layers_$(basename "$(dirname "$model")").onnx"
done
for source in fuzz/seeds/*.onnx.txtpb; do
  protoc --encode=onnx.ModelProto -I /usr/include onnx/onnx.proto \
    < "$source" > "$onnx_dir/$(basename "$source" .txtpb)"
done
for source in fuzz/seeds/*.request.txtpb; do
  protoc --encode=seqserve.v1.ClassifyRequest -I proto seqserve/v1/classifier.proto \
    < "$source" > "$request_dir/$(basename "$source" .request.txtpb).pb"
done
du -sh fuzz/corpus
