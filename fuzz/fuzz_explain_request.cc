// Fuzzes the Explain request path without gRPC: any bytes that parse as an
// ExplainRequest are planned against two served models (multi-class with
// labels and feature names; binary with one label and a baseline in its
// config) under the server's default limits and under tight ones, then
// explained and shaped into a response, as the service's job does.
// Refusals must carry INVALID_ARGUMENT or RESOURCE_EXHAUSTED; a plan must
// keep the rows it evaluates within the limits; answers must have one
// result per row with one finite attribution per feature and a target
// among the model's classes.
//
// The custom mutator edits parsed requests (methods, rules, steps, targets,
// baselines, rows against features), since byte mutations rarely keep
// rows x width equal to the feature count.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/attribution.h"
#include "fuzz/fuzz_support.h"
#include "seqserve/v1/classifier.pb.h"
#include "seqserve/v1/config.pb.h"
#include "serving/explain.h"
#include "serving/served_model.h"

namespace seqserve::fuzz {
namespace {

// The server's default limits, and tight ones small inputs can cross.
constexpr RequestLimits kDefaultLimits{4096, uint64_t{256} << 20, uint64_t{16} << 20};
constexpr RequestLimits kTightLimits{64, 1024, 2048};

std::vector<std::shared_ptr<const ServedModel>> MakeFixture() {
  std::vector<std::shared_ptr<const ServedModel>> served;
  {
    v1::ModelConfig config;
    for (const char* label : {"bird", "mammal", "reptile"}) config.add_labels(label);
    for (const char* name : {"limbs", "lays_eggs", "has_hair"}) config.add_feature_names(name);
    config.set_default_output(v1::OUTPUT_MODE_SOFTMAX);
    auto s = MakeServedModel("species", 1, MultiClassModel(), config);
    Require(s.ok(), "species fixture", s.status());
    served.push_back(*s);
  }
  {
    v1::ModelConfig config;
    config.add_labels("mammal");
    auto binary = BinaryModel();
    for (int k = 0; k < binary->input_width(); ++k) config.add_explanation_baseline(0.5f);
    auto s = MakeServedModel("mammal", 1, binary, config);
    Require(s.ok(), "mammal fixture", s.status());
    served.push_back(*s);
  }
  return served;
}

const std::vector<std::shared_ptr<const ServedModel>>& Fixture() {
  static const auto* const fixture =
      new std::vector<std::shared_ptr<const ServedModel>>(MakeFixture());
  return *fixture;
}

void Answer(const v1::ExplainRequest& request, const ServedModel& served,
            const RequestLimits& limits) {
  auto plan = PlanExplain(request, served, limits);
  if (!plan.ok()) {
    Require(absl::IsInvalidArgument(plan.status()) || absl::IsResourceExhausted(plan.status()),
            "PlanExplain refused with an undocumented code", plan.status());
    return;
  }
  const Sequential& model = *served.model;
  Require(plan->rows > 0 && plan->cost_rows <= limits.max_rows,
          "planned rows out of limits");
  Require(plan->cost_rows == plan->rows * EvaluationsPerRow(model, plan->options),
          "the cost is not the rows evaluated");
  std::vector<int> targets;
  if (plan->target) targets.assign(plan->rows, *plan->target);
  auto attributions =
      Attribute(model, absl::MakeConstSpan(request.features().data(), request.features_size()),
                plan->rows, targets, plan->options, plan->threshold);
  Require(attributions.ok(), "Attribute failed on a planned request", attributions.status());
  v1::ExplainResponse response;
  absl::Status built = BuildExplainResponse(served, *plan, *attributions, &response);
  if (!built.ok()) {
    Require(absl::IsInvalidArgument(built), "BuildExplainResponse: undocumented code", built);
    return;
  }
  Require(response.results_size() == static_cast<int>(plan->rows), "not one result per row");
  Require(response.ByteSizeLong() <= ExplainResponseBytesBound(served, plan->rows),
          "the answer is larger than ExplainResponseBytesBound");
  Require(response.feature_names_size() == model.input_width(), "not one name per feature");
  const uint32_t classes = static_cast<uint32_t>(ClassCount(model.output_width()));
  for (const v1::RowExplanation& row : response.results()) {
    Require(row.attributions_size() == model.input_width(), "not one attribution per feature");
    Require(row.target_index() < classes && row.predicted_index() < classes,
            "a class out of range");
    for (double value : row.attributions()) Require(std::isfinite(value), "a NaN attribution");
    Require(std::isfinite(row.score()) && std::isfinite(row.delta()), "a NaN score or delta");
  }
}

size_t MutateRequest(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::mt19937 rng(seed);
  v1::ExplainRequest request;
  if (rng() % 3 == 0 || !request.ParseFromArray(data, static_cast<int>(size))) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  switch (rng() % 9) {
    case 0: {  // rows that match the features for some width
      const int width = 1 + static_cast<int>(rng() % 4);
      request.set_rows(static_cast<uint32_t>(request.features_size() / width));
      break;
    }
    case 1:  // an extreme feature
      if (request.features_size() > 0) {
        request.set_features(static_cast<int>(rng() % request.features_size()),
                             InterestingFloat(rng));
      }
      break;
    case 2:  // known, unknown and negative methods
      request.set_method(static_cast<v1::AttributionMethod>(static_cast<int>(rng() % 7) - 1));
      break;
    case 3:
      request.set_rule(static_cast<v1::IntegrationRule>(static_cast<int>(rng() % 8) - 1));
      break;
    case 4:
      request.set_steps(rng() % 2 ? static_cast<uint32_t>(rng() % 8)
                                  : static_cast<uint32_t>(InterestingInt(rng)));
      break;
    case 5:
      if (rng() % 2) {
        request.set_target_index(static_cast<uint32_t>(rng() % 5));
      } else {
        static const char* kLabels[] = {"mammal", "bird", "not mammal", "", "fish"};
        request.set_target_label(kLabels[rng() % 5]);
      }
      break;
    case 6: {  // a baseline of some width, maybe extreme
      request.clear_baseline();
      const int width = static_cast<int>(rng() % 5);
      for (int k = 0; k < width; ++k) {
        request.add_baseline(rng() % 4 ? static_cast<float>(rng() % 9) - 4.0f
                                       : InterestingFloat(rng));
      }
      break;
    }
    case 7:
      request.set_output(static_cast<v1::OutputMode>(static_cast<int>(rng() % 7) - 1));
      break;
    default:
      request.set_threshold(InterestingFloat(rng));
      break;
  }
  std::string bytes;
  if (!request.SerializeToString(&bytes) || bytes.size() > max_size) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  std::memcpy(data, bytes.data(), bytes.size());
  return bytes.size();
}

}  // namespace
}  // namespace seqserve::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  seqserve::fuzz::Fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seqserve::v1::ExplainRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  for (const auto& served : seqserve::fuzz::Fixture()) {
    if (!request.model().empty() && request.model() != served->name) continue;
    for (const auto& limits : {seqserve::fuzz::kDefaultLimits, seqserve::fuzz::kTightLimits}) {
      seqserve::fuzz::Answer(request, *served, limits);
    }
  }
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  return seqserve::fuzz::MutateRequest(data, size, max_size, seed);
}
