// PlanClassify and BuildClassifyResponse without a network: every request
// check with its code, and how labels, predictions and top-k come out.
#include "serving/classify.h"
#include "serving/model_inputs.h"
#include "serving/explain.h"
#include "serving/output_mode_name.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "core/onnx_loader.h"
#include "serving/output_mode.h"
#include <google/protobuf/text_format.h>
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::shared_ptr<const ServedModel> Serve(const std::string& reference,
                                         const std::string& config_text = "") {
  auto model = LoadOnnxModel(testing::ReferenceDir() + "/" + reference + ".onnx");
  EXPECT_TRUE(model.ok()) << model.status();
  auto data = testing::LoadReference(reference);
  v1::ModelConfig config;
  for (const auto& label : data->labels) config.add_labels(label);
  EXPECT_TRUE(google::protobuf::TextFormat::MergeFromString(config_text, &config));
  auto served = MakeServedModel(reference, 1, std::move(*model), config);
  EXPECT_TRUE(served.ok()) << served.status();
  return *served;
}

v1::ClassifyRequest Request(std::vector<float> features, uint32_t rows) {
  v1::ClassifyRequest request;
  request.set_model("m");
  request.mutable_features()->Add(features.begin(), features.end());
  request.set_rows(rows);
  return request;
}

void ExpectError(const absl::Status& status, absl::StatusCode code,
                 const std::string& fragment) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fragment));
}

void ExpectPlanError(const absl::StatusOr<ClassifyPlan>& plan,
                     absl::StatusCode code, const std::string& fragment) {
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), code) << plan.status();
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr(fragment));
}

v1::ClassifyResponse RunPlan(const ServedModel& served,
                             const v1::ClassifyRequest& request) {
  auto plan = PlanClassify(request, served, RequestLimits{});
  EXPECT_TRUE(plan.ok()) << plan.status();
  std::vector<float> logits(plan->rows * served.model->output_width());
  EXPECT_TRUE(served.model->Forward(request.features(), plan->rows,
                                    absl::MakeSpan(logits)).ok());
  v1::ClassifyResponse response;
  const absl::Status built =
      BuildClassifyResponse(served, *plan, absl::MakeSpan(logits), &response);
  EXPECT_TRUE(built.ok()) << built;
  return response;
}

// One vocabulary: a v2 output's name (core's head name) is the API's
// OutputMode name in lower case, which is how the client names v2 outputs.
TEST(OutputMode, EveryHeadIsNamedAsItsOutputMode) {
  for (int mode = v1::OutputMode_MIN; mode <= v1::OutputMode_MAX; ++mode) {
    if (!v1::OutputMode_IsValid(mode) || mode == v1::OUTPUT_MODE_DEFAULT) continue;
    const auto head = HeadForOutputMode(static_cast<v1::OutputMode>(mode));
    ASSERT_TRUE(head.has_value()) << mode;
    EXPECT_EQ(std::string(HeadName(*head)),
              absl::AsciiStrToLower(absl::StripPrefix(
                  v1::OutputMode_Name(static_cast<v1::OutputMode>(mode)), "OUTPUT_MODE_")));
  }
}

TEST(ApiEnumNames, AJsonBodysShortNamesBecomeTheApisInOnePass) {
  EXPECT_EQ(WithApiEnumNames(R"({"output": "logits", "method": "shapley", "rule": )"
                             R"("gausslegendre", "x": {"method": "saliency"}})"),
            R"({"output": "OUTPUT_MODE_LOGITS", "method": "ATTRIBUTION_METHOD_SHAPLEY", )"
            R"("rule": "INTEGRATION_RULE_GAUSSLEGENDRE", "x": {"method": "saliency"}})");
  EXPECT_EQ(WithApiEnumNames(R"({"output": "OUTPUT_MODE_LOGITS", "method": "lime"})"),
            std::nullopt);
  // A body that repeats a key many times is rewritten once through: the
  // answer is every repeat rewritten, in memory the size of the body.
  std::string body = "{";
  std::string expected = "{";
  for (int i = 0; i < 100000; ++i) {
    body += R"("method": "saliency",)";
    expected += R"("method": "ATTRIBUTION_METHOD_SALIENCY",)";
  }
  body += R"("features": [1]})";
  expected += R"("features": [1]})";
  EXPECT_EQ(WithApiEnumNames(body), expected);
}

