#include "serving/output_mode_name.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace seqserve {
namespace {

constexpr absl::string_view kPrefix = "OUTPUT_MODE_";

std::vector<v1::OutputMode> Modes() {
  std::vector<v1::OutputMode> modes;
  for (int i = v1::OutputMode_MIN; i <= v1::OutputMode_MAX; ++i) {
    if (v1::OutputMode_IsValid(i)) modes.push_back(static_cast<v1::OutputMode>(i));
  }
  return modes;
}

}  // namespace

std::string OutputModeName(v1::OutputMode mode) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::OutputMode_Name(mode), kPrefix));
}

std::optional<v1::OutputMode> ParseOutputMode(absl::string_view name) {
  for (v1::OutputMode mode : Modes()) {
    if (name == v1::OutputMode_Name(mode) || name == OutputModeName(mode)) return mode;
  }
  return std::nullopt;
}

std::string OutputModeNames() {
  std::vector<std::string> names;
  for (v1::OutputMode mode : Modes()) names.push_back(OutputModeName(mode));
  return absl::StrJoin(names, ", ");
}

}  // namespace seqserve
