// Reads feature rows written as CSV text: one row per line, numbers
// separated by commas. Blank lines and lines starting with '#' are skipped.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace seqserve {

struct FeatureRows {
  size_t rows = 0;
  size_t width = 0;
  std::vector<float> values;  // rows x width, row-major
  // Empty when every value is a number; else one per value: the text a row
  // gave (a categorical feature's category, its value NaN), or empty.
  std::vector<std::string> categories;
};

// Every row must hold `width` numbers (0: take the first row's width).
// INVALID_ARGUMENT names the line and column of the first bad field;
// `line_word` names what a line is to the user ("line", "row", ...). A row
// of the wrong length is told the columns expected when `column_names`
// has one name per column.
absl::StatusOr<FeatureRows> ParseFeatureRows(absl::string_view text,
                                             size_t width = 0,
                                             absl::string_view line_word = "line",
                                             absl::Span<const std::string> column_names = {});

// The shortest text that reads back as exactly `value` (full precision).
std::string FormatFloat(float value);

}  // namespace seqserve
