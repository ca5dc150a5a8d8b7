// Explain on a real server: gRPC and REST give PyTorch's attributions (the
// reference set's), the same numbers on both, the costs are bounded by the
// request limits, and the metrics count explanations by method.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/reference_data.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::HttpCall;
using testing::HttpReply;
using testing::TestRepository;

nlohmann::json ExplanationReference(const std::string& name) {
  std::ifstream file(std::filesystem::path(testing::ReferenceDir()) / "explanations" /
                     (name + ".json"));
  return nlohmann::json::parse(file);
}

// The reference's first entry for a method, rule and head whose targets
// are the predicted classes (the request's default).
nlohmann::json FindCase(const nlohmann::json& reference, const std::string& method,
                        const std::string& head, const std::string& rule = "") {
  for (const auto& entry : reference["explanations"]) {
    if (entry["method"] == method && entry["head"] == head &&
        entry.value("rule", "") == rule) {
      return entry;
    }
  }
  ADD_FAILURE() << "no " << method << " " << rule << " under " << head;
  return {};
}

bool Close(double actual, double expected) {
  return std::fabs(actual - expected) <= 1e-5 * std::fabs(expected) + 1e-6;
}

class ExplainApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository_.AddReferenceVersion("species", 1, "species");
    repository_.WriteReferenceConfig("species", "species",
                                     "feature_names: \"limbs\"\n"
                                     "feature_names: \"lays_eggs\"\n"
                                     "feature_names: \"hair\"\n");
    repository_.AddReferenceVersion("mammal", 1, "mammal");
    repository_.WriteReferenceConfig("mammal", "mammal");
    repository_.AddReferenceVersion("bird", 1, "species");
    repository_.WriteReferenceConfig("bird", "species", "explanation_baseline: [2, 1, 0]\n");
    ModelServer::Options options;
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    options.max_request_rows = 300;
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::Classifier::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Explain(const v1::ExplainRequest& request, v1::ExplainResponse* response) {
    grpc::ClientContext context;
    return stub_->Explain(&context, request, response);
  }

  // The reference's rows for `name`, as a request's features.
  static void AddRows(const nlohmann::json& reference, v1::ExplainRequest* request) {
    for (const auto& row : reference["inputs"]) {
      for (double value : row) request->add_features(static_cast<float>(value));
    }
    request->set_rows(static_cast<uint32_t>(reference["inputs"].size()));
  }

  TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

TEST_F(ExplainApiTest, GrpcGivesPyTorchsIntegratedGradientsForEachRowsPredictedClass) {
  const nlohmann::json reference = ExplanationReference("species");
  const nlohmann::json expected =
      FindCase(reference, "integrated_gradients", "softmax", "gausslegendre");
  v1::ExplainRequest request;
  request.set_model("species");
  AddRows(reference, &request);
  v1::ExplainResponse response;
  const grpc::Status status = Explain(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.method(), v1::ATTRIBUTION_METHOD_INTEGRATED_GRADIENTS);
  EXPECT_EQ(response.rule(), v1::INTEGRATION_RULE_GAUSSLEGENDRE);
  EXPECT_EQ(response.steps(), 50u);
  EXPECT_EQ(response.output(), v1::OUTPUT_MODE_SOFTMAX);
  EXPECT_THAT(response.feature_names(), ::testing::ElementsAre("limbs", "lays_eggs", "hair"));
  EXPECT_THAT(response.baseline(), ::testing::ElementsAre(0.0f, 0.0f, 0.0f));
  ASSERT_EQ(response.results_size(), static_cast<int>(reference["inputs"].size()));
  // The predicted classes are the reference's targets here only when its
  // targets are the predicted ones: the first entry of each kind is.
  for (int r = 0; r < response.results_size(); ++r) {
    const v1::RowExplanation& row = response.results(r);
    EXPECT_EQ(row.target_index(), expected["targets"][r].get<uint32_t>()) << "row " << r;
    EXPECT_EQ(row.predicted_index(), row.target_index());
    EXPECT_FALSE(row.target_label().empty());
    EXPECT_TRUE(Close(row.score(), expected["scores"][r].get<double>()));
    ASSERT_EQ(row.attributions_size(), 3);
    for (int k = 0; k < 3; ++k) {
      EXPECT_TRUE(Close(row.attributions(k), expected["attributions"][r][k].get<double>()))
          << "row " << r << " feature " << k << ": " << row.attributions(k) << " vs "
          << expected["attributions"][r][k];
    }
  }
}

