// How the command-line tools print an Explain answer: a table with one
// column per feature for people, CSV and JSON for scripts. seqclient (a
// server's answer) and seqmodel (a model file's) print through here.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "cmd/classification_format.h"
#include "seqserve/v1/classifier.pb.h"

namespace seqserve {

// What the tools' explain flags ask, into `request`: --method and --rule in
// either spelling ("shapley" or "ATTRIBUTION_METHOD_SHAPLEY"), --target_class
// as a class index or label (empty: each row's predicted class),
// --baseline as comma-separated values (empty: the model's), --steps.
// INVALID_ARGUMENT naming the flag and what it takes.
struct ExplainFlags {
  std::string method;
  std::string rule;
  std::string target_class;
  std::string baseline;
  uint32_t steps = 0;
};
absl::Status FillExplainRequest(const ExplainFlags& flags, v1::ExplainRequest* request);

// table: a line saying what was explained (method, rule and steps, the
//   output form, the baseline), then aligned columns: row, the class
//   explained (its label, else its index), its score, one column per
//   feature (named by the model's feature names) holding the attribution
//   with its sign, and for integrated gradients the delta.
// csv: RFC 4180, the same columns (target_index and target_label apart),
//   full precision.
// json: the API's ExplainResponse in protobuf's JSON mapping, as the REST
//   API answers it.
absl::StatusOr<std::string> FormatExplanation(const v1::ExplainResponse& response,
                                              OutputFormat format);

}  // namespace seqserve
