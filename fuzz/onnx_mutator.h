// A libFuzzer custom mutator for ONNX models: parses the bytes as a
// ModelProto and edits it at the message level (dims, ranks, attributes,
// initializers, external data entries, ops, wiring, opsets and IR
// versions), then reserializes. Bytes that do not parse, and one mutation in
// five, go to libFuzzer's own byte mutator (which also uses the dictionary,
// fuzz/onnx.dict).
#pragma once

#include <cstddef>
#include <cstdint>

namespace seqserve::fuzz {

// LLVMFuzzerCustomMutator's contract: mutates data[0, size) in place within
// max_size bytes and returns the new size; deterministic for a given seed.
size_t MutateOnnxModel(uint8_t* data, size_t size, size_t max_size,
                       unsigned int seed);

}  // namespace seqserve::fuzz
