#include "serving/classify.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "serving/client_text.h"
#include "serving/model_inputs.h"
#include "serving/output_mode.h"

namespace seqserve {
namespace {

// Binary models: one label names the positive class, two name both.
std::string BinaryLabel(const ServedModel& served, bool positive) {
  const auto& labels = served.config.labels();
  if (labels.size() == 2) return labels[positive ? 1 : 0];
  if (labels.size() == 1) return positive ? labels[0] : absl::StrCat("not ", labels[0]);
  return "";
}

void AddClass(const ServedModel& served, const ScoredIndex& scored,
              google::protobuf::RepeatedPtrField<v1::ScoredClass>* list) {
  v1::ScoredClass* entry = list->Add();
  entry->set_index(scored.index);
  entry->set_label(ClassLabel(served, scored.index));
  entry->set_score(scored.score);
}

// A sum of response bounds that stops growing before it could wrap.
constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max() / 2;

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
  // Scores, the predicted index, label and score, the top classes.
  uint64_t per_row = 24 + width * sizeof(float) + longest_label + plan.top_k * scored_class;
  if (plan.head == Head::kSigmoid && width > 1 && !plan.every_class) {
    per_row += width * scored_class;
  }
  if (plan.every_class) per_row += std::max<uint64_t>(width, 2) * scored_class;
  // per_row < 2^45 (width <= 2^24, a label <= 1 MiB); rows could still
  // overflow the product, so saturate.
  const uint64_t header = 64 + served.name.size();
  if (plan.rows > (std::numeric_limits<uint64_t>::max() - header) / per_row) {
    return std::numeric_limits<uint64_t>::max();
  }
  return header + plan.rows * per_row;
}

std::string ClassLabel(const ServedModel& served, uint32_t index) {
  if (served.model->output_width() == 1) return BinaryLabel(served, index == 1);
  const auto& labels = served.config.labels();
  return index < static_cast<uint32_t>(labels.size()) ? labels[index] : "";
}

size_t RequestRows(const v1::ClassifyRequest& request, const ServedModel& served) {
  if (request.rows() != 0) return request.rows();
  return static_cast<size_t>(request.features_size()) / SentWidth(request, served);
}

namespace {

// The count and limit checks of CheckFeatureRows for rows of `width`
// values: the model's own, or as many as the request names columns.
absl::Status CheckRowCount(size_t values, uint32_t rows_given, size_t width, bool named,
                           const ServedModel& served, const RequestLimits& limits,
                           size_t evaluations_per_row, absl::string_view evaluations) {
  const Sequential& model = *served.model;
  auto takes = [&] {
    return named ? absl::StrCat("the request names ", width, " columns")
                 : absl::StrCat("model '", served.name, "' takes ", width, " features");
  };
  const size_t rows = rows_given != 0 ? rows_given : values / width;
  if (rows_given == 0 && values % width != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(takes(), " per row: ", values,
                     " values are not whole rows (give rows, or whole rows of values)"));
  }
  if (rows == 0) {
    return absl::InvalidArgumentError("empty batch: no rows of features");
  }
  const size_t want = rows * width;
  if (values != want) {
    return absl::InvalidArgumentError(absl::StrCat(takes(), " per row: ", rows, " rows need ",
                                                   want, " values, got ", values));
  }
  // rows < 2^32 and evaluations_per_row <= 2^16: the product fits in 64 bits.
  const uint64_t evaluated = uint64_t{rows} * evaluations_per_row;
  const std::string batch =
      evaluations_per_row == 1
          ? absl::StrCat("batch of ", rows, " rows")
          : absl::StrCat(rows, " rows by ", evaluations, " evaluate ", evaluated, " rows, which");
  const uint32_t limit = served.max_request_rows ? served.max_request_rows : limits.max_rows;
  if (limit != 0 && evaluated > limit) {
    // Splitting cannot help when one row alone is over the limit.
    return absl::ResourceExhaustedError(absl::StrCat(
        batch, " is over the limit of ", limit, " rows per request for model '", served.name,
        "'; ",
        evaluations_per_row > limit
            ? "one row alone is over it: ask for fewer evaluations, or raise "
              "--max_request_rows (or the model's max_request_rows)"
            : "split it"));
  }
  // evaluated <= 2^32 and widest <= 2^24: the product fits in 64 bits.
  const uint64_t memory = evaluated * model.widest() * sizeof(float);
  if (limits.max_memory_bytes != 0 && memory > limits.max_memory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        batch, " holds ", memory, " bytes of activations as one pass (",
        model.widest(), " values per row in model '", served.name,
        "'), over the limit of ", limits.max_memory_bytes,
        " bytes per request; split it"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckFeatureRows(absl::Span<const float> features, uint32_t rows_given,
                              const ServedModel& served, const RequestLimits& limits,
                              size_t evaluations_per_row, absl::string_view evaluations) {
  const Sequential& model = *served.model;
  const size_t values = features.size();
  if (absl::Status counted =
          CheckRowCount(values, rows_given, model.input_width(), false, served, limits,
                        evaluations_per_row, evaluations);
      !counted.ok()) {
    return counted;
  }
  for (size_t i = 0; i < values; ++i) {
    if (!std::isfinite(features[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", i / model.input_width(), " feature ", i % model.input_width(),
          " is NaN or Inf"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTensorInterface(const ServedModel& served, TensorInterface* tensors) {
  const Sequential& model = *served.model;
  const std::string& name = model.tensor_names().input;
  tensors->output_name = model.tensor_names().output;
  if (tensors->named_features) return absl::OkStatus();
  if (tensors->input_name != name) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", served.name, "' has no input ", QuoteClientText(tensors->input_name),
        "; its input is '", name, "'"));
  }
  if (static_cast<size_t>(tensors->input_columns) != served.request_width()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", name, "' of model '", served.name, "' has shape [-1, ",
        served.request_width(), "]; got ", tensors->input_columns, " columns"));
  }
  tensors->output_name = model.tensor_names().output;
  return absl::OkStatus();
}

absl::StatusOr<Head> HeadForRequest(v1::OutputMode output, const ServedModel& served) {
  Head head = served.default_head;
  if (output != v1::OUTPUT_MODE_DEFAULT) {
    auto asked = HeadForOutputMode(output);
    if (!asked) return absl::InvalidArgumentError(absl::StrCat("unknown output mode ", output));
    head = *asked;
  }
  if ((head == Head::kSoftmax || head == Head::kLogSoftmax) &&
      served.model->output_width() == 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", served.name, "' has one output; ", HeadName(head),
        " over it is always ", head == Head::kSoftmax ? "1" : "0", ", ask for sigmoid"));
  }
  return head;
}

absl::StatusOr<float> ThresholdForRequest(float threshold, const ServedModel& served) {
  if (threshold == 0.0f) return served.threshold;
  if (!(threshold > 0.0f && threshold < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("threshold ", threshold, " is outside (0, 1)"));
  }
  return threshold;
}

namespace {

// The count and limits; the values themselves are read as the model's
// inputs are made of them (PrepareModelInputs).
absl::Status CheckRows(const v1::ClassifyRequest& request, const ServedModel& served,
                       const RequestLimits& limits) {
  return CheckRowCount(static_cast<size_t>(request.features_size()), request.rows(),
                       SentWidth(request, served), !request.columns().empty(), served, limits,
                       1, "");
}

// One answer's head, top_k and threshold, and the bound of its size.
absl::StatusOr<ClassifyPlan> PlanOutput(const v1::ClassifyRequest& request,
                                        const OutputRequest& output, const ServedModel& served,
                                        const RequestLimits& limits) {
  const Sequential& model = *served.model;
  ClassifyPlan plan;
  plan.rows = RequestRows(request, served);
  if (output.every_class) {
    if (output.output != v1::OUTPUT_MODE_DEFAULT || output.top_k != 0) {
      return absl::InvalidArgumentError(
          "every class is answered with the model's probabilities: no output mode or top_k");
    }
    // Probabilities: independent ones where the model's own head says so
    // (and for one output, a binary classifier), else one distribution.
    plan.head = model.output_width() == 1 || served.default_head == Head::kSigmoid
                    ? Head::kSigmoid
                    : Head::kSoftmax;
    plan.every_class = true;
  } else {
    if (output.output == v1::OUTPUT_MODE_DEFAULT && !output.tensor_name.empty() &&
        output.tensor_name != model.tensor_names().output) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", served.name, "' has no output ", QuoteClientText(output.tensor_name),
          "; its outputs are ",
          absl::StrJoin(TensorOutputNames(model.output_width(), model.tensor_names().output),
                        ", ")));
    }
    auto head = HeadForRequest(output.output, served);
    if (!head.ok()) return head.status();
    plan.head = *head;
  }
  const size_t classes = ClassCount(model.output_width());
  if (output.top_k > classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "top_k ", output.top_k, " is more than the ", classes,
        model.output_width() == 1 ? " classes (one output: binary)" : " outputs",
        " of model '", served.name, "'"));
  }
  plan.top_k = output.top_k;
  auto threshold = ThresholdForRequest(request.threshold(), served);
  if (!threshold.ok()) return threshold.status();
  plan.threshold = *threshold;
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

}  // namespace

