// Fuzzes the ONNX loader: any bytes either load as a model that answers a
// row with every head it allows, or are refused with a documented status
// whose message starts with the file name. The custom mutator (see
// onnx_mutator.h) edits parsed models at the message level, so mutations
// reach dims, attributes, initializers and external data instead of dying
// in the parser.
//
// External data is read from a fixture directory made at start-up (and
// removed at a normal exit): model.onnx.data (64 KiB of finite floats, so
// the exporter's own offsets in the modern seeds resolve), a symlink to it,
// a symlink that leads outside, a 3-byte file and a subdirectory.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/onnx_loader.h"
#include "fuzz/fuzz_support.h"
#include "fuzz/onnx_mutator.h"

namespace {

std::string& FixtureDir() {
  static std::string* const dir = new std::string;
  return *dir;
}

void RemoveFixtureDir() {
  std::error_code ignored;
  std::filesystem::remove_all(FixtureDir(), ignored);
}

void MakeFixtureDir() {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "seqserve_fuzz_onnx.XXXXXX").string();
  seqserve::fuzz::Require(mkdtemp(pattern.data()) != nullptr,
                          "cannot make the external data directory");
  FixtureDir() = pattern;
  std::atexit(RemoveFixtureDir);
  const fs::path dir(pattern);
  std::vector<float> values(16384);
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = static_cast<float>(static_cast<int>(i * 37 % 17) - 8) * 0.125f;
  }
  std::ofstream(dir / "model.onnx.data", std::ios::binary)
      .write(reinterpret_cast<const char*>(values.data()),
             static_cast<std::streamsize>(values.size() * sizeof(float)));
  std::ofstream(dir / "short.bin", std::ios::binary) << "abc";
  fs::create_symlink("model.onnx.data", dir / "link_in");
  fs::create_symlink("/etc", dir / "link_out");
  fs::create_directory(dir / "sub");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  MakeFixtureDir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr absl::string_view kName = "fuzz.onnx";
  auto model = seqserve::ParseOnnxModel(
      absl::string_view(reinterpret_cast<const char*>(data), size), kName,
      FixtureDir());
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