TEST(ApiEnumNames, ExplainsEnumsHaveCaptumsNames) {
  EXPECT_EQ(AttributionMethodShortName(v1::ATTRIBUTION_METHOD_INPUT_X_GRADIENT),
            "input_x_gradient");
  EXPECT_EQ(IntegrationRuleShortName(v1::INTEGRATION_RULE_GAUSSLEGENDRE), "gausslegendre");
  EXPECT_EQ(ParseIntegrationRuleName("riemann_trapezoid"), v1::INTEGRATION_RULE_RIEMANN_TRAPEZOID);
  EXPECT_EQ(ParseAttributionMethodName("ATTRIBUTION_METHOD_SHAPLEY"),
            v1::ATTRIBUTION_METHOD_SHAPLEY);
  EXPECT_EQ(ParseAttributionMethodName("lime"), std::nullopt);
}

TEST(PlanClassify, RefusesAnEmptyBatch) {
  auto served = Serve("species");
  ExpectPlanError(PlanClassify(Request({}, 0), *served, {}),
                  absl::StatusCode::kInvalidArgument, "empty batch");
}

// Rows left out (0) are the features over the input width: whole rows only.
TEST(PlanClassify, InfersRowsFromTheFeaturesWhenLeftOut) {
  auto served = Serve("species");
  auto plan = PlanClassify(Request({4, 0, 1, 2, 1, 0}, 0), *served, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->rows, 2u);
  const v1::ClassifyResponse inferred = RunPlan(*served, Request({4, 0, 1, 2, 1, 0}, 0));
  const v1::ClassifyResponse given = RunPlan(*served, Request({4, 0, 1, 2, 1, 0}, 2));
  EXPECT_EQ(inferred.SerializeAsString(), given.SerializeAsString());
  ExpectPlanError(PlanClassify(Request({4, 0, 1, 2}, 0), *served, {}),
                  absl::StatusCode::kInvalidArgument,
                  "model 'species' takes 3 features per row: 4 values are not whole rows");
  // Given rows still have to match.
  ExpectPlanError(PlanClassify(Request({4, 0, 1, 2, 1, 0}, 3), *served, {}),
                  absl::StatusCode::kInvalidArgument, "3 rows need 9 values, got 6");
}

TEST(PlanClassify, RefusesRowsOfTheWrongWidth) {
  auto served = Serve("species");
  ExpectPlanError(PlanClassify(Request({4, 0, 1, 2}, 1), *served, {}),
                  absl::StatusCode::kInvalidArgument,
                  "takes 3 features per row: 1 rows need 3 values, got 4");
  ExpectPlanError(PlanClassify(Request({4, 0, 1, 2, 1}, 2), *served, {}),
                  absl::StatusCode::kInvalidArgument, "2 rows need 6 values, got 5");
}

TEST(PrepareModelInputs, RefusesNanAndInfFeatures) {
  auto served = Serve("species");
  auto prepare = [&](const v1::ClassifyRequest& request) {
    ModelInputs inputs;
    return PrepareModelInputs(request, request.rows(), *served, &inputs);
  };
  ExpectError(prepare(Request({4, 0, 1, 2, std::nanf(""), 0}, 2)),
              absl::StatusCode::kInvalidArgument, "row 1 feature 1 is NaN or Inf");
  ExpectError(prepare(Request({std::numeric_limits<float>::infinity(), 0, 1}, 1)),
              absl::StatusCode::kInvalidArgument, "row 0 feature 0 is NaN or Inf");
}

TEST(PlanClassify, RefusesTopKBeyondTheOutputs) {
  auto served = Serve("species");
  auto request = Request({4, 0, 1}, 1);
  request.set_top_k(4);
  ExpectPlanError(PlanClassify(request, *served, {}),
                  absl::StatusCode::kInvalidArgument,
                  "top_k 4 is more than the 3 outputs");
}