TEST_F(ExplainApiTest, RestAndGrpcGiveTheSameAnswerForTheSameRequest) {
  const std::string body = R"({"features": [4, 0, 1, 2, 1, 0], "method": "shapley",
      "target_label": "mammal", "output": "logits"})";
  const HttpReply reply =
      HttpCall(server_->http_port(), "POST", "/v1/models/species:explain", body);
  ASSERT_EQ(reply.status, 200) << reply.body;
  const nlohmann::json rest = nlohmann::json::parse(reply.body);
  EXPECT_EQ(rest["method"], "ATTRIBUTION_METHOD_SHAPLEY");
  EXPECT_EQ(rest["output"], "OUTPUT_MODE_LOGITS");

  v1::ExplainRequest request;
  request.set_model("species");
  for (float value : {4.0f, 0.0f, 1.0f, 2.0f, 1.0f, 0.0f}) request.add_features(value);
  request.set_method(v1::ATTRIBUTION_METHOD_SHAPLEY);
  request.set_target_label("mammal");
  request.set_output(v1::OUTPUT_MODE_LOGITS);
  v1::ExplainResponse response;
  ASSERT_TRUE(Explain(request, &response).ok());
  ASSERT_EQ(rest["results"].size(), 2u);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(rest["results"][r]["target_label"], "mammal");
    EXPECT_EQ(response.results(r).target_label(), "mammal");
    double sum = 0.0;
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(rest["results"][r]["attributions"][k].get<double>(),
                response.results(r).attributions(k));
      sum += response.results(r).attributions(k);
    }
    // Shapley values add up to the score's change from the baseline.
    EXPECT_NEAR(sum, response.results(r).score() - response.results(r).baseline_score(), 1e-5);
  }
}

TEST_F(ExplainApiTest, ABinaryModelExplainsItsPositiveClassByProbability) {
  const nlohmann::json reference = ExplanationReference("mammal");
  const nlohmann::json expected = FindCase(reference, "input_x_gradient", "sigmoid");
  v1::ExplainRequest request;
  request.set_model("mammal");
  request.set_method(v1::ATTRIBUTION_METHOD_INPUT_X_GRADIENT);
  AddRows(reference, &request);
  v1::ExplainResponse response;
  ASSERT_TRUE(Explain(request, &response).ok());
  EXPECT_EQ(response.output(), v1::OUTPUT_MODE_SIGMOID);
  EXPECT_EQ(response.rule(), v1::INTEGRATION_RULE_DEFAULT);  // not integrated gradients
  for (int r = 0; r < response.results_size(); ++r) {
    for (int k = 0; k < response.results(r).attributions_size(); ++k) {
      EXPECT_TRUE(Close(response.results(r).attributions(k),
                        expected["attributions"][r][k].get<double>()))
          << "row " << r << " feature " << k;
    }
  }
}

// The config's baseline stands in for a call's; a call's own wins.
TEST_F(ExplainApiTest, TheModelsConfiguredBaselineIsTheDefault) {
  v1::ExplainRequest request;
  request.set_model("bird");
  for (float value : {2.0f, 1.0f, 0.0f}) request.add_features(value);
  request.set_method(v1::ATTRIBUTION_METHOD_SHAPLEY);
  v1::ExplainResponse response;
  ASSERT_TRUE(Explain(request, &response).ok());
  EXPECT_THAT(response.baseline(), ::testing::ElementsAre(2.0f, 1.0f, 0.0f));
  // The row is the baseline: nothing moved the score.
  EXPECT_THAT(response.results(0).attributions(), ::testing::Each(0.0));
  EXPECT_EQ(response.results(0).score(), response.results(0).baseline_score());
  request.add_baseline(0.0f);
  request.add_baseline(0.0f);
  request.add_baseline(0.0f);
  ASSERT_TRUE(Explain(request, &response).ok());
  EXPECT_THAT(response.baseline(), ::testing::ElementsAre(0.0f, 0.0f, 0.0f));
  EXPECT_NE(response.results(0).attributions(0), 0.0);
}

