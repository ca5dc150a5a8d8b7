// Loads a Sequential model from an ONNX file as torch.onnx.export writes it
// for an nn.Sequential (opsets 9 to 17), using the ONNX project's protobuf
// library and model checker.
//
// Status codes of refusals:
//   NOT_FOUND         the file cannot be opened
//   INVALID_ARGUMENT  not ONNX, truncated, fails the ONNX checker, a graph
//                     that is not a chain, widths that do not line up, a
//                     missing initializer, non-float or NaN/Inf weights
//   UNIMPLEMENTED     valid ONNX using an op, attribute or opset that a
//                     Sequential classifier does not need
// Every message starts with the file name and names the node and op.
#pragma once

#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "core/sequential.h"

namespace seqserve {

// Reads and converts the ONNX model at `path`.
absl::StatusOr<std::unique_ptr<Sequential>> LoadOnnxModel(
    const std::string& path);

// Converts serialized ONNX bytes; `name` prefixes error messages.
absl::StatusOr<std::unique_ptr<Sequential>> ParseOnnxModel(
    absl::string_view bytes, absl::string_view name);

}  // namespace seqserve
