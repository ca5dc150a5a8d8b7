// Picks the loader for a model file by its extension.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/file_util.h"
#include "core/sequential.h"

namespace seqserve {

// ".onnx" loads ONNX; ".textproto", ".pbtxt" and ".txtpb" load the native
// text format. Any other name is INVALID_ARGUMENT.
absl::StatusOr<std::unique_ptr<Sequential>> LoadModelFile(
    const std::string& path, const ModelLoadOptions& options = {});

// True when LoadModelFile knows the file's extension.
bool IsModelFileName(const std::string& path);

}  // namespace seqserve
