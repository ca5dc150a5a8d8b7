#include "client/classification_format.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/feature_rows.h"

namespace seqserve {
namespace {

// Column names: the labels when there is one per score, else score_<i>.
std::vector<std::string> ScoreNames(const std::vector<std::string>& labels,
                                    size_t width) {
  std::vector<std::string> names;
  for (size_t i = 0; i < width; ++i) {
    names.push_back(labels.size() == width ? labels[i] : absl::StrCat("score_", i));
  }
  return names;
}

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string JsonScored(const std::vector<ScoredLabel>& entries) {
  std::vector<std::string> items;
  for (const auto& e : entries) {
    items.push_back(absl::StrCat("{\"index\":", e.index, ",\"label\":", JsonString(e.label),
                                 ",\"score\":", FormatFloat(e.score), "}"));
  }
  return absl::StrCat("[", absl::StrJoin(items, ","), "]");
}

std::string PredictedText(const RowPrediction& row) {
  return row.predicted_label.empty() ? absl::StrCat(row.predicted_index)
                                     : row.predicted_label;
}

}  // namespace

std::string FormatTable(const Classification& result,
                        const std::vector<std::string>& labels) {
  const size_t width = result.rows.empty() ? 0 : result.rows[0].scores.size();
  const auto names = ScoreNames(labels, width);
  std::string out = absl::StrFormat("%-5s %-16s %-12s", "row", "predicted", "score");
  for (const auto& name : names) absl::StrAppendFormat(&out, " %-12s", name);
  out += "\n";
  for (size_t r = 0; r < result.rows.size(); ++r) {
    const RowPrediction& row = result.rows[r];
    // One-output models score the positive class whatever was predicted.
    const float score = row.scores.size() == 1 ? row.scores[0]
                                               : row.scores[row.predicted_index];
    absl::StrAppendFormat(&out, "%-5d %-16s %-12.6g", r, PredictedText(row), score);
    for (float v : row.scores) absl::StrAppendFormat(&out, " %-12.6g", v);
    if (!row.positive.empty()) {
      std::vector<std::string> positive;
      for (const auto& p : row.positive) positive.push_back(p.label);
      absl::StrAppend(&out, "  positive: ", absl::StrJoin(positive, ","));
    }
    if (!row.top_k.empty()) {
      std::vector<std::string> top;
      for (const auto& t : row.top_k) {
        top.push_back(absl::StrFormat("%s=%.6g",
                                      t.label.empty() ? absl::StrCat(t.index) : t.label,
                                      t.score));
      }
      absl::StrAppend(&out, "  top: ", absl::StrJoin(top, " "));
    }
    out += "\n";
  }
  return out;
}

std::string FormatCsv(const Classification& result,
                      const std::vector<std::string>& labels) {
  const size_t width = result.rows.empty() ? 0 : result.rows[0].scores.size();
  std::string out = absl::StrCat("row,predicted_index,predicted_label,",
                                 absl::StrJoin(ScoreNames(labels, width), ","), "\n");
  for (size_t r = 0; r < result.rows.size(); ++r) {
    const RowPrediction& row = result.rows[r];
    std::vector<std::string> scores;
    for (float v : row.scores) scores.push_back(FormatFloat(v));
    absl::StrAppend(&out, r, ",", row.predicted_index, ",", row.predicted_label, ",",
                    absl::StrJoin(scores, ","), "\n");
  }
  return out;
}

std::string FormatJson(const Classification& result) {
  std::vector<std::string> rows;
  for (size_t r = 0; r < result.rows.size(); ++r) {
    const RowPrediction& row = result.rows[r];
    std::vector<std::string> scores;
    for (float v : row.scores) scores.push_back(FormatFloat(v));
    rows.push_back(absl::StrCat(
        "{\"row\":", r, ",\"predicted_index\":", row.predicted_index,
        ",\"predicted_label\":", JsonString(row.predicted_label), ",\"scores\":[",
        absl::StrJoin(scores, ","), "],\"positive\":", JsonScored(row.positive),
        ",\"top_k\":", JsonScored(row.top_k), "}"));
  }
  return absl::StrCat("{\"model\":", JsonString(result.model),
                      ",\"version\":", result.version, ",\"output\":",
                      JsonString(v1::OutputMode_Name(result.output)), ",\"rows\":[",
                      absl::StrJoin(rows, ","), "]}\n");
}

}  // namespace seqserve