TEST(PlanClassify, RefusesUnknownOutputModesAndSoftmaxOfOneOutput) {
  auto species = Serve("species");
  auto request = Request({4, 0, 1}, 1);
  request.set_output(static_cast<v1::OutputMode>(9));
  ExpectPlanError(PlanClassify(request, *species, {}),
                  absl::StatusCode::kInvalidArgument, "unknown output mode 9");
  auto mammal = Serve("mammal");
  request.set_output(v1::OUTPUT_MODE_SOFTMAX);
  ExpectPlanError(PlanClassify(request, *mammal, {}),
                  absl::StatusCode::kInvalidArgument,
                  "has one output; softmax over it is always 1");
  request.set_output(v1::OUTPUT_MODE_LOG_SOFTMAX);
  ExpectPlanError(PlanClassify(request, *mammal, {}),
                  absl::StatusCode::kInvalidArgument,
                  "model 'mammal' has one output; log_softmax over it is always 0");
}

// Log-probabilities are torch.log_softmax of the logits: the log of the
// softmax answer, and the logits shifted so that each row's exp sums to 1.
TEST(BuildClassifyResponse, LogSoftmaxRowsAreTheLogOfTheDistribution) {
  auto served = Serve("species");
  auto request = Request({4, 0, 1, 2, 1, 0, 0, 1, 0}, 3);
  const v1::ClassifyResponse softmax = RunPlan(*served, request);
  request.set_output(v1::OUTPUT_MODE_LOG_SOFTMAX);
  request.set_top_k(1);
  const v1::ClassifyResponse log_softmax = RunPlan(*served, request);
  EXPECT_EQ(log_softmax.output(), v1::OUTPUT_MODE_LOG_SOFTMAX);
  ASSERT_EQ(log_softmax.results_size(), 3);
  for (int row = 0; row < 3; ++row) {
    const auto& logs = log_softmax.results(row);
    for (int i = 0; i < 3; ++i) {
      EXPECT_LE(logs.scores(i), 0.0f);
      EXPECT_NEAR(std::exp(logs.scores(i)), softmax.results(row).scores(i), 1e-6);
    }
    EXPECT_EQ(logs.predicted_label(), softmax.results(row).predicted_label());
    EXPECT_EQ(logs.top_k(0).index(), logs.predicted_index());
  }
}

TEST(PlanClassify, RefusesThresholdsOutsideZeroOne) {
  auto served = Serve("mammal");
  for (float threshold : {-0.5f, 1.0f, 2.0f, std::nanf("")}) {
    auto request = Request({4, 0, 1}, 1);
    request.set_threshold(threshold);
    ExpectPlanError(PlanClassify(request, *served, {}),
                    absl::StatusCode::kInvalidArgument, "is outside (0, 1)");
  }
}

TEST(PlanClassify, RowLimitsComeFromTheModelOrTheServer) {
  auto served = Serve("species");
  ExpectPlanError(PlanClassify(Request(std::vector<float>(9), 3), *served, {2}),
                  absl::StatusCode::kResourceExhausted,
                  "batch of 3 rows is over the limit of 2 rows per request");
  auto limited = Serve("species", "max_request_rows: 1");
  ExpectPlanError(PlanClassify(Request(std::vector<float>(6), 2), *limited, {100}),
                  absl::StatusCode::kResourceExhausted, "over the limit of 1 rows");
  EXPECT_TRUE(PlanClassify(Request(std::vector<float>(6), 2), *served, {2}).ok());
}

TEST(PlanClassify, RefusesRequestsWhoseActivationsOverflowTheMemoryLimit) {
  // 3 -> 2^20 -> 3: 1000 rows would hold 4 GiB of activations in one pass.
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(3, 1 << 20, std::vector<float>(3 << 20, 0.01f), {}));
  layers.push_back(Layer::Relu());
  layers.push_back(Layer::Linear(1 << 20, 3, std::vector<float>(3 << 20, 0.01f), {}));
  auto model = Sequential::Create(3, std::move(layers), Head::kSoftmax);
  ASSERT_TRUE(model.ok()) << model.status();
  auto wide = MakeServedModel("wide", 1, std::move(*model), v1::ModelConfig());
  ASSERT_TRUE(wide.ok()) << wide.status();
  RequestLimits limits;
  limits.max_memory_bytes = uint64_t{256} << 20;
  ExpectPlanError(PlanClassify(Request(std::vector<float>(3000), 1000), **wide, limits),
                  absl::StatusCode::kResourceExhausted,
                  "batch of 1000 rows holds 4194304000 bytes of activations as one pass "
                  "(1048576 values per row in model 'wide'), over the limit of 268435456 bytes");
  EXPECT_TRUE(PlanClassify(Request(std::vector<float>(3 * 64), 64), **wide, limits).ok());
}

