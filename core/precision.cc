#include "core/precision.h"

namespace seqserve {

const char* PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kInt8:
      return "int8";
  }
  return "?";
}

std::optional<Precision> ParsePrecision(absl::string_view name) {
  for (Precision precision : {Precision::kFp32, Precision::kInt8}) {
    if (name == PrecisionName(precision)) return precision;
  }
  return std::nullopt;
}

}  // namespace seqserve
