#include "cmd/classification_format.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/feature_rows.h"
#include "google/protobuf/util/json_util.h"
#include "serving/output_mode_name.h"

namespace seqserve {
namespace {

std::string NameOf(const ScoredLabel& entry) {
  return entry.label.empty() ? absl::StrCat(entry.index) : entry.label;
}

// label:score;label:score, full precision.
std::string CsvScored(const std::vector<ScoredLabel>& entries) {
  std::vector<std::string> items;
  for (const auto& e : entries) {
    items.push_back(absl::StrCat(NameOf(e), ":", FormatFloat(e.score)));
  }
  return CsvField(absl::StrJoin(items, ";"));
}

std::string PredictedText(const RowPrediction& row) {
  return row.predicted_label.empty() ? absl::StrCat(row.predicted_index)
                                     : row.predicted_label;
}

size_t ScoreWidth(const Classification& result) {
  return result.rows.empty() ? 0 : result.rows[0].scores.size();
}

// Multi-output sigmoid answers list the classes over the threshold, even
// when a row has none.
bool HasPositiveColumn(const Classification& result) {
  return result.output == v1::OUTPUT_MODE_SIGMOID && ScoreWidth(result) > 1;
}

bool HasTopKColumn(const Classification& result) {
  return !result.rows.empty() && !result.rows[0].top_k.empty();
}

// Lines without the padding after their last column.
std::string WithoutTrailingSpaces(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  for (absl::string_view& line : lines) line = absl::StripTrailingAsciiWhitespace(line);
  return absl::StrJoin(lines, "\n");
}

std::string FormatTable(const Classification& result,
                        const std::vector<std::string>& labels) {
  const auto names = ScoreColumnNames(labels, ScoreWidth(result));
  std::string out = absl::StrFormat("%-5s %-16s %-12s", "row", "predicted", "score");
  for (const auto& name : names) absl::StrAppendFormat(&out, " %-12s", name);
  out += "\n";
  for (size_t r = 0; r < result.rows.size(); ++r) {
    const RowPrediction& row = result.rows[r];
    absl::StrAppendFormat(&out, "%-5d %-16s %-12.6g", r, PredictedText(row), row.score);
    for (float v : row.scores) absl::StrAppendFormat(&out, " %-12.6g", v);
    if (HasPositiveColumn(result)) {
      std::vector<std::string> positive;
      for (const auto& p : row.positive) positive.push_back(NameOf(p));
      absl::StrAppend(&out, "  positive: ", absl::StrJoin(positive, ","));
    }
    if (!row.top_k.empty()) {
      std::vector<std::string> top;
      for (const auto& t : row.top_k) {
        top.push_back(absl::StrFormat("%s=%.6g", NameOf(t), t.score));
      }
      absl::StrAppend(&out, "  top: ", absl::StrJoin(top, " "));
    }
    out += "\n";
  }
  return WithoutTrailingSpaces(out);
}

std::string FormatCsv(const Classification& result,
                      const std::vector<std::string>& labels) {
  std::vector<std::string> header = {"row", "predicted_index", "predicted_label"};
  for (const auto& name : ScoreColumnNames(labels, ScoreWidth(result))) {
    header.push_back(CsvField(name));
  }
  const bool top_k = HasTopKColumn(result);
  const bool positive = HasPositiveColumn(result);
  if (top_k) header.push_back("top_k");
  if (positive) header.push_back("positive");
  std::string out = absl::StrCat(absl::StrJoin(header, ","), "\n");
  for (size_t r = 0; r < result.rows.size(); ++r) {
    const RowPrediction& row = result.rows[r];
    std::vector<std::string> fields = {absl::StrCat(r), absl::StrCat(row.predicted_index),
                                       CsvField(row.predicted_label)};
    for (float v : row.scores) fields.push_back(FormatFloat(v));
    if (top_k) fields.push_back(CsvScored(row.top_k));
    if (positive) fields.push_back(CsvScored(row.positive));
    absl::StrAppend(&out, absl::StrJoin(fields, ","), "\n");
  }
  return out;
}

void AddScored(const std::vector<ScoredLabel>& entries,
               google::protobuf::RepeatedPtrField<v1::ScoredClass>* to) {
  for (const ScoredLabel& entry : entries) {
    v1::ScoredClass* scored = to->Add();
    scored->set_index(entry.index);
    scored->set_label(entry.label);
    scored->set_score(entry.score);
  }
}

// The ClassifyResponse, as the REST API answers it.
absl::StatusOr<std::string> FormatJson(const Classification& result) {
  v1::ClassifyResponse response;
  response.set_model(result.model);
  response.set_version(result.version);
  response.set_output(result.output);
  for (const RowPrediction& row : result.rows) {
    v1::RowResult* out = response.add_results();
    out->mutable_scores()->Assign(row.scores.begin(), row.scores.end());
    out->set_predicted_index(row.predicted_index);
    out->set_predicted_label(row.predicted_label);
    AddScored(row.positive, out->mutable_positive());
    AddScored(row.top_k, out->mutable_top_k());
    out->set_score(row.score);
  }
  return ApiJson(response);
}

}  // namespace

absl::StatusOr<std::string> ApiJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  if (auto printed = google::protobuf::util::MessageToJsonString(message, &text, options);
      !printed.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot print the answer as JSON: ", printed.message().as_string()));
  }
  return text + "\n";
}

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "csv") return OutputFormat::kCsv;
  if (name == "json") return OutputFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --format '", name, "' (table, csv or json)"));
}

std::string OutputModeShortName(v1::OutputMode mode) { return OutputModeName(mode); }

absl::StatusOr<v1::OutputMode> ParseOutputModeShortName(absl::string_view name) {
  if (auto mode = ParseOutputMode(name)) return *mode;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --output '", name, "' (", OutputModeNames(), ")"));
}

absl::StatusOr<std::string> FormatClassification(const Classification& result,
                                 const std::vector<std::string>& labels,
                                 OutputFormat format) {
  switch (format) {
    case OutputFormat::kCsv:
      return FormatCsv(result, labels);
    case OutputFormat::kJson:
      return FormatJson(result);
    case OutputFormat::kTable:
      break;
  }
  return FormatTable(result, labels);
}

std::vector<std::string> ScoreColumnNames(const std::vector<std::string>& labels,
                                          size_t width) {
  // A binary model's one score is its positive class's.
  if (width == 1 && labels.size() == 2) return {labels[1]};
  std::vector<std::string> names;
  for (size_t i = 0; i < width; ++i) {
    names.push_back(labels.size() == width ? labels[i] : absl::StrCat("score_", i));
  }
  return names;
}

std::string CsvField(absl::string_view text) {
  if (text.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace seqserve