// A 48 KB request for 4096 rows of top-3 with long labels could build an
// answer far over the message limit: refused before it is computed.
TEST(PlanClassify, RefusesAnswersThatCouldNotBeSent) {
  v1::ModelConfig config;
  for (const std::string& label : {std::string(1000, 'b'), std::string("m"), std::string("r")}) {
    config.add_labels(label);
  }
  auto served = *MakeServedModel("species", 1, Serve("species")->model, config);
  RequestLimits limits;
  limits.max_response_bytes = 8 << 20;
  auto request = Request(std::vector<float>(3 * 4096, 1.0f), 4096);
  EXPECT_TRUE(PlanClassify(request, *served, limits).ok());  // scores and labels: about 4 MB
  request.set_top_k(3);
  ExpectPlanError(PlanClassify(request, *served, limits), absl::StatusCode::kResourceExhausted,
                  "over the message limit of 8388608; send fewer rows or ask for a smaller top_k");
  // The bound holds: what is built never exceeds it.
  request = Request(std::vector<float>(3 * 200, 1.0f), 200);
  request.set_top_k(3);
  auto plan = PlanClassify(request, *served, limits);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_LE(RunPlan(*served, request).ByteSizeLong(), ResponseBytesBound(*served, *plan));
}

TEST(BuildClassifyResponse, RowsWhoseScoresAreNotFiniteAreRefused) {
  // Finite but extreme features: PyTorch gives NaN for this row too.
  auto served = Serve("species");
  auto request = Request({4, 0, 1, -3e38f, 1, 1}, 2);
  auto plan = PlanClassify(request, *served, RequestLimits{});
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<float> logits(2 * 3);
  ASSERT_TRUE(served->model->Forward(request.features(), 2, absl::MakeSpan(logits)).ok());
  v1::ClassifyResponse response;
  const absl::Status built =
      BuildClassifyResponse(*served, *plan, absl::MakeSpan(logits), &response);
  EXPECT_EQ(built.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(built.message()), HasSubstr("row 1 gives scores that are not finite"));
}

TEST(BuildClassifyResponse, SoftmaxRowsCarryLabelsAndTopK) {
  auto served = Serve("species");
  auto request = Request({4, 0, 1, 2, 1, 0, 0, 1, 0}, 3);
  request.set_top_k(2);
  const v1::ClassifyResponse response = RunPlan(*served, request);
  EXPECT_EQ(response.model(), "species");
  EXPECT_EQ(response.version(), 1);
  EXPECT_EQ(response.output(), v1::OUTPUT_MODE_SOFTMAX);
  ASSERT_EQ(response.results_size(), 3);
  std::vector<std::string> predicted;
  for (const auto& row : response.results()) {
    predicted.push_back(row.predicted_label());
    EXPECT_NEAR(row.scores(0) + row.scores(1) + row.scores(2), 1.0f, 1e-6);
    ASSERT_EQ(row.top_k_size(), 2);
    EXPECT_EQ(row.top_k(0).index(), row.predicted_index());
    EXPECT_EQ(row.top_k(0).label(), row.predicted_label());
    EXPECT_GE(row.top_k(0).score(), row.top_k(1).score());
    EXPECT_EQ(row.positive_size(), 0);
  }
  EXPECT_THAT(predicted, ElementsAre("mammal", "bird", "reptile"));
}

