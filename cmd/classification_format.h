// How the command-line tools print a Classification: a table for people,
// CSV and JSON for scripts. seqclient (answers from a server) and seqmodel
// (answers from a model file) both print through here, so the same rows
// read the same from either.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "client/seqserve_client.h"

namespace seqserve {

enum class OutputFormat { kTable, kCsv, kJson };

// "table", "csv" or "json"; INVALID_ARGUMENT naming the value and the
// valid ones otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name);

// The name the tools print for an output mode: "default", "logits",
// "sigmoid", "softmax" or "log_softmax" (serving's OutputModeName).
std::string OutputModeShortName(v1::OutputMode mode);
// What --output takes: either spelling, "softmax" or "OUTPUT_MODE_SOFTMAX"
// (serving's ParseOutputMode); INVALID_ARGUMENT naming the valid names.
absl::StatusOr<v1::OutputMode> ParseOutputModeShortName(absl::string_view name);

// `labels` are the model's labels from its config; a score column is named
// by its label when there is one label per score (a binary model's one
// score by the second of two labels, its positive class), else score_<i>.
//
// table: aligned columns: row, predicted label, its score (the server's:
//   for a binary model the predicted class's, 1 - p or p), then every
//   score; then "positive:" and "top:" lists when the answer has them.
// csv: RFC 4180. The header row is row,predicted_index,predicted_label,
//   then one column per score (full float precision), then a top_k column
//   when top-k was asked for and a positive column for multi-output
//   sigmoid answers. Those two hold label:score pairs separated by ';',
//   best first (the index in place of a label the model lacks); a label
//   may itself contain ':', so a reader splits each pair at its last ':'.
// json: the API's ClassifyResponse in protobuf's JSON mapping, as the REST
//   API answers it: {"model","version","output","results":[{"scores",
//   "predicted_index","predicted_label","positive","top_k","score"}]},
//   "version" a string and "output" the enum's name (OUTPUT_MODE_SOFTMAX),
//   as the mapping has them, so protobuf's own parsers read it.
absl::StatusOr<std::string> FormatClassification(const Classification& result,
                                                 const std::vector<std::string>& labels,
                                                 OutputFormat format);

// The names of `width` score columns: the labels when there is one per
// score (a binary model's one score by the second of two labels, its
// positive class), else score_<i>.
std::vector<std::string> ScoreColumnNames(const std::vector<std::string>& labels,
                                          size_t width);

// An API message in protobuf's JSON mapping as the REST API prints it
// (field names as in the .proto, every field, enums by name), then a line
// break: what the tools print for --format json, so that an answer reads
// the same bytes from the server's HTTP port, seqclient and seqmodel.
absl::StatusOr<std::string> ApiJson(const google::protobuf::Message& message);

// One CSV field, quoted when it holds a comma, a quote or a line break.
std::string CsvField(absl::string_view text);

}  // namespace seqserve
