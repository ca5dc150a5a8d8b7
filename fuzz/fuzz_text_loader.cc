// Fuzzes the native text model loader: any bytes either load as a model that
// answers a row with every head it allows, or are refused with a documented
// status whose message starts with the file name.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "core/text_loader.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr absl::string_view kName = "fuzz.textproto";
  auto model = seqserve::ParseTextModel(
      absl::string_view(reinterpret_cast<const char*>(data), size), kName);
  if (!model.ok()) {
    seqserve::fuzz::RequireLoaderRefusal(model.status(), kName);
    return 0;
  }
  seqserve::fuzz::ExerciseModel(**model);
  return 0;
}
