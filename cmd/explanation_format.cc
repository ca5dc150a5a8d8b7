#include "cmd/explanation_format.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/feature_rows.h"
#include "serving/output_mode_name.h"

namespace seqserve {
namespace {

bool HasDelta(const v1::ExplainResponse& response) {
  return response.method() == v1::ATTRIBUTION_METHOD_INTEGRATED_GRADIENTS;
}

std::string TargetText(const v1::RowExplanation& row) {
  return row.target_label().empty() ? absl::StrCat(row.target_index()) : row.target_label();
}

// With its sign, so pushes up and down read apart; a zero is "0", never "-0".
std::string Signed(double value) {
  return value == 0.0 ? "0" : absl::StrFormat("%+.6g", value);
}

std::string Heading(const v1::ExplainResponse& response) {
  std::string what = AttributionMethodShortName(response.method());
  if (HasDelta(response)) {
    absl::StrAppend(&what, " (", IntegrationRuleShortName(response.rule()), ", ",
                    response.steps(), " steps)");
  }
  std::vector<std::string> baseline;
  for (float value : response.baseline()) baseline.push_back(FormatFloat(value));
  return absl::StrCat(response.model(), " version ", response.version(), ": ", what, " of ",
                      OutputModeName(response.output()),
                      baseline.empty() ? "" : ", baseline ", absl::StrJoin(baseline, ","),
                      "\n");
}

std::string Table(const v1::ExplainResponse& response) {
  std::vector<std::vector<std::string>> lines;
  std::vector<std::string> header = {"row", "class", "score"};
  header.insert(header.end(), response.feature_names().begin(), response.feature_names().end());
  if (HasDelta(response)) header.push_back("delta");
  lines.push_back(header);
  for (int r = 0; r < response.results_size(); ++r) {
    const v1::RowExplanation& row = response.results(r);
    std::vector<std::string> line = {absl::StrCat(r), TargetText(row),
                                     absl::StrFormat("%.6g", row.score())};
    for (double value : row.attributions()) line.push_back(Signed(value));
    if (HasDelta(response)) line.push_back(absl::StrFormat("%.3g", row.delta()));
    lines.push_back(line);
  }
  std::vector<size_t> widths(header.size(), 0);
  for (const auto& line : lines) {
    for (size_t c = 0; c < line.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], line[c].size());
    }
  }
  std::string out = Heading(response);
  for (const auto& line : lines) {
    std::string text;
    for (size_t c = 0; c < line.size(); ++c) {
      absl::StrAppend(&text, c == 0 ? "" : "  ",
                      c + 1 == line.size() ? line[c]
                                           : absl::StrFormat("%-*s", widths[c], line[c]));
    }
    absl::StrAppend(&out, text, "\n");
  }
  return out;
}

std::string Csv(const v1::ExplainResponse& response) {
  std::vector<std::string> header = {"row", "target_index", "target_label", "score"};
  for (const std::string& name : response.feature_names()) header.push_back(CsvField(name));
  if (HasDelta(response)) header.push_back("delta");
  std::string out = absl::StrCat(absl::StrJoin(header, ","), "\n");
  for (int r = 0; r < response.results_size(); ++r) {
    const v1::RowExplanation& row = response.results(r);
    std::vector<std::string> line = {absl::StrCat(r), absl::StrCat(row.target_index()),
                                     CsvField(row.target_label()), FormatFloat(row.score())};
    for (double value : row.attributions()) line.push_back(absl::StrFormat("%.17g", value));
    if (HasDelta(response)) line.push_back(absl::StrFormat("%.17g", row.delta()));
    absl::StrAppend(&out, absl::StrJoin(line, ","), "\n");
  }
  return out;
}

}  // namespace

absl::Status FillExplainRequest(const ExplainFlags& flags, v1::ExplainRequest* request) {
  if (!flags.method.empty()) {
    auto method = ParseAttributionMethodName(flags.method);
    if (!method) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown --method '", flags.method,
          "': saliency, input_x_gradient, integrated_gradients or shapley"));
    }
    request->set_method(*method);
  }
  if (!flags.rule.empty()) {
    auto rule = ParseIntegrationRuleName(flags.rule);
    if (!rule) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown --rule '", flags.rule,
          "': gausslegendre, riemann_left, riemann_right, riemann_middle or riemann_trapezoid"));
    }
    request->set_rule(*rule);
  }
  if (!flags.target_class.empty()) {
    uint32_t index = 0;
    if (absl::SimpleAtoi(flags.target_class, &index)) {
      request->set_target_index(index);
    } else {
      request->set_target_label(flags.target_class);
    }
  }
  if (!flags.baseline.empty()) {
    for (absl::string_view text : absl::StrSplit(flags.baseline, ',')) {
      float value = 0.0f;
      if (!absl::SimpleAtof(absl::StripAsciiWhitespace(text), &value)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--baseline takes comma-separated numbers, one per feature; got '", text, "'"));
      }
      request->add_baseline(value);
    }
  }
  request->set_steps(flags.steps);
  return absl::OkStatus();
}

absl::StatusOr<std::string> FormatExplanation(const v1::ExplainResponse& response,
                                              OutputFormat format) {
  switch (format) {
    case OutputFormat::kTable:
      return Table(response);
    case OutputFormat::kCsv:
      return Csv(response);
    case OutputFormat::kJson:
      return ApiJson(response);
  }
  return ApiJson(response);
}

}  // namespace seqserve