TEST(BuildClassifyResponse, BinarySigmoidNamesThePositiveClassOrItsAbsence) {
  auto served = Serve("mammal");
  const v1::ClassifyResponse response =
      RunPlan(*served, Request({4, 0, 1, 2, 1, 0}, 2));
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.output(), v1::OUTPUT_MODE_SIGMOID);
  EXPECT_EQ(response.results(0).predicted_index(), 1u);
  EXPECT_EQ(response.results(0).predicted_label(), "mammal");
  EXPECT_EQ(response.results(1).predicted_index(), 0u);
  EXPECT_EQ(response.results(1).predicted_label(), "not mammal");

  // Two labels name the negative class too.
  v1::ModelConfig config;
  config.add_labels("other");
  config.add_labels("mammal");
  auto two = MakeServedModel("mammal", 1, served->model, config);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(RunPlan(**two, Request({2, 1, 0}, 1)).results(0).predicted_label(), "other");
  EXPECT_EQ(RunPlan(**two, Request({4, 0, 1}, 1)).results(0).predicted_label(), "mammal");

  // The one output is p, the positive class's probability; the row is the
  // negative class, with 1 - p, and top_k names it first.
  auto request = Request({2, 1, 0}, 1);
  request.set_top_k(1);
  const v1::RowResult row = RunPlan(**two, request).results(0);
  ASSERT_EQ(row.scores_size(), 1);
  ASSERT_EQ(row.top_k_size(), 1);
  EXPECT_EQ(row.top_k(0).index(), 0u);
  EXPECT_EQ(row.top_k(0).label(), "other");
  EXPECT_EQ(row.top_k(0).score(), 1.0f - row.scores(0));
  EXPECT_EQ(row.score(), 1.0f - row.scores(0));
}

// Two labels and one sigmoid output: a two-class classifier in every field
// but the raw scores, which keep the one output.
TEST(BuildClassifyResponse, BinaryModelAnswersItsTwoClasses) {
  auto one_label = Serve("mammal");
  v1::ModelConfig config;
  config.add_labels("stays");
  config.add_labels("churns");
  auto served = MakeServedModel("churn", 1, one_label->model, config);
  ASSERT_TRUE(served.ok()) << served.status();
  // A platypus (p near 1, below it), then a bird (p near 0).
  auto request = Request({4, 1, 1, 2, 1, 0}, 2);
  request.set_top_k(2);
  const v1::ClassifyResponse sigmoid = RunPlan(**served, request);
  ASSERT_EQ(sigmoid.results_size(), 2);
  for (int r = 0; r < 2; ++r) {
    const v1::RowResult& row = sigmoid.results(r);
    ASSERT_EQ(row.scores_size(), 1);
    const float p = row.scores(0);
    const bool churns = r == 0;
    EXPECT_EQ(churns, p > 0.5f) << p;
    EXPECT_EQ(row.predicted_index(), churns ? 1u : 0u);
    EXPECT_EQ(row.predicted_label(), churns ? "churns" : "stays");
    EXPECT_EQ(row.score(), churns ? p : 1.0f - p);
    ASSERT_EQ(row.top_k_size(), 2);
    EXPECT_EQ(row.top_k(0).index(), row.predicted_index());
    EXPECT_EQ(row.top_k(0).label(), row.predicted_label());
    EXPECT_EQ(row.top_k(0).score(), row.score());
    EXPECT_EQ(row.top_k(1).index(), churns ? 0u : 1u);
    EXPECT_EQ(row.top_k(1).label(), churns ? "stays" : "churns");
    EXPECT_EQ(row.top_k(1).score(), churns ? 1.0f - p : p);
    EXPECT_EQ(row.positive_size(), 0);
  }
  // Logits: the same classes, scored -z and z.
  request.set_output(v1::OUTPUT_MODE_LOGITS);
  const v1::ClassifyResponse logits = RunPlan(**served, request);
  for (int r = 0; r < 2; ++r) {
    const v1::RowResult& row = logits.results(r);
    const float z = row.scores(0);
    EXPECT_EQ(row.predicted_index(), sigmoid.results(r).predicted_index());
    EXPECT_EQ(row.score(), row.predicted_index() == 1 ? z : -z);
    EXPECT_EQ(row.top_k(1).score(), row.predicted_index() == 1 ? -z : z);
  }
  // A threshold just above the platypus's p makes it "stays", first in top_k.
  request.set_output(v1::OUTPUT_MODE_SIGMOID);
  request.set_threshold(std::nextafter(sigmoid.results(0).scores(0), 1.0f));
  for (v1::OutputMode mode : {v1::OUTPUT_MODE_SIGMOID, v1::OUTPUT_MODE_LOGITS}) {
    request.set_output(mode);
    const v1::RowResult strict = RunPlan(**served, request).results(0);
    EXPECT_EQ(strict.predicted_label(), "stays") << mode;
    EXPECT_EQ(strict.top_k(0).index(), 0u) << mode;
    EXPECT_EQ(strict.score(), strict.top_k(0).score()) << mode;
  }
  request.set_top_k(3);
  ExpectPlanError(PlanClassify(request, **served, RequestLimits{}),
                  absl::StatusCode::kInvalidArgument,
                  "top_k 3 is more than the 2 classes (one output: binary) of model 'churn'");
}

