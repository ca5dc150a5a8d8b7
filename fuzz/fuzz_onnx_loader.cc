// Fuzzes the ONNX loader: any bytes either load as a model that answers a
// row with every head it allows, or are refused with a documented status
// whose message starts with the file name. The custom mutator (see
// onnx_mutator.h) edits parsed models at the message level, so mutations
// reach dims, attributes and initializers instead of dying in the parser.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "core/layer.h"
#include "core/onnx_loader.h"
#include "fuzz/fuzz_support.h"
#include "fuzz/onnx_mutator.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  seqserve::UseSingleThreadedBlas();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr absl::string_view kName = "fuzz.onnx";
  auto model = seqserve::ParseOnnxModel(
      absl::string_view(reinterpret_cast<const char*>(data), size), kName);
  if (!model.ok()) {
    seqserve::fuzz::RequireLoaderRefusal(model.status(), kName);
    return 0;
  }
  seqserve::fuzz::ExerciseModel(**model);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size,
                                          size_t max_size, unsigned int seed) {
  return seqserve::fuzz::MutateOnnxModel(data, size, max_size, seed);
}
