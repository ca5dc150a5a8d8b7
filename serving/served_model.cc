#include "serving/served_model.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "serving/drift_baseline.h"
#include "serving/output_mode.h"

namespace seqserve {

v1::Precision ApiPrecision(Precision precision) {
  return precision == Precision::kInt8 ? v1::PRECISION_INT8 : v1::PRECISION_FP32;
}

std::optional<Precision> ConfigPrecision(v1::Precision precision, Precision stored) {
  switch (precision) {
    case v1::PRECISION_UNSPECIFIED:
      return stored;
    case v1::PRECISION_FP32:
      return Precision::kFp32;
    case v1::PRECISION_INT8:
      return Precision::kInt8;
    default:
      return std::nullopt;
  }
}

absl::StatusOr<std::shared_ptr<const ServedModel>> MakeServedModel(
    const std::string& name, int64_t version,
    std::shared_ptr<const Sequential> model, const v1::ModelConfig& config) {
  const int outputs = model->output_width();
  const int labels = config.labels_size();
  const bool binary = outputs == 1;
  if (labels != 0 && labels != outputs && !(binary && labels == 2)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config gives ", labels, " labels for ", outputs, " outputs",
        binary ? " (a binary model takes one label or two)" : ""));
  }
  // With preprocessing the names are the raw features, which
  // Preprocessing::Create checks against the model's width.
  if (config.preprocessing().empty() && config.feature_names_size() != 0 &&
      config.feature_names_size() != model->input_width()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config gives ", config.feature_names_size(), " feature names for ",
        model->input_width(), " inputs"));
  }
  if (config.explanation_baseline_size() != 0) {
    if (config.explanation_baseline_size() != model->input_width()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config gives ", config.explanation_baseline_size(),
          " explanation_baseline values for ", model->input_width(), " inputs"));
    }
    for (float value : config.explanation_baseline()) {
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError("config explanation_baseline holds NaN or Inf");
      }
    }
  }
  if (!(config.threshold() >= 0.0f && config.threshold() < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config threshold ", config.threshold(),
                     " is outside (0, 1)"));
  }
  auto preprocessing = Preprocessing::Create(config, model->input_width());
  if (!preprocessing.ok()) return preprocessing.status();
  auto served = std::make_shared<ServedModel>();
  served->preprocessing = *std::move(preprocessing);
  served->name = name;
  served->version = version;
  served->config = config;
  served->default_head = model->default_head();
  if (config.default_output() != v1::OUTPUT_MODE_DEFAULT) {
    auto head = HeadForOutputMode(config.default_output());
    if (!head) {
      return absl::InvalidArgumentError(
          absl::StrCat("config default_output ", config.default_output(),
                       " is not an output mode"));
    }
    if (binary && (*head == Head::kSoftmax || *head == Head::kLogSoftmax)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config default_output is ", HeadName(*head), ", which is always ",
          *head == Head::kSoftmax ? "1" : "0",
          " for a one-output model; use sigmoid"));
    }
    served->default_head = *head;
  }
  if (binary && (served->default_head == Head::kSoftmax ||
                 served->default_head == Head::kLogSoftmax)) {
    // torch exports of one-output models rarely end in Softmax, but one that
    // does would answer 1.0 forever; sigmoid is what such a model means.
    served->default_head = Head::kSigmoid;
  }
  served->threshold = config.threshold() > 0.0f ? config.threshold() : 0.5f;
  served->max_request_rows = config.max_request_rows();
  auto baseline = LoadDriftBaseline(config, binary ? 2 : outputs);
  if (!baseline.ok()) return baseline.status();
  served->drift_baseline = std::move(*baseline);
  const std::optional<Precision> precision =
      ConfigPrecision(config.precision(), model->stored_precision());
  if (!precision) {
    return absl::InvalidArgumentError(
        absl::StrCat("config precision ", config.precision(), " is not a precision"));
  }
  if (*precision != model->precision()) {
    auto rebuilt = model->WithPrecision(*precision);
    if (!rebuilt.ok()) {
      return absl::Status(rebuilt.status().code(),
                          absl::StrCat("config precision ", PrecisionName(*precision), ": ",
                                       rebuilt.status().message()));
    }
    model = std::move(*rebuilt);
  }
  served->model = std::move(model);
  return served;
}

}  // namespace seqserve