TEST(BuildClassifyResponse, ThresholdMovesTheBinaryDecision) {
  auto served = Serve("mammal");
  // Row {4, 1, 1} (platypus) scores 0.9999947 in PyTorch.
  auto request = Request({4, 1, 1}, 1);
  EXPECT_EQ(RunPlan(*served, request).results(0).predicted_index(), 1u);
  request.set_threshold(0.999999f);
  EXPECT_EQ(RunPlan(*served, request).results(0).predicted_index(), 0u);
  // Logits use the same threshold through its logit.
  request.set_output(v1::OUTPUT_MODE_LOGITS);
  EXPECT_EQ(RunPlan(*served, request).results(0).predicted_index(), 0u);
}

TEST(BuildClassifyResponse, MultiLabelSigmoidListsEveryPositiveLabel) {
  auto served = Serve("multilabel_logits");
  auto reference = testing::LoadReference("multilabel_logits");
  ASSERT_TRUE(reference.ok());
  auto request = Request(reference->inputs, reference->rows);
  request.set_output(v1::OUTPUT_MODE_SIGMOID);
  const v1::ClassifyResponse response = RunPlan(*served, request);
  ASSERT_EQ(response.results_size(), static_cast<int>(reference->rows));
  for (size_t r = 0; r < reference->rows; ++r) {
    std::vector<std::string> expected, actual;
    for (size_t i = 0; i < 4; ++i) {
      if (reference->sigmoid[r * 4 + i] > 0.5f) expected.push_back(reference->labels[i]);
    }
    for (const auto& positive : response.results(r).positive()) {
      actual.push_back(positive.label());
      EXPECT_GT(positive.score(), 0.5f);
    }
    EXPECT_EQ(actual, expected) << "row " << r;
  }
}

// The one answer of PlanOutputs + BuildClassifyResponses for `output`.
v1::ClassifyResponse RunOutput(const ServedModel& served, const v1::ClassifyRequest& request,
                               const OutputRequest& output) {
  auto plans = PlanOutputs(request, {output}, nullptr, served, RequestLimits{});
  EXPECT_TRUE(plans.ok()) << plans.status();
  std::vector<float> logits(plans->front().rows * served.model->output_width());
  EXPECT_TRUE(served.model->Forward(request.features(), plans->front().rows,
                                    absl::MakeSpan(logits)).ok());
  v1::ClassifyResponse response;
  v1::ClassifyResponse* target = &response;
  EXPECT_TRUE(BuildClassifyResponses(served, *plans, absl::MakeSpan(logits),
                                     absl::MakeSpan(&target, 1)).ok());
  return response;
}

