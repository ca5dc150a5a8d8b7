#include "serving/output_mode_name.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

std::optional<std::string> WithApiOutputMode(absl::string_view json) {
  auto skip_spaces = [json](size_t at) {
    while (at < json.size() && absl::ascii_isspace(static_cast<unsigned char>(json[at]))) ++at;
    return at;
  };
  int depth = 0;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
    if (c != '"') continue;
    size_t end = i + 1;  // the string's closing quote
    while (end < json.size() && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
    if (end >= json.size()) return std::nullopt;
    const bool output_key = depth == 1 && json.substr(i, end + 1 - i) == "\"output\"";
    i = end;
    if (!output_key) continue;
    size_t value = skip_spaces(end + 1);
    if (value >= json.size() || json[value] != ':') continue;
    value = skip_spaces(value + 1);
    if (value >= json.size() || json[value] != '"') continue;
    const size_t value_end = json.find_first_of("\"\\", value + 1);
    if (value_end == absl::string_view::npos || json[value_end] != '"') continue;
    const auto mode = ParseOutputMode(json.substr(value + 1, value_end - value - 1));
    if (!mode || json.substr(value + 1, value_end - value - 1) == v1::OutputMode_Name(*mode)) {
      continue;
    }
    return absl::StrCat(json.substr(0, value + 1), v1::OutputMode_Name(*mode),
                        json.substr(value_end));
  }
  return std::nullopt;
}

}  // namespace seqserve
