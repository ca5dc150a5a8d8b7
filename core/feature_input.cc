#include "core/feature_input.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace seqserve {
namespace {

bool Skipped(absl::string_view line) { return line.empty() || line.front() == '#'; }

// The first line that holds data, stripped, and its 1-based number; 0 when
// there is none.
size_t FirstDataLine(absl::string_view text, absl::string_view* first) {
  size_t number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (!Skipped(line)) {
      *first = line;
      return number;
    }
  }
  return 0;
}

std::string Unquote(absl::string_view field) {
  field = absl::StripAsciiWhitespace(field);
  if (field.size() >= 2 && field.front() == '"' && field.back() == '"') {
    field = field.substr(1, field.size() - 2);
  }
  return std::string(field);
}

// The value as a float, or nullopt when it is not a number or overflows one.
std::optional<float> FiniteFloat(const nlohmann::json& value) {
  if (!value.is_number()) return std::nullopt;
  const float f = static_cast<float>(value.get<double>());
  if (!std::isfinite(f)) return std::nullopt;
  return f;
}

bool IsHeader(absl::string_view line) {
  for (absl::string_view field : absl::StrSplit(line, ',')) {
    float value;
    if (!absl::SimpleAtof(absl::StripAsciiWhitespace(field), &value)) return true;
  }
  return false;
}

std::string Quoted(const std::vector<std::string>& names) {
  std::vector<std::string> quoted;
  for (const auto& name : names) quoted.push_back(absl::StrCat("'", name, "'"));
  return absl::StrJoin(quoted, ", ");
}

// pandas' to_csv() writes its index first, under an empty name.
bool IsPandasIndex(const std::vector<std::string>& header) {
  return header.size() > 1 && header[0].empty();
}

// For each header column, the model input it feeds (-1: pandas' index).
absl::StatusOr<std::vector<int>> MatchHeader(const std::vector<std::string>& header,
                                             const FeatureInputOptions& options,
                                             size_t line_number) {
  std::map<std::string, int> position;
  for (size_t i = 0; i < options.feature_names.size(); ++i) {
    position[options.feature_names[i]] = static_cast<int>(i);
  }
  std::vector<int> targets;
  std::vector<std::string> unknown;
  std::vector<bool> seen(options.feature_names.size(), false);
  for (size_t column = 0; column < header.size(); ++column) {
    const std::string& name = header[column];
    if (column == 0 && IsPandasIndex(header)) {
      targets.push_back(-1);
      continue;
    }
    auto it = position.find(name);
    if (it == position.end()) {
      unknown.push_back(name);
      continue;
    }
    if (seen[it->second]) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.line_word, " ", line_number, ": header names column '", name, "' twice"));
    }
    seen[it->second] = true;
    targets.push_back(it->second);
  }
  std::vector<std::string> missing;
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) missing.push_back(options.feature_names[i]);
  }
  if (!unknown.empty() || !missing.empty()) {
    std::vector<std::string> problems;
    if (!unknown.empty()) {
      problems.push_back(absl::StrCat("unknown column", unknown.size() > 1 ? "s " : " ",
                                      Quoted(unknown)));
    }
    if (!missing.empty()) {
      problems.push_back(absl::StrCat("missing column", missing.size() > 1 ? "s " : " ",
                                      Quoted(missing)));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        options.line_word, " ", line_number, ": header has ", absl::StrJoin(problems, " and "),
        "; the model takes ", absl::StrJoin(options.feature_names, ",")));
  }
  return targets;
}

// Without the model's feature names the columns are its inputs in order,
// after pandas' index when there is one.
absl::StatusOr<std::vector<int>> ColumnsInOrder(const std::vector<std::string>& header,
                                                const FeatureInputOptions& options,
                                                size_t line_number) {
  const bool index = IsPandasIndex(header);
  const std::vector<std::string> features(header.begin() + (index ? 1 : 0), header.end());
  if (options.width != 0 && features.size() != options.width) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.line_word, " ", line_number, ": header has ", features.size(), " columns",
        index ? " after pandas' index" : "", " (", Quoted(features), "), the model takes ",
        options.width, " features"));
  }
  std::vector<int> targets;
  if (index) targets.push_back(-1);
  for (size_t i = 0; i < features.size(); ++i) targets.push_back(static_cast<int>(i));
  return targets;
}

absl::StatusOr<FeatureRows> ParseCsvWithHeader(absl::string_view text, size_t header_line,
                                               absl::string_view header_text,
                                               const FeatureInputOptions& options) {
  std::vector<std::string> header;
  for (absl::string_view field : absl::StrSplit(header_text, ',')) {
    header.push_back(Unquote(field));
  }
  auto targets = options.feature_names.empty() ? ColumnsInOrder(header, options, header_line)
                                               : MatchHeader(header, options, header_line);
  if (!targets.ok()) return targets.status();
  // The rows are parsed in place, with the header blanked, so every error
  // names the line of the file; a row of the wrong length is told the
  // header's columns.
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  lines[header_line - 1] = "";
  const std::string body = absl::StrJoin(lines, "\n");
  auto rows = ParseFeatureRows(body, header.size(), options.line_word, header);
  if (!rows.ok()) return rows.status();
  FeatureRows ordered;
  ordered.rows = rows->rows;
  ordered.width = static_cast<size_t>(std::count_if(
      targets->begin(), targets->end(), [](int target) { return target >= 0; }));
  ordered.values.resize(ordered.rows * ordered.width);
  for (size_t r = 0; r < rows->rows; ++r) {
    for (size_t c = 0; c < header.size(); ++c) {
      if ((*targets)[c] < 0) continue;
      ordered.values[r * ordered.width + (*targets)[c]] = rows->values[r * header.size() + c];
    }
  }
  return ordered;
}