TEST(BuildClassifyResponse, EveryClassComesInIndexOrderWithItsProbability) {
  OutputRequest every;
  every.every_class = true;
  // Several outputs: the softmax distribution, labelled, in output order.
  auto species = Serve("species");
  const v1::ClassifyRequest rows = Request({4, 0, 1, 2, 1, 0}, 2);
  v1::ClassifyRequest softmax = rows;
  softmax.set_output(v1::OUTPUT_MODE_SOFTMAX);
  const v1::ClassifyResponse distribution = RunPlan(*species, softmax);
  const v1::ClassifyResponse classes = RunOutput(*species, rows, every);
  EXPECT_EQ(classes.output(), v1::OUTPUT_MODE_SOFTMAX);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(classes.results(r).top_k_size(), 3);
    for (int i = 0; i < 3; ++i) {
      const v1::ScoredClass& entry = classes.results(r).top_k(i);
      EXPECT_EQ(entry.index(), static_cast<uint32_t>(i));
      EXPECT_EQ(entry.label(), (std::vector<std::string>{"bird", "mammal", "reptile"})[i]);
      EXPECT_EQ(entry.score(), distribution.results(r).scores(i));
    }
  }
  // One output: two classes, 1 - p and p, named as predicted_label would.
  auto one_label = Serve("mammal");
  v1::ModelConfig two_labels = one_label->config;
  two_labels.clear_labels();
  two_labels.add_labels("no");
  two_labels.add_labels("yes");
  auto with_two = MakeServedModel("mammal", 1, one_label->model, two_labels);
  ASSERT_TRUE(with_two.ok()) << with_two.status();
  for (const auto& [mammal, negative, positive] :
       std::vector<std::tuple<std::shared_ptr<const ServedModel>, std::string, std::string>>{
           {one_label, "not mammal", "mammal"}, {*with_two, "no", "yes"}}) {
    v1::ClassifyRequest sigmoid = rows;
    sigmoid.set_output(v1::OUTPUT_MODE_SIGMOID);
    const v1::ClassifyResponse p = RunPlan(*mammal, sigmoid);
    const v1::ClassifyResponse both = RunOutput(*mammal, rows, every);
    for (int r = 0; r < 2; ++r) {
      ASSERT_EQ(both.results(r).top_k_size(), 2);
      EXPECT_EQ(both.results(r).top_k(0).label(), negative);
      EXPECT_EQ(both.results(r).top_k(0).score(), 1.0f - p.results(r).scores(0));
      EXPECT_EQ(both.results(r).top_k(1).label(), positive);
      EXPECT_EQ(both.results(r).top_k(1).score(), p.results(r).scores(0));
    }
  }
  // Only with the model's own head and no top_k.
  every.top_k = 1;
  ExpectPlanError(
      [&]() -> absl::StatusOr<ClassifyPlan> {
        auto plans = PlanOutputs(rows, {every}, nullptr, *species, RequestLimits{});
        if (!plans.ok()) return plans.status();
        return plans->front();
      }(),
      absl::StatusCode::kInvalidArgument, "no output mode or top_k");
}

TEST(PrepareModelInputs, NamedColumnsArePutInTheModelsOrder) {
  auto species = Serve("species", "feature_names: ['limbs', 'lays_eggs', 'has_hair']");
  auto prepare = [&](const ServedModel& served, std::vector<std::string> names) {
    v1::ClassifyRequest request = Request({1, 0, 4}, 1);
    for (std::string& name : names) request.add_columns(std::move(name));
    ModelInputs inputs;
    const absl::Status status = PrepareModelInputs(request, 1, served, &inputs);
    return std::make_pair(status, std::vector<float>(inputs.values.begin(), inputs.values.end()));
  };
  const auto [ok, values] = prepare(*species, {"has_hair", "lays_eggs", "limbs"});
  EXPECT_TRUE(ok.ok()) << ok;
  EXPECT_THAT(values, ElementsAre(4, 0, 1));
  EXPECT_THAT(std::string(prepare(*species, {"has_hair", "wings", "limbs"}).first.message()),
              HasSubstr("model 'species' has no feature 'wings'; its features are limbs, "
                        "lays_eggs, has_hair"));
  EXPECT_THAT(std::string(prepare(*species, {"has_hair", "limbs"}).first.message()),
              HasSubstr("feature 'lays_eggs' of model 'species' is missing"));
  EXPECT_THAT(std::string(prepare(*species, {"has_hair", "limbs", "limbs"}).first.message()),
              HasSubstr("feature 'limbs' of model 'species' is given more than once"));
  auto bare = Serve("species");
  const absl::Status refused = prepare(*bare, {"limbs", "lays_eggs", "has_hair"}).first;
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("model 'species' names no features (its config has no feature_names): "
                        "give each row's 3 values in order"));
}

