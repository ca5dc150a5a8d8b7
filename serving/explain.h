// Explain, apart from any transport: check a request against a served
// model, and shape the answer from core's attributions (core/attribution.h).
// The attributions themselves are computed in between, as one piece of work
// in the InferenceRunner, like a forward pass.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/attribution.h"
#include "seqserve/v1/classifier.pb.h"
#include "serving/classify.h"
#include "serving/served_model.h"

namespace seqserve {

// A request that passed every check.
struct ExplainPlan {
  size_t rows = 0;
  AttributionOptions options;
  // The class every row explains; nullopt: each row's predicted class.
  std::optional<int> target;
  float threshold = 0.5f;
  // Rows of evaluations the explanation costs: rows x EvaluationsPerRow.
  size_t cost_rows = 0;
};

// The method a request asks for (the default: integrated gradients);
// nullopt for a value the API does not define.
std::optional<AttributionMethod> RequestedAttributionMethod(v1::AttributionMethod method);

// INVALID_ARGUMENT as PlanClassify for the rows, and for an unknown method
// or rule, a target index or label the model does not have, a baseline of
// the wrong width or not finite, steps out of range, Shapley on more than
// 16 features; RESOURCE_EXHAUSTED when the rows the explanation evaluates
// are over the request limits (rows, memory), or its answer could be over
// the message limit, with the numbers; UNIMPLEMENTED for a model whose
// config prepares its features (preprocessing).
// `tensors`, when not null, is checked as PlanOutputs checks it.
absl::StatusOr<ExplainPlan> PlanExplain(const v1::ExplainRequest& request,
                                        const ServedModel& served, const RequestLimits& limits,
                                        TensorInterface* tensors = nullptr);

// At most how many bytes an answer of `rows` rows takes on the wire: per
// row its attributions (8 bytes each), scores, classes and the longest
// label, once the names and the baseline; tags and lengths at their
// largest. PlanExplain refuses a request whose bound is over
// max_response_bytes.
uint64_t ExplainResponseBytesBound(const ServedModel& served, size_t rows);

// Fills `response` from the attributions of plan.rows rows.
// INVALID_ARGUMENT naming the first row whose score or attributions are not
// finite (finite but extreme features can overflow a layer or its
// gradient), as BuildClassifyResponse refuses such scores.
absl::Status BuildExplainResponse(const ServedModel& served, const ExplainPlan& plan,
                                  const Attributions& attributions,
                                  v1::ExplainResponse* response);

}  // namespace seqserve