std::vector<std::string> TensorOutputNames(int output_width, const std::string& graph_output) {
  std::vector<std::string> names;
  for (Head head : {Head::kLogits, Head::kSigmoid, Head::kSoftmax, Head::kLogSoftmax}) {
    if ((head == Head::kSoftmax || head == Head::kLogSoftmax) && output_width == 1) continue;
    names.emplace_back(HeadName(head));
  }
  if (!ParseHeadName(graph_output)) names.push_back(graph_output);
  return names;
}

absl::StatusOr<ClassifyPlan> PlanClassify(const v1::ClassifyRequest& request,
                                          const ServedModel& served,
                                          const RequestLimits& limits) {
  if (absl::Status rows = CheckRows(request, served, limits); !rows.ok()) return rows;
  OutputRequest output;
  output.output = request.output();
  output.top_k = request.top_k();
  return PlanOutput(request, output, served, limits);
}

absl::StatusOr<std::vector<ClassifyPlan>> PlanOutputs(const v1::ClassifyRequest& request,
                                                      const std::vector<OutputRequest>& outputs,
                                                      TensorInterface* tensors,
                                                      const ServedModel& served,
                                                      const RequestLimits& limits) {
  if (tensors != nullptr) {
    if (absl::Status checked = CheckTensorInterface(served, tensors); !checked.ok()) {
      return checked;
    }
  }
  if (outputs.empty()) return absl::InvalidArgumentError("no output asked for");
  if (absl::Status rows = CheckRows(request, served, limits); !rows.ok()) return rows;
  std::vector<ClassifyPlan> plans;
  plans.reserve(outputs.size());
  uint64_t total = 0;
  for (const OutputRequest& output : outputs) {
    auto plan = PlanOutput(request, output, served, limits);
    if (!plan.ok()) return plan.status();
    // Each bound is below 2^64 / 2 unless saturated; saturate the sum too.
    total = std::min(total + std::min(ResponseBytesBound(served, *plan), kSaturated),
                     kSaturated);
    plans.push_back(*plan);
  }
  if (limits.max_response_bytes != 0 && total > limits.max_response_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the ", outputs.size(), " answers to ", plans.front().rows, " rows could take ", total,
        " bytes together, over the message limit of ", limits.max_response_bytes,
        "; send fewer rows or ask for fewer outputs"));
  }
  return plans;
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
    // One rule for every protocol: the classes, the predicted one and its
    // score, and the ranking all come from core's classes of the row.
    const int predicted = PredictedClass(plan.head, row, plan.threshold);
    result->set_predicted_index(predicted);
    result->set_predicted_label(ClassLabel(served, predicted));
    result->set_score(ClassScore(plan.head, row, predicted));
    if (plan.every_class) {
      for (const ScoredIndex& scored : ClassScores(plan.head, row)) {
        AddClass(served, scored, result->mutable_top_k());
      }
      continue;
    }
    if (plan.head == Head::kSigmoid && width > 1) {
      for (size_t i = 0; i < width; ++i) {
        if (row[i] <= plan.threshold) continue;
        AddClass(served, {static_cast<int>(i), row[i]}, result->mutable_positive());
      }
    }
    for (const ScoredIndex& top : RankedClasses(plan.head, row, plan.threshold, plan.top_k)) {
      AddClass(served, top, result->mutable_top_k());
    }
  }
  return absl::OkStatus();
}

absl::Status BuildClassifyResponses(const ServedModel& served,
                                    absl::Span<const ClassifyPlan> plans,
                                    absl::Span<float> logits,
                                    absl::Span<v1::ClassifyResponse* const> responses) {
  // Heads work in place: every answer but the last works on a copy.
  std::vector<float> copy;
  for (size_t i = 0; i < plans.size(); ++i) {
    absl::Span<float> scores = logits;
    if (i + 1 < plans.size()) {
      copy.assign(logits.begin(), logits.end());
      scores = absl::MakeSpan(copy);
    }
    if (absl::Status built = BuildClassifyResponse(served, plans[i], scores, responses[i]);
        !built.ok()) {
      return built;
    }
  }
  return absl::OkStatus();
}

}  // namespace seqserve
