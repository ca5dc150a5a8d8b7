// Reads the feature rows people have at hand, in the forms the tools
// accept on --input, on stdin or as arguments:
//   - CSV of numbers, one row per line;
//   - CSV whose first line is a header (told apart by a field that is not a
//     number), as pandas writes it; an unnamed first column (pandas' index)
//     is skipped; with the model's feature names the other columns are
//     matched by name in any order, without them taken in order;
//   - JSON Lines (the first line starts with '{'): {"features": [...]} or
//     {"name": value, ...} per row; by name a value may be text (a
//     category: FeatureRows::categories) or null (missing: NaN), which the
//     model's preprocessing reads.
// Blank lines and lines starting with '#' are skipped in every form.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/feature_rows.h"

namespace seqserve {

struct FeatureInputOptions {
  // The model's feature names, in its input order; empty when its config
  // gives none (then a header is skipped and columns are taken in order).
  std::vector<std::string> feature_names;
  // Values per row (0: the first row's count).
  size_t width = 0;
  // What a line is to the user: "line", "rows.csv line", "stdin line".
  std::string line_word = "line";
};

// Whether reading `text` needs the model's feature names: its columns are
// named (a CSV header row, JSON Lines by name).
bool InputNamesFeatures(absl::string_view text);

// INVALID_ARGUMENT naming the line (and column or name) of the first
// problem: a bad number, a header column the model does not take or one
// it lacks, malformed JSON, or no rows at all.
absl::StatusOr<FeatureRows> ParseFeatureInput(absl::string_view text,
                                              const FeatureInputOptions& options);

}  // namespace seqserve