TEST_F(ExplainApiTest, CostsCountAsTheRowsTheyEvaluateAgainstTheLimit) {
  v1::ExplainRequest request;
  request.set_model("species");
  for (int i = 0; i < 7 * 3; ++i) request.add_features(1.0f);
  v1::ExplainResponse response;
  grpc::Status status = Explain(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(),
            "7 rows by integrated_gradients at 50 steps evaluate 350 rows, which is over the "
            "limit of 300 rows per request for model 'species'; split it");
  request.set_steps(40);  // 280 rows: within the limit
  EXPECT_TRUE(Explain(request, &response).ok());
  request.mutable_features()->Truncate(3);  // one row of 301 evaluations
  request.set_steps(301);
  status = Explain(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(),
            "1 rows by integrated_gradients at 301 steps evaluate 301 rows, which is over the "
            "limit of 300 rows per request for model 'species'; one row alone is over it: ask "
            "for fewer evaluations, or raise --max_request_rows (or the model's "
            "max_request_rows)");

  const HttpReply reply = HttpCall(server_->http_port(), "POST", "/v1/models/species:explain",
                                   R"({"features": [1, 2, 3], "steps": 5000})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("model 'species': steps must be 1 to 1024 for "
                                    "gausslegendre, got 5000"));
}

TEST_F(ExplainApiTest, RefusesWhatItCannotExplainWithTheReason) {
  struct Case {
    const char* body;
    int status;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"features": [1, 2, 3], "target_label": "fish"})", 400,
                "model 'species' has no class labelled 'fish'"},
           Case{R"({"features": [1, 2, 3], "target_index": 3})", 400,
                "target class 3 is not one of the 3 classes of model 'species'"},
           Case{R"({"features": [1, 2, 3], "method": "lime"})", 400,
                "request body is not a valid seqserve.v1.ExplainRequest in JSON"},
           Case{R"({"features": [1, 2, 3], "baseline": [0, 0]})", 400,
                "model 'species': the baseline has 2 values, the model takes 3"},
           Case{R"({"features": [1, 2]})", 400, "takes 3 features per row"},
           Case{R"({"model": "mammal", "features": [1, 2, 3]})", 400,
                "the body names model 'mammal' but the path names 'species'"},
       }) {
    const HttpReply reply =
        HttpCall(server_->http_port(), "POST", "/v1/models/species:explain", c.body);
    EXPECT_EQ(reply.status, c.status) << c.body << " -> " << reply.body;
    EXPECT_THAT(reply.body, HasSubstr(c.message)) << c.body;
  }
  const HttpReply softmax = HttpCall(server_->http_port(), "POST", "/v1/models/mammal:explain",
                                     R"({"features": [4, 0, 1], "output": "softmax"})");
  EXPECT_EQ(softmax.status, 400);
  EXPECT_THAT(softmax.body, HasSubstr("has one output; softmax over it is always 1"));
}

TEST_F(ExplainApiTest, MetricsCountExplanationsByMethodAndOutcome) {
  v1::ExplainRequest request;
  request.set_model("species");
  for (float value : {4.0f, 0.0f, 1.0f}) request.add_features(value);
  request.set_method(v1::ATTRIBUTION_METHOD_SALIENCY);
  v1::ExplainResponse response;
  ASSERT_TRUE(Explain(request, &response).ok());
  ASSERT_TRUE(Explain(request, &response).ok());
  request.set_method(v1::ATTRIBUTION_METHOD_SHAPLEY);
  request.set_target_index(7);
  ASSERT_FALSE(Explain(request, &response).ok());
  const HttpReply metrics = HttpCall(server_->http_port(), "GET", "/metrics", "");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body,
              HasSubstr("seqserve_explanations_total{model=\"species\",method=\"saliency\","
                        "code=\"OK\"} 2"));
  EXPECT_THAT(metrics.body,
              HasSubstr("seqserve_explanations_total{model=\"species\",method=\"shapley\","
                        "code=\"INVALID_ARGUMENT\"} 1"));
  EXPECT_THAT(metrics.body,
              HasSubstr("seqserve_requests_total{protocol=\"grpc\",method=\"Explain\","
                        "model=\"species\",version=\"1\",code=\"OK\"} 2"));
}

