#include "server/classify.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/output_mode.h"

namespace seqserve {
namespace {

// Binary models: one label names the positive class, two name both.
std::string BinaryLabel(const ServedModel& served, bool positive) {
  const auto& labels = served.config.labels();
  if (labels.size() == 2) return labels[positive ? 1 : 0];
  if (labels.size() == 1) return positive ? labels[0] : absl::StrCat("not ", labels[0]);
  return "";
}

// The class output `index` scores. A binary model's one output scores the
// positive class, whichever label that is.
std::string LabelOf(const ServedModel& served, uint32_t index) {
  if (served.model->output_width() == 1) return BinaryLabel(served, true);
  const auto& labels = served.config.labels();
  return index < static_cast<uint32_t>(labels.size()) ? labels[index] : "";
}

bool AllFinite(absl::Span<const float> values) {
  for (float v : values) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

}  // namespace

uint64_t ResponseBytesBound(const ServedModel& served, const ClassifyPlan& plan) {
  uint64_t longest_label = 0;
  for (const std::string& label : served.config.labels()) {
    longest_label = std::max<uint64_t>(longest_label, label.size() + 4);  // "not " + label
  }
  const uint64_t width = served.model->output_width();
  const uint64_t scored_class = 24 + longest_label;  // index, score, label, framing
  uint64_t per_row = 16 + width * sizeof(float) + longest_label + plan.top_k * scored_class;
  if (plan.head == Head::kSigmoid && width > 1) per_row += width * scored_class;
  // per_row < 2^45 (width <= 2^24, a label <= 1 MiB); rows could still
  // overflow the product, so saturate.
  const uint64_t header = 64 + served.name.size();
  if (plan.rows > (std::numeric_limits<uint64_t>::max() - header) / per_row) {
    return std::numeric_limits<uint64_t>::max();
  }
  return header + plan.rows * per_row;
}

absl::StatusOr<ClassifyPlan> PlanClassify(const v1::ClassifyRequest& request,
                                          const ServedModel& served,
                                          const RequestLimits& limits) {
  const Sequential& model = *served.model;
  ClassifyPlan plan;
  plan.rows = request.rows();
  if (plan.rows == 0) {
    return absl::InvalidArgumentError("empty batch: rows must be positive");
  }
  const size_t want = plan.rows * static_cast<size_t>(model.input_width());
  if (static_cast<size_t>(request.features_size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", served.name, "' takes ", model.input_width(),
        " features per row: ", plan.rows, " rows need ", want, " values, got ",
        request.features_size()));
  }
  const uint32_t limit = served.max_request_rows ? served.max_request_rows : limits.max_rows;
  if (limit != 0 && plan.rows > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch of ", plan.rows, " rows is over the limit of ", limit,
        " rows per request for model '", served.name, "'; split it"));
  }
  // rows <= 2^32 and widest <= 2^24: the product fits in 64 bits.
  const uint64_t memory = uint64_t{plan.rows} * model.widest() * sizeof(float);
  if (limits.max_memory_bytes != 0 && memory > limits.max_memory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch of ", plan.rows, " rows holds ", memory, " bytes of activations as one pass (",
        model.widest(), " values per row in model '", served.name,
        "'), over the limit of ", limits.max_memory_bytes,
        " bytes per request; split it"));
  }
  for (int i = 0; i < request.features_size(); ++i) {
    if (!std::isfinite(request.features(i))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", i / model.input_width(), " feature ", i % model.input_width(),
          " is NaN or Inf"));
    }
  }
  if (request.output() == v1::OUTPUT_MODE_DEFAULT) {
    plan.head = served.default_head;
  } else {
    auto head = HeadForOutputMode(request.output());
    if (!head) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown output mode ", request.output()));
    }
    plan.head = *head;
  }
  if ((plan.head == Head::kSoftmax || plan.head == Head::kLogSoftmax) &&
      model.output_width() == 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", served.name, "' has one output; ", HeadName(plan.head),
        " over it is always ", plan.head == Head::kSoftmax ? "1" : "0",
        ", ask for sigmoid"));
  }
  if (request.top_k() > static_cast<uint32_t>(model.output_width())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "top_k ", request.top_k(), " is more than the ", model.output_width(),
        " outputs of model '", served.name, "'"));
  }
  plan.top_k = request.top_k();
  if (request.threshold() != 0.0f) {
    if (!(request.threshold() > 0.0f && request.threshold() < 1.0f)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "threshold ", request.threshold(), " is outside (0, 1)"));
    }
    plan.threshold = request.threshold();
  } else {
    plan.threshold = served.threshold;
  }
  // The answer is built whole before it is sent: refuse one that could not
  // be sent anyway, before it costs the memory.
  const uint64_t response = ResponseBytesBound(served, plan);
  if (limits.max_response_bytes != 0 && response > limits.max_response_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the answer to ", plan.rows, " rows", plan.top_k ? " with top_k " : "",
        plan.top_k ? absl::StrCat(plan.top_k) : "", " could take ", response,
        " bytes, over the message limit of ", limits.max_response_bytes,
        "; send fewer rows or ask for a smaller top_k"));
  }
  return plan;
}

absl::Status BuildClassifyResponse(const ServedModel& served, const ClassifyPlan& plan,
                                   absl::Span<float> logits,
                                   v1::ClassifyResponse* response) {
  const size_t width = served.model->output_width();
  ApplyHead(plan.head, width, logits);
  for (size_t r = 0; r < plan.rows; ++r) {
    if (!AllFinite(logits.subspan(r * width, width))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", r, " gives scores that are not finite (NaN or Inf): its "
          "features overflow model '", served.name, "'; scale them"));
    }
  }
  response->set_model(served.name);
  response->set_version(served.version);
  response->set_output(OutputModeForHead(plan.head));
  auto* results = response->mutable_results();
  results->Reserve(static_cast<int>(plan.rows));
  for (size_t r = 0; r < plan.rows; ++r) {
    absl::Span<const float> row = logits.subspan(r * width, width);
    v1::RowResult* result = results->Add();
    result->mutable_scores()->Add(row.begin(), row.end());
    const int predicted = PredictedClass(plan.head, row, plan.threshold);
    result->set_predicted_index(predicted);
    result->set_predicted_label(width == 1 ? BinaryLabel(served, predicted == 1)
                                           : LabelOf(served, predicted));
    if (plan.head == Head::kSigmoid && width > 1) {
      for (size_t i = 0; i < width; ++i) {
        if (row[i] <= plan.threshold) continue;
        v1::ScoredClass* positive = result->add_positive();
        positive->set_index(i);
        positive->set_label(LabelOf(served, i));
        positive->set_score(row[i]);
      }
    }
    for (const ScoredIndex& top : TopK(row, plan.top_k)) {
      v1::ScoredClass* entry = result->add_top_k();
      entry->set_index(top.index);
      entry->set_label(LabelOf(served, top.index));
      entry->set_score(top.score);
    }
  }
  return absl::OkStatus();
}

}  // namespace seqserve
