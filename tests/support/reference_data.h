// Reads the PyTorch reference set in tests/data/reference/ for the tests.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace seqserve::testing {

// One reference model: its file and PyTorch's numbers for its inputs.
struct ReferenceCase {
  std::string name;
  std::string onnx_path;
  size_t rows = 0;
  size_t input_width = 0;
  size_t output_width = 0;
  std::vector<float> inputs;  // rows x input_width
  std::vector<float> logits;  // rows x output_width, and the same below
  std::vector<float> sigmoid;
  std::vector<float> softmax;
  std::vector<float> log_softmax;  // empty when the file has none
  std::vector<float> output;
  std::vector<std::string> labels;
  std::vector<std::string> layers;
};

// The directory holding the reference files.
std::string ReferenceDir();

// Names of every reference model ("mammal", "species", ...).
std::vector<std::string> ReferenceNames();

// Parses NAME.json beside NAME.onnx, or, for a folder such as
// modern/species_o20_static, its reference.json beside model.onnx.
absl::StatusOr<ReferenceCase> LoadReference(const std::string& name);

// The tolerance the reference set asks for: 1e-5 relative plus 1e-6 absolute.
bool CloseToReference(float actual, float expected);

// Index of the first value not close to `expected`, or -1 when all match;
// 0 when the sizes differ.
long FirstMismatch(absl::Span<const float> actual,
                   absl::Span<const float> expected);

}  // namespace seqserve::testing
