// The arithmetic a model's Linear layers run in. FP32 is the model as
// PyTorch computes it; INT8 quantizes weights per output channel and each
// row's activations on the fly, as ONNX Runtime's quantize_dynamic does
// (core/linear_kernel_isa.h), and answers within a stated accuracy
// rather than PyTorch's bits.
#pragma once

#include <optional>

#include "absl/strings/string_view.h"

namespace seqserve {

enum class Precision { kFp32, kInt8 };

// "fp32", "int8".
const char* PrecisionName(Precision precision);
// The precision `name` spells ("fp32", "int8"); nullopt for anything else.
std::optional<Precision> ParsePrecision(absl::string_view name);

}  // namespace seqserve
