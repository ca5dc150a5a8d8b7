// A Classify request's values as the rows the model reads: its columns
// matched to the model's features by name, the strings of categorical
// features, and the config's preprocessing. Every protocol's rows come
// through here after PlanClassify or PlanOutputs has checked their count
// and the limits.
#pragma once

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "seqserve/v1/classifier.pb.h"
#include "serving/served_model.h"

namespace seqserve {

struct ModelInputs {
  // rows x the model's input width: the request's own values when they
  // are already the model's inputs, else `prepared`'s (a moved
  // ModelInputs keeps pointing at the right buffer).
  absl::Span<const float> values;
  std::vector<float> prepared;
  // For each of the model's raw features (RawRowsView's order): the column
  // of the request that holds it, or RawRowsView::kAbsent.
  std::vector<size_t> order;
};

// Values per row a request sends: one per name in its columns, else one
// per feature of the model (config feature_names, or the input width).
size_t SentWidth(const v1::ClassifyRequest& request, const ServedModel& served);

// Fills `inputs` from `rows` rows of `request` (counted by PlanClassify).
// INVALID_ARGUMENT: columns naming a feature the model lacks (or a model
// that names none) or one twice, or leaving out one without a missing
// default; categories not one per value; a value preprocessing refuses
// (Preprocessing::Prepare); NaN or Inf where values go to the model as sent.
absl::Status PrepareModelInputs(const v1::ClassifyRequest& request, size_t rows,
                                const ServedModel& served, ModelInputs* inputs);

}  // namespace seqserve