absl::Status JsonError(const FeatureInputOptions& options, size_t line_number,
                       absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(options.line_word, " ", line_number, ": ", what));
}

absl::StatusOr<FeatureRows> ParseJsonLines(absl::string_view text,
                                           const FeatureInputOptions& options) {
  FeatureRows result;
  result.width = options.width ? options.width : options.feature_names.size();
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < options.feature_names.size(); ++i) {
    position[options.feature_names[i]] = i;
  }
  size_t line_number = 0;
  bool with_text = false;  // some row gave text: categories are kept
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (Skipped(line)) continue;
    const nlohmann::json row = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (row.is_discarded() || !row.is_object()) {
      return JsonError(options, line_number, "not a JSON object");
    }
    std::vector<float> values;
    std::vector<std::string> texts;  // by name: each value's category, if text
    if (row.contains("features")) {
      if (row.size() != 1 || !row["features"].is_array()) {
        return JsonError(options, line_number,
                         "\"features\" must be the object's only key, holding an array");
      }
      for (const auto& value : row["features"]) {
        const std::optional<float> f = FiniteFloat(value);
        if (!f) {
          return JsonError(options, line_number,
                           absl::StrCat("feature ", values.size(), " is not a finite number"));
        }
        values.push_back(*f);
      }
    } else {
      if (options.feature_names.empty()) {
        return JsonError(options, line_number,
                         "features by name need the model's feature_names (its config "
                         "gives none); write {\"features\": [...]}");
      }
      values.assign(options.feature_names.size(), 0.0f);
      texts.assign(values.size(), std::string());
      std::vector<bool> seen(values.size(), false);
      std::vector<std::string> unknown;
      for (const auto& [name, value] : row.items()) {
        auto it = position.find(name);
        if (it == position.end()) {
          unknown.push_back(name);
          continue;
        }
        seen[it->second] = true;
        // Text is a category and null a missing value, for the model's
        // preprocessing to read (or refuse).
        if (value.is_string() || value.is_null()) {
          values[it->second] = std::nanf("");
          if (value.is_string()) texts[it->second] = value.get<std::string>();
          continue;
        }
        const std::optional<float> f = FiniteFloat(value);
        if (!f) {
          return JsonError(options, line_number,
                           absl::StrCat("'", name, "' is not a finite number, text or null"));
        }
        values[it->second] = *f;
      }
      std::vector<std::string> missing;
      for (size_t i = 0; i < seen.size(); ++i) {
        if (!seen[i]) missing.push_back(options.feature_names[i]);
      }
      if (!unknown.empty() || !missing.empty()) {
        std::vector<std::string> problems;
        if (!unknown.empty()) problems.push_back("unknown " + Quoted(unknown));
        if (!missing.empty()) problems.push_back("missing " + Quoted(missing));
        return JsonError(options, line_number,
                         absl::StrCat("features ", absl::StrJoin(problems, " and "),
                                      "; the model takes ",
                                      absl::StrJoin(options.feature_names, ",")));
      }
    }
    if (result.width == 0) result.width = values.size();
    if (values.size() != result.width) {
      return JsonError(options, line_number,
                       absl::StrCat("has ", values.size(), " values, expected ", result.width));
    }
    const bool has_text = std::any_of(texts.begin(), texts.end(),
                                      [](const std::string& t) { return !t.empty(); });
    if (has_text && !with_text) {
      with_text = true;
      result.categories.resize(result.values.size());  // the rows before: numbers only
    }
    if (with_text) {
      texts.resize(values.size());
      result.categories.insert(result.categories.end(), texts.begin(), texts.end());
    }
    result.values.insert(result.values.end(), values.begin(), values.end());
    ++result.rows;
  }
  return result;
}

}  // namespace

bool InputNamesFeatures(absl::string_view text) {
  absl::string_view first;
  if (FirstDataLine(text, &first) == 0) return false;
  if (first.front() != '{') return IsHeader(first);
  // JSON Lines may give any row by name.
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (Skipped(line)) continue;
    const nlohmann::json row = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (row.is_object() && !row.contains("features")) return true;
  }
  return false;
}

absl::StatusOr<FeatureRows> ParseFeatureInput(absl::string_view text,
                                              const FeatureInputOptions& options) {
  absl::string_view first;
  const size_t first_line = FirstDataLine(text, &first);
  if (first_line == 0) return absl::InvalidArgumentError("no feature rows given");
  absl::StatusOr<FeatureRows> rows =
      first.front() == '{'  ? ParseJsonLines(text, options)
      : IsHeader(first)     ? ParseCsvWithHeader(text, first_line, first, options)
                            : ParseFeatureRows(text, options.width, options.line_word,
                                               options.feature_names);
  if (rows.ok() && rows->rows == 0) return absl::InvalidArgumentError("no feature rows given");
  return rows;
}

}  // namespace seqserve
