// Classify, apart from gRPC: check a request against a served model, run the
// rows, and shape the response. The RPC handler calls these in order; the
// forward pass in between is the InferenceRunner's.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/head.h"
#include "seqserve/v1/classifier.pb.h"
#include "server/served_model.h"

namespace seqserve {

// A request that passed every check.
struct ClassifyPlan {
  size_t rows = 0;
  Head head = Head::kLogits;
  float threshold = 0.5f;
  uint32_t top_k = 0;
};

// The server's limits per request; 0 means none.
struct RequestLimits {
  // Rows, for models whose config sets no limit of its own.
  uint32_t max_rows = 0;
  // Activations: rows x the model's widest layer x 4 bytes, what one pass
  // over the whole request would hold.
  uint64_t max_memory_bytes = 0;
  // The largest answer that can be sent (the message limit): a request
  // whose answer could be larger is refused before it is computed.
  uint64_t max_response_bytes = 0;
};

// At most how many bytes the response to `plan` takes on the wire: scores,
// labels, top-k and multi-label positives at their largest.
uint64_t ResponseBytesBound(const ServedModel& served, const ClassifyPlan& plan);

// INVALID_ARGUMENT for an empty batch, a feature count that is not rows x
// input width, NaN/Inf features, top_k beyond the outputs, a threshold
// outside (0, 1) or an output mode the model cannot give; RESOURCE_EXHAUSTED
// for more rows than the model's or the server's limit, more memory, or an
// answer that could be larger than max_response_bytes.
absl::StatusOr<ClassifyPlan> PlanClassify(const v1::ClassifyRequest& request,
                                          const ServedModel& served,
                                          const RequestLimits& limits);

// Fills `response` from the logits of plan.rows rows: applies the head,
// predicted classes, labels and top-k. INVALID_ARGUMENT naming the first
// row whose scores are not finite (finite but extreme features can overflow
// a layer): the API promises probabilities, never NaN.
absl::Status BuildClassifyResponse(const ServedModel& served, const ClassifyPlan& plan,
                                   absl::Span<float> logits,
                                   v1::ClassifyResponse* response);

}  // namespace seqserve
