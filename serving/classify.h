// Classify, apart from gRPC: check a request against a served model, run the
// rows, and shape the response. The RPC handler calls these in order; the
// forward pass in between is the InferenceRunner's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/head.h"
#include "seqserve/v1/classifier.pb.h"
#include "serving/served_model.h"

namespace seqserve {

// A request that passed every check.
struct ClassifyPlan {
  size_t rows = 0;
  Head head = Head::kLogits;
  float threshold = 0.5f;
  uint32_t top_k = 0;
  // OutputRequest::every_class.
  bool every_class = false;
};

// One answer asked of a pass, for protocols that ask for several from the
// same rows (the Open Inference Protocol's outputs): a head and how many
// best classes.
struct OutputRequest {
  v1::OutputMode output = v1::OUTPUT_MODE_DEFAULT;
  uint32_t top_k = 0;
  // With OUTPUT_MODE_DEFAULT, the name the caller gave the model's own
  // output: checked against the graph's output name. Empty: not checked.
  std::string tensor_name;
  // Every class with its probability, for protocols that answer classes
  // rather than scores (TF Serving's classify): the row's top_k holds every
  // class in index order (not best first), each with its label. The head is
  // sigmoid when the model's default head is sigmoid or it has one output,
  // softmax otherwise; the classes are core's (ClassScores in
  // core/head.h): a one-output model answers two, 0 with 1 - p and 1 with
  // p, labelled as predicted_label labels them. Only with
  // OUTPUT_MODE_DEFAULT and top_k 0.
  bool every_class = false;
};

// The outputs a tensor protocol may ask by name of a model with
// `output_width` outputs whose graph names its output `graph_output`: each
// head the model allows ("logits", "sigmoid", and "softmax", "log_softmax"
// for more than one output), then `graph_output` (the default head) unless
// it is one of those.
std::vector<std::string> TensorOutputNames(int output_width, const std::string& graph_output);

// A tensor protocol's view of the model: the input it declares, checked
// against the model with the rest of the request, and the model's own
// output name, filled in for its answer.
struct TensorInterface {
  std::string input_name;
  int64_t input_columns = 0;
  // The inputs are features by name (the request's columns), which the
  // rows' preparation checks against the model's feature_names instead.
  bool named_features = false;
  std::string output_name;  // set by PlanOutputs
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

// The label of class `index` (core/head.h's classes), empty when the model
// has none: a binary model's class 0 is its negative class ("not L" with
// one label L), class 1 its positive one.
std::string ClassLabel(const ServedModel& served, uint32_t index);

// The rows `request` holds: its `rows`, or when that is 0 (left out, as a
// REST body may), its features over the values each row sends
// (SentWidth). PlanClassify and PlanOutputs refuse a count that does not
// fit the features.
size_t RequestRows(const v1::ClassifyRequest& request, const ServedModel& served);

// The checks of feature rows whatever is asked of them: `rows_given` rows
// of `features` (0: the features over the model's input width, which must
// then be whole rows), finite values, and the request limits on rows and
// on activation memory, counting each row `evaluations_per_row` times
// (`evaluations` says why, for the message: "integrated_gradients at 50
// steps"). INVALID_ARGUMENT and RESOURCE_EXHAUSTED as PlanClassify says.
absl::Status CheckFeatureRows(absl::Span<const float> features, uint32_t rows_given,
                              const ServedModel& served, const RequestLimits& limits,
                              size_t evaluations_per_row = 1,
                              absl::string_view evaluations = "");

// A tensor protocol's declared input against the model: INVALID_ARGUMENT
// for another name or width (the values a row sends: the raw features of
// a model with preprocessing); sets the model's output name.
absl::Status CheckTensorInterface(const ServedModel& served, TensorInterface* tensors);

// The head an output mode asks of `served` (OUTPUT_MODE_DEFAULT: its
// default); INVALID_ARGUMENT for an unknown mode, or softmax or log-softmax
// of one output.
absl::StatusOr<Head> HeadForRequest(v1::OutputMode output, const ServedModel& served);

// A request's threshold (0: the model's); INVALID_ARGUMENT outside (0, 1).
absl::StatusOr<float> ThresholdForRequest(float threshold, const ServedModel& served);

// At most how many bytes the response to `plan` takes on the wire: scores,
// labels, top-k and multi-label positives at their largest.
uint64_t ResponseBytesBound(const ServedModel& served, const ClassifyPlan& plan);

// INVALID_ARGUMENT for an empty batch, a feature count that is not rows x
// the values a row sends (SentWidth; without rows, not whole rows), top_k
// beyond the classes (the outputs, or
// 2 for one output), a threshold outside (0, 1) or an output mode the
// model cannot give; RESOURCE_EXHAUSTED for more rows than the model's or
// the server's limit, more memory, or an answer that could be larger than
// max_response_bytes. The values themselves are read, and refused, as
// PrepareModelInputs makes the model's inputs of them.
absl::StatusOr<ClassifyPlan> PlanClassify(const v1::ClassifyRequest& request,
                                          const ServedModel& served,
                                          const RequestLimits& limits);

// PlanClassify for several answers from one pass: one plan per entry of
// `outputs` (the request's own output and top_k are not used), in order.
// Also INVALID_ARGUMENT when `tensors` (may be null) declares another
// input name or width than the model's (the values a row sends), or
// `outputs` is empty; RESOURCE_EXHAUSTED when the answers
// together could be larger than max_response_bytes.
absl::StatusOr<std::vector<ClassifyPlan>> PlanOutputs(const v1::ClassifyRequest& request,
                                                      const std::vector<OutputRequest>& outputs,
                                                      TensorInterface* tensors,
                                                      const ServedModel& served,
                                                      const RequestLimits& limits);

// Fills `response` from the logits of plan.rows rows: applies the head,
// then each row's predicted class, its label and score, and the top-k, all
// over core's classes of the row (ClassScores, PredictedClass and
// RankedClasses in core/head.h: a one-output model is a binary classifier
// of two classes), which is where every protocol gets them.
// INVALID_ARGUMENT naming the first row whose scores are not finite (finite
// but extreme features can overflow a layer): the API promises
// probabilities, never NaN.
absl::Status BuildClassifyResponse(const ServedModel& served, const ClassifyPlan& plan,
                                   absl::Span<float> logits,
                                   v1::ClassifyResponse* response);

// BuildClassifyResponse for each plan of one pass: responses[i] answers
// plans[i]. Each head reads the logits as the pass left them.
absl::Status BuildClassifyResponses(const ServedModel& served,
                                    absl::Span<const ClassifyPlan> plans,
                                    absl::Span<float> logits,
                                    absl::Span<v1::ClassifyResponse* const> responses);

}  // namespace seqserve
