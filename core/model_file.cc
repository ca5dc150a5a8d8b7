#include "core/model_file.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/onnx_loader.h"
#include "core/text_loader.h"

namespace seqserve {
namespace {

bool IsTextModelName(const std::string& path) {
  return absl::EndsWith(path, ".textproto") || absl::EndsWith(path, ".pbtxt") ||
         absl::EndsWith(path, ".txtpb");
}

}  // namespace

bool IsModelFileName(const std::string& path) {
  return absl::EndsWith(path, ".onnx") || IsTextModelName(path);
}

absl::StatusOr<std::unique_ptr<Sequential>> LoadModelFile(
    const std::string& path, const ModelLoadOptions& options) {
  if (absl::EndsWith(path, ".onnx")) return LoadOnnxModel(path, options);
  if (IsTextModelName(path)) return LoadTextModel(path, options);
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": unknown model file type; expected .onnx or .textproto"));
}

}  // namespace seqserve
