// Loads a Sequential model written by hand in the native text format:
// protobuf text format of seqserve.v1.SequentialModel (proto/.../model.proto).
//
// Status codes of refusals:
//   NOT_FOUND         the file cannot be opened
//   INVALID_ARGUMENT  a syntax error (with line and column), a layer with no
//                     kind, widths that do not chain, NaN/Inf weights
// Every message starts with the file name.
#pragma once

#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "core/file_util.h"
#include "core/sequential.h"

namespace seqserve {

// RESOURCE_EXHAUSTED when the file is larger than options.max_model_bytes.
absl::StatusOr<std::unique_ptr<Sequential>> LoadTextModel(
    const std::string& path, const ModelLoadOptions& options = {});

// Converts text-format contents; `name` prefixes error messages.
absl::StatusOr<std::unique_ptr<Sequential>> ParseTextModel(
    absl::string_view text, absl::string_view name);

}  // namespace seqserve
