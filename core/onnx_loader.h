// Loads a Sequential model from an ONNX file as torch.onnx.export writes it
// for an nn.Sequential: opsets 7 to 23, IR versions 3 to 11, weights inside
// the file or beside it as external data (model.onnx.data). Uses the ONNX
// project's protobuf library; its checker runs on the models within its
// range (IR 8, opset 17), seqserve's own structural checks on all.
//
// Status codes of refusals:
//   NOT_FOUND         the file cannot be opened
//   INVALID_ARGUMENT  not ONNX, truncated, fails the ONNX checker, a graph
//                     that is not a chain, widths that do not line up, a
//                     missing initializer, non-float or NaN/Inf weights
//   UNIMPLEMENTED     valid ONNX using an op, attribute or opset that a
//                     Sequential classifier does not need
//   RESOURCE_EXHAUSTED  the graph and its data files are larger than
//                     ModelLoadOptions::max_model_bytes (sizes on disk,
//                     checked before reading)
// Every message starts with the file name and names the node and op.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "core/file_util.h"
#include "core/sequential.h"

namespace seqserve {

// Reads and converts the ONNX model at `path`.
absl::StatusOr<std::unique_ptr<Sequential>> LoadOnnxModel(
    const std::string& path, const ModelLoadOptions& options = {});

// Converts serialized ONNX bytes; `name` prefixes error messages. External
// data is read from files in `base_dir` only (never outside it, through
// `..`, an absolute path or a symlink); empty refuses external data. The
// data files together may hold at most `max_data_bytes` bytes on disk.
absl::StatusOr<std::unique_ptr<Sequential>> ParseOnnxModel(
    absl::string_view bytes, absl::string_view name, const std::string& base_dir = "",
    uint64_t max_data_bytes = UINT64_MAX);

}  // namespace seqserve