// The Open Inference Protocol: the output "attributions" (or the parameter
// "explain") adds an FP64 tensor with the numbers Explain gives.
TEST_F(ExplainApiTest, OpenInferenceAddsAnAttributionsTensorOverHttpAndGrpc) {
  v1::ExplainRequest request;
  request.set_model("species");
  for (float value : {4.0f, 0.0f, 1.0f, 2.0f, 1.0f, 0.0f}) request.add_features(value);
  request.set_method(v1::ATTRIBUTION_METHOD_SHAPLEY);
  request.set_output(v1::OUTPUT_MODE_LOGITS);
  request.set_target_index(1);
  v1::ExplainResponse expected;
  ASSERT_TRUE(Explain(request, &expected).ok());

  const HttpReply reply = HttpCall(
      server_->http_port(), "POST", "/v2/models/species/infer",
      R"({"inputs": [{"name": "features", "shape": [2, 3], "datatype": "FP32",
          "data": [4, 0, 1, 2, 1, 0]}],
          "parameters": {"explain": "shapley", "explain_output": "logits", "explain_target": 1},
          "outputs": [{"name": "softmax"}]})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  const nlohmann::json answer = nlohmann::json::parse(reply.body);
  ASSERT_EQ(answer["outputs"].size(), 2u);
  EXPECT_EQ(answer["outputs"][0]["name"], "softmax");
  const nlohmann::json& attributions = answer["outputs"][1];
  EXPECT_EQ(attributions["name"], "attributions");
  EXPECT_EQ(attributions["datatype"], "FP64");
  EXPECT_EQ(attributions["shape"], nlohmann::json({2, 3}));
  for (int r = 0; r < 2; ++r) {
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(attributions["data"][r * 3 + k].get<double>(),
                expected.results(r).attributions(k));
    }
  }

  // gRPC, raw tensors in and out as Triton's clients send them, only the
  // attributions asked for.
  auto v2 = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  inference::ModelInferRequest infer;
  infer.set_model_name("species");
  auto* input = infer.add_inputs();
  input->set_name("features");
  input->set_datatype("FP32");
  input->add_shape(2);
  input->add_shape(3);
  const float rows[] = {4, 0, 1, 2, 1, 0};
  infer.add_raw_input_contents(std::string(reinterpret_cast<const char*>(rows), sizeof(rows)));
  (*infer.mutable_parameters())["explain"].set_string_param("ATTRIBUTION_METHOD_SHAPLEY");
  (*infer.mutable_parameters())["explain_output"].set_string_param("logits");
  (*infer.mutable_parameters())["explain_target"].set_string_param("mammal");
  infer.add_outputs()->set_name("attributions");
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  const grpc::Status status = v2->ModelInfer(&context, infer, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).datatype(), "FP64");
  ASSERT_EQ(response.raw_output_contents(0).size(), 6 * sizeof(double));
  const double* values = reinterpret_cast<const double*>(response.raw_output_contents(0).data());
  for (int r = 0; r < 2; ++r) {
    for (int k = 0; k < 3; ++k) EXPECT_EQ(values[r * 3 + k], expected.results(r).attributions(k));
  }

  // The explanation is checked first, input name included, before any pass.
  const HttpReply named = HttpCall(
      server_->http_port(), "POST", "/v2/models/species/infer",
      R"({"inputs": [{"name": "bogus", "shape": [1, 3], "datatype": "FP32", "data": [4, 0, 1]}],
          "outputs": [{"name": "attributions"}]})");
  EXPECT_EQ(named.status, 400);
  EXPECT_EQ(nlohmann::json::parse(named.body)["error"],
            "model 'species' has no input 'bogus'; its input is 'features'");

  const HttpReply bad = HttpCall(
      server_->http_port(), "POST", "/v2/models/species/infer",
      R"({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [4, 0, 1]}],
          "parameters": {"explain": "lime"}})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(nlohmann::json::parse(bad.body)["error"],
            "parameter \"explain\" names no method: 'lime'; saliency, input_x_gradient, "
            "integrated_gradients or shapley");
}

}  // namespace
}  // namespace seqserve