TEST(MakeServedModel, RefusesConfigsThatDoNotFitTheModel) {
  auto model = LoadOnnxModel(testing::ReferenceDir() + "/species.onnx");
  ASSERT_TRUE(model.ok());
  std::shared_ptr<const Sequential> shared = std::move(*model);
  v1::ModelConfig config;
  config.add_labels("bird");
  config.add_labels("mammal");
  auto served = MakeServedModel("species", 1, shared, config);
  EXPECT_EQ(served.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(served.status().message()),
              HasSubstr("config gives 2 labels for 3 outputs"));
  config.Clear();
  config.add_feature_names("limbs");
  served = MakeServedModel("species", 1, shared, config);
  EXPECT_EQ(served.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(served.status().message()),
              HasSubstr("config gives 1 feature names for 3 inputs"));
  config.Clear();
  config.add_explanation_baseline(0.0f);
  served = MakeServedModel("species", 1, shared, config);
  EXPECT_EQ(served.status().message(), "config gives 1 explanation_baseline values for 3 inputs");
  config.add_explanation_baseline(0.0f);
  config.add_explanation_baseline(std::numeric_limits<float>::infinity());
  served = MakeServedModel("species", 1, shared, config);
  EXPECT_EQ(served.status().message(), "config explanation_baseline holds NaN or Inf");
  config.set_explanation_baseline(2, 1.0f);
  EXPECT_TRUE(MakeServedModel("species", 1, shared, config).ok());
  config.Clear();
  config.set_threshold(1.5f);
  served = MakeServedModel("species", 1, shared, config);
  EXPECT_THAT(std::string(served.status().message()), HasSubstr("threshold 1.5"));
  auto mammal = LoadOnnxModel(testing::ReferenceDir() + "/mammal.onnx");
  ASSERT_TRUE(mammal.ok());
  config.Clear();
  config.set_default_output(v1::OUTPUT_MODE_SOFTMAX);
  served = MakeServedModel("mammal", 1, std::move(*mammal), config);
  EXPECT_EQ(served.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(served.status().message()), HasSubstr("for a one-output model; use sigmoid"));
  auto mammal_again = LoadOnnxModel(testing::ReferenceDir() + "/mammal.onnx");
  ASSERT_TRUE(mammal_again.ok());
  config.set_default_output(v1::OUTPUT_MODE_LOG_SOFTMAX);
  served = MakeServedModel("mammal", 1, std::move(*mammal_again), config);
  EXPECT_EQ(served.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(served.status().message()),
              HasSubstr("default_output is log_softmax, which is always 0 for a one-output"));
  config.Clear();
  config.set_default_output(v1::OUTPUT_MODE_LOGITS);
  served = MakeServedModel("species", 1, shared, config);
  ASSERT_TRUE(served.ok());
  EXPECT_EQ((*served)->default_head, Head::kLogits);
}

TEST(PlanExplain, RefusesAnAnswerOverTheMessageLimitBeforeAnyWork) {
  auto model = LoadOnnxModel(testing::ReferenceDir() + "/species.onnx");
  ASSERT_TRUE(model.ok());
  v1::ModelConfig config;
  for (const char* label : {"bird", "mammal", "reptile"}) config.add_labels(label);
  auto served = MakeServedModel("species", 1, std::move(*model), config);
  ASSERT_TRUE(served.ok());
  v1::ExplainRequest request;
  request.set_method(v1::ATTRIBUTION_METHOD_SALIENCY);
  for (int i = 0; i < 3 * 100; ++i) request.add_features(1.0f);
  const RequestLimits limits{0, 0, 4000};
  auto plan = PlanExplain(request, **served, limits);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(plan.status().message()),
              HasSubstr("the explanation of 100 rows of 3 features could take"));
  // A request within it: the answer is no larger than the bound.
  request.mutable_features()->Truncate(3 * 5);
  plan = PlanExplain(request, **served, limits);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto attributions =
      Attribute(*(*served)->model, request.features(), plan->rows, {}, plan->options);
  ASSERT_TRUE(attributions.ok());
  v1::ExplainResponse response;
  ASSERT_TRUE(BuildExplainResponse(**served, *plan, *attributions, &response).ok());
  EXPECT_LE(response.ByteSizeLong(), ExplainResponseBytesBound(**served, 5));
}

}  // namespace
}  // namespace seqserve
