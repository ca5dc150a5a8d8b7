#include "core/feature_rows.h"

#include <charconv>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace seqserve {

absl::StatusOr<FeatureRows> ParseFeatureRows(absl::string_view text,
                                             size_t width,
                                             absl::string_view line_word,
                                             absl::Span<const std::string> column_names) {
  FeatureRows result;
  result.width = width;
  size_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    size_t column = 0;
    for (absl::string_view field : absl::StrSplit(line, ',')) {
      ++column;
      field = absl::StripAsciiWhitespace(field);
      float value;
      if (!absl::SimpleAtof(field, &value) || !std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat(line_word, " ", line_number, " column ", column, ": '",
                         field, "' is not a finite number"));
      }
      result.values.push_back(value);
    }
    if (result.width == 0) result.width = column;
    if (column != result.width) {
      return absl::InvalidArgumentError(absl::StrCat(
          line_word, " ", line_number, " has ", column, " values, expected ", result.width,
          column_names.size() == result.width
              ? absl::StrCat(" ('", absl::StrJoin(column_names, "', '"), "')")
              : ""));
    }
    ++result.rows;
  }
  return result;
}

std::string FormatFloat(float value) {
  char buffer[32];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

}  // namespace seqserve
