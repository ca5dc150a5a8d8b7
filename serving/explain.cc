#include "serving/explain.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "serving/client_text.h"
#include "serving/output_mode.h"
#include "serving/output_mode_name.h"

namespace seqserve {
namespace {

// The API's enums and core's share their short names ("shapley",
// "gausslegendre"): serving/output_mode_name.h spells the first.
std::optional<IntegrationRule> CoreRule(v1::IntegrationRule rule) {
  if (rule == v1::INTEGRATION_RULE_DEFAULT) return IntegrationRule::kGaussLegendre;
  return ParseIntegrationRule(IntegrationRuleShortName(rule));
}

v1::AttributionMethod ApiMethod(AttributionMethod method) {
  return *ParseAttributionMethodName(AttributionMethodName(method));
}

v1::IntegrationRule ApiRule(IntegrationRule rule) {
  return *ParseIntegrationRuleName(IntegrationRuleName(rule));
}

// The class a request names, by index or label.
absl::StatusOr<std::optional<int>> Target(const v1::ExplainRequest& request,
                                          const ServedModel& served) {
  const uint32_t classes = static_cast<uint32_t>(ClassCount(served.model->output_width()));
  switch (request.target_case()) {
    case v1::ExplainRequest::TARGET_NOT_SET:
      return std::optional<int>();
    case v1::ExplainRequest::kTargetIndex:
      if (request.target_index() >= classes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "target class ", request.target_index(), " is not one of the ", classes,
            " classes of model '", served.name, "'"));
      }
      return std::optional<int>(static_cast<int>(request.target_index()));
    case v1::ExplainRequest::kTargetLabel:
      for (uint32_t index = 0; index < classes; ++index) {
        const std::string label = ClassLabel(served, index);
        if (!label.empty() && label == request.target_label()) {
          return std::optional<int>(static_cast<int>(index));
        }
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", served.name, "' has no class labelled ",
          QuoteClientText(request.target_label())));
  }
  return std::optional<int>();
}

}  // namespace

uint64_t ExplainResponseBytesBound(const ServedModel& served, size_t rows) {
  const Sequential& model = *served.model;
  const uint64_t width = static_cast<uint64_t>(model.input_width());
  uint64_t longest_label = 0;
  for (uint32_t index = 0; index < ClassCount(model.output_width()); ++index) {
    longest_label = std::max<uint64_t>(longest_label, ClassLabel(served, index).size());
  }
  uint64_t names = 0;
  for (const std::string& name : served.config.feature_names()) names += name.size() + 6;
  const uint64_t per_row = 8 * width + longest_label + 64;
  // Once: the baseline (4 bytes a feature) and, for a model without
  // feature names, the positions that name them (up to 8 digits): 16 a
  // feature with their tags.
  const uint64_t once = served.name.size() + names + 16 * width + 128;
  return rows * per_row + once;  // rows < 2^32, width <= 2^24: no wrap
}

std::optional<AttributionMethod> RequestedAttributionMethod(v1::AttributionMethod method) {
  if (method == v1::ATTRIBUTION_METHOD_DEFAULT) return AttributionMethod::kIntegratedGradients;
  return ParseAttributionMethod(AttributionMethodShortName(method));
}

