#include "tests/support/reference_data.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace seqserve::testing {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;

// Appends a list of rows of numbers; returns the row width.
absl::StatusOr<size_t> AppendRows(const Struct& json, const std::string& key,
                                  std::vector<float>* out) {
  auto it = json.fields().find(key);
  if (it == json.fields().end()) {
    return absl::NotFoundError(absl::StrCat("no key ", key));
  }
  size_t width = 0;
  for (const auto& row : it->second.list_value().values()) {
    width = row.list_value().values_size();
    for (const auto& value : row.list_value().values()) {
      out->push_back(static_cast<float>(value.number_value()));
    }
  }
  return width;
}

std::vector<std::string> Strings(const Struct& json, const std::string& key) {
  std::vector<std::string> out;
  auto it = json.fields().find(key);
  if (it == json.fields().end()) return out;
  for (const auto& value : it->second.list_value().values()) {
    out.push_back(value.string_value());
  }
  return out;
}

}  // namespace

std::string ReferenceDir() { return SEQSERVE_TEST_DATA_DIR "/reference"; }

std::vector<std::string> ReferenceNames() {
  return {"mammal",           "species",        "deep_tanh_leaky_elu",
          "multilabel_logits", "extreme_logits", "opset17_binary_softmax",
          // Wide enough for the packed kernel (tests/data/make_packed_models.py).
          "packed/wide_relu", "packed/wide_bn_mixed"};
}

absl::StatusOr<ReferenceCase> LoadReference(const std::string& name) {
  // A folder (modern/NAME) holds model.onnx, its data and reference.json.
  const bool folder = std::filesystem::is_directory(absl::StrCat(ReferenceDir(), "/", name));
  const std::string json_path = folder ? absl::StrCat(ReferenceDir(), "/", name, "/reference.json")
                                       : absl::StrCat(ReferenceDir(), "/", name, ".json");
  std::ifstream in(json_path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", json_path));
  std::stringstream text;
  text << in.rdbuf();
  Struct json;
  auto parsed = google::protobuf::util::JsonStringToMessage(text.str(), &json);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(json_path, ": ", parsed.ToString()));
  }
  ReferenceCase reference;
  reference.name = name;
  reference.onnx_path = folder ? absl::StrCat(ReferenceDir(), "/", name, "/model.onnx")
                               : absl::StrCat(ReferenceDir(), "/", name, ".onnx");
  auto input_width = AppendRows(json, "inputs", &reference.inputs);
  if (!input_width.ok()) return input_width.status();
  reference.input_width = *input_width;
  reference.rows = reference.inputs.size() / reference.input_width;
  for (auto [key, values] :
       {std::pair{"logits", &reference.logits},
        std::pair{"sigmoid", &reference.sigmoid},
        std::pair{"softmax", &reference.softmax},
        std::pair{"output", &reference.output}}) {
    auto width = AppendRows(json, key, values);
    if (!width.ok()) return width.status();
    reference.output_width = *width;
  }
  if (json.fields().count("log_softmax") > 0) {
    auto width = AppendRows(json, "log_softmax", &reference.log_softmax);
    if (!width.ok()) return width.status();
  }
  reference.labels = Strings(json, "labels");
  reference.layers = Strings(json, "layers");
  return reference;
}

bool CloseToReference(float actual, float expected) {
  return std::fabs(actual - expected) <= 1e-6f + 1e-5f * std::fabs(expected);
}

long FirstMismatch(absl::Span<const float> actual,
                   absl::Span<const float> expected) {
  if (actual.size() != expected.size()) return 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!CloseToReference(actual[i], expected[i])) return static_cast<long>(i);
  }
  return -1;
}

}  // namespace seqserve::testing