absl::StatusOr<ExplainPlan> PlanExplain(const v1::ExplainRequest& request,
                                        const ServedModel& served, const RequestLimits& limits,
                                        TensorInterface* tensors) {
  const Sequential& model = *served.model;
  ExplainPlan plan;
  // Attributions are over the model's inputs; with preprocessing those are
  // not the features a caller sends (a category is several columns).
  if (!served.preprocessing->passthrough()) {
    return absl::UnimplementedError(absl::StrCat(
        "model '", served.name, "' prepares its features (its config's preprocessing); "
        "explanations of such models are not served"));
  }
  // The backward pass differentiates float32 weights; an INT8 model's
  // answers come from other arithmetic (core/linear_kernel_isa.h).
  if (model.precision() != Precision::kFp32) {
    return absl::UnimplementedError(absl::StrCat(
        "model '", served.name, "' runs in ", PrecisionName(model.precision()),
        " (as its file stores it or its config says); explanations are of float32 models "
        "(config precision: fp32 serves them; seqmodel explain --precision fp32 gives them)"));
  }
  if (tensors != nullptr) {
    if (absl::Status checked = CheckTensorInterface(served, tensors); !checked.ok()) {
      return checked;
    }
  }
  const auto method = RequestedAttributionMethod(request.method());
  if (!method) {
    return absl::InvalidArgumentError(absl::StrCat("unknown attribution method ",
                                                   request.method()));
  }
  plan.options.method = *method;
  const auto rule = CoreRule(request.rule());
  if (!rule) {
    return absl::InvalidArgumentError(absl::StrCat("unknown integration rule ", request.rule()));
  }
  plan.options.rule = *rule;
  // Checked with the other options (only integrated gradients reads it).
  plan.options.steps = request.steps() == 0
                           ? kDefaultIntegrationSteps
                           : static_cast<int>(std::min<uint32_t>(
                                 request.steps(), std::numeric_limits<int>::max()));
  auto head = HeadForRequest(request.output(), served);
  if (!head.ok()) return head.status();
  plan.options.head = *head;
  if (request.baseline_size() > 0) {
    plan.options.baseline.assign(request.baseline().begin(), request.baseline().end());
  } else {
    plan.options.baseline.assign(served.config.explanation_baseline().begin(),
                                 served.config.explanation_baseline().end());
  }
  if (absl::Status options = CheckAttributionOptions(model, plan.options); !options.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", served.name, "': ", options.message()));
  }
  auto target = Target(request, served);
  if (!target.ok()) return target.status();
  plan.target = *target;
  auto threshold = ThresholdForRequest(request.threshold(), served);
  if (!threshold.ok()) return threshold.status();
  plan.threshold = *threshold;

  const size_t evaluations = EvaluationsPerRow(model, plan.options);
  const std::string what =
      plan.options.method == AttributionMethod::kIntegratedGradients
          ? absl::StrCat("integrated_gradients at ", plan.options.steps, " steps")
      : plan.options.method == AttributionMethod::kShapley
          ? absl::StrCat("shapley over ", model.input_width(), " features (2^",
                         model.input_width(), " coalitions each)")
          : std::string(AttributionMethodName(plan.options.method));
  if (absl::Status rows = CheckFeatureRows(request.features(), request.rows(), served, limits,
                                           evaluations, what);
      !rows.ok()) {
    return rows;
  }
  plan.rows = request.rows() != 0 ? request.rows()
                                  : static_cast<size_t>(request.features_size()) /
                                        static_cast<size_t>(model.input_width());
  plan.cost_rows = plan.rows * evaluations;
  // The answer is built whole before it is sent: refuse one that could not
  // be sent anyway, before it costs the work.
  const uint64_t response = ExplainResponseBytesBound(served, plan.rows);
  if (limits.max_response_bytes != 0 && response > limits.max_response_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the explanation of ", plan.rows, " rows of ", model.input_width(),
        " features could take ", response, " bytes, over the message limit of ",
        limits.max_response_bytes, "; send fewer rows"));
  }
  return plan;
}

absl::Status BuildExplainResponse(const ServedModel& served, const ExplainPlan& plan,
                                  const Attributions& attributions,
                                  v1::ExplainResponse* response) {
  const Sequential& model = *served.model;
  const size_t width = model.input_width();
  for (size_t r = 0; r < plan.rows; ++r) {
    bool finite = std::isfinite(attributions.scores[r]) &&
                  (attributions.deltas.empty() || std::isfinite(attributions.deltas[r]));
    for (size_t k = 0; k < width; ++k) {
      finite = finite && std::isfinite(attributions.values[r * width + k]);
    }
    if (!finite) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", r, " gives a score or attributions that are not finite (NaN or Inf): its "
          "features overflow model '", served.name, "'; scale them"));
    }
  }
  response->set_model(served.name);
  response->set_version(served.version);
  response->set_method(ApiMethod(plan.options.method));
  response->set_output(OutputModeForHead(plan.options.head));
  if (plan.options.method == AttributionMethod::kIntegratedGradients) {
    response->set_rule(ApiRule(plan.options.rule));
    response->set_steps(static_cast<uint32_t>(plan.options.steps));
  }
  for (size_t k = 0; k < width; ++k) {
    response->add_feature_names(k < static_cast<size_t>(served.config.feature_names_size())
                                    ? served.config.feature_names(static_cast<int>(k))
                                    : absl::StrCat(k));
  }
  // Only the methods that measure from a baseline name one.
  const bool from_baseline = plan.options.method == AttributionMethod::kIntegratedGradients ||
                             plan.options.method == AttributionMethod::kShapley;
  if (from_baseline && plan.options.baseline.empty()) {
    response->mutable_baseline()->Resize(static_cast<int>(width), 0.0f);
  } else if (from_baseline) {
    response->mutable_baseline()->Add(plan.options.baseline.begin(),
                                      plan.options.baseline.end());
  }
  auto* results = response->mutable_results();
  results->Reserve(static_cast<int>(plan.rows));
  for (size_t r = 0; r < plan.rows; ++r) {
    v1::RowExplanation* row = results->Add();
    const int target = attributions.targets[r];
    row->set_target_index(static_cast<uint32_t>(target));
    row->set_target_label(ClassLabel(served, static_cast<uint32_t>(target)));
    row->set_predicted_index(static_cast<uint32_t>(attributions.predicted[r]));
    row->set_score(attributions.scores[r]);
    if (!attributions.baseline_scores.empty()) {
      row->set_baseline_score(attributions.baseline_scores[r]);
    }
    row->mutable_attributions()->Add(attributions.values.begin() + r * width,
                                     attributions.values.begin() + (r + 1) * width);
    if (!attributions.deltas.empty()) row->set_delta(attributions.deltas[r]);
  }
  return absl::OkStatus();
}

}  // namespace seqserve
