// Drift monitoring in a real server: a model with a baseline file beside its
// config, calls over gRPC, then /metrics (checked by promtool), the drift
// route and the log show what the calls sent.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "tests/auth/log_capture.h"
#include "tests/support/http_client.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;

// species' features as its training data had them: limbs mostly 4 (one
// bin [3, 5)), the flags half and half.
constexpr const char* kBaseline = R"pb(
  features { name: "limbs" edges: [ 1, 3, 5 ] counts: [ 10, 10, 970, 10 ] }
  features { name: "lays_eggs" edges: [ 0.5 ] counts: [ 500, 500 ] }
  features { name: "has_hair" edges: [ 0.5 ] counts: [ 500, 500 ] }
  class_counts: [ 300, 400, 300 ]
)pb";

class DriftServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository_.AddReferenceVersion("species", 1, "species");
    repository_.WriteReferenceConfig(
        "species", "species",
        "feature_names: [\"limbs\", \"lays_eggs\", \"has_hair\"]\n"
        "drift { baseline_file: \"baseline.textproto\" window_rows: 600 psi_threshold: 0.2 }\n");
    repository_.WriteFile("species/baseline.textproto", kBaseline);
    repository_.AddReferenceVersion("mammal", 1, "mammal");
    repository_.WriteReferenceConfig("mammal", "mammal");
    ModelServer::Options options;
    options.address = "127.0.0.1:0";
    options.http_address = "127.0.0.1:0";
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = ModelServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    server_->WaitUntilReady();
    stub_ = v1::Classifier::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  // `rows` rows of (limbs, i % 2, (i + 1) % 2).
  void Classify(const std::string& model, float limbs, uint32_t rows) {
    v1::ClassifyRequest request;
    request.set_model(model);
    for (uint32_t i = 0; i < rows; ++i) {
      request.add_features(limbs);
      request.add_features(static_cast<float>(i % 2));
      request.add_features(static_cast<float>((i + 1) % 2));
    }
    request.set_rows(rows);
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status status = stub_->Classify(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results_size(), static_cast<int>(rows));
  }

  std::string Metrics() {
    const testing::HttpReply reply = testing::HttpCall(server_->http_port(), "GET", "/metrics");
    EXPECT_EQ(reply.status, 200);
    return reply.body;
  }

  static double Series(const std::string& text, const std::string& series) {
    const size_t at = text.find("\n" + series + " ");
    EXPECT_NE(at, std::string::npos) << series << " not in\n" << text;
    if (at == std::string::npos) return -1.0;
    return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
  }

  testing::TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

TEST_F(DriftServerTest, CallsOverGrpcShowInMetricsTheDriftRouteAndTheLog) {
  testing::LogCapture log;
  // Two-legged animals all day: limbs falls in the baseline's 1% bin.
  for (int call = 0; call < 6; ++call) Classify("species", 2.0f, 100);
  Classify("mammal", 4.0f, 7);

  const std::string text = Metrics();
  const std::string labels = "{model=\"species\",version=\"1\"";
  EXPECT_EQ(Series(text, "seqserve_drift_window_rows" + labels + "}"), 600);
  EXPECT_GT(Series(text, "seqserve_feature_psi" + labels + ",feature=\"limbs\"}"), 1.0);
  EXPECT_LT(Series(text, "seqserve_feature_psi" + labels + ",feature=\"lays_eggs\"}"), 0.1);
  EXPECT_EQ(Series(text, "seqserve_feature_window_mean" + labels + ",feature=\"limbs\"}"), 2.0);
  // Every answered row, by label: the model without a baseline too.
  double species_rows = 0;
  for (const char* label : {"bird", "mammal", "reptile"}) {
    const std::string series = absl::StrCat("seqserve_predictions_total", labels, ",label=\"",
                                            label, "\"}");
    species_rows += Series(text, series);
  }
  EXPECT_EQ(species_rows, 600);
  double mammal_rows = Series(text, "seqserve_predictions_total{model=\"mammal\",version=\"1\","
                                    "label=\"mammal\"}") +
                       Series(text, "seqserve_predictions_total{model=\"mammal\",version=\"1\","
                                    "label=\"not mammal\"}");
  EXPECT_EQ(mammal_rows, 7);
  EXPECT_THAT(text, ::testing::Not(HasSubstr("seqserve_drift_window_rows{model=\"mammal\"")));

  // promtool (Debian's prometheus package) checks the whole scrape.
  const std::string path = ::testing::TempDir() + "/drift_server_metrics.txt";
  std::ofstream(path) << text;
  FILE* pipe = popen(("promtool check metrics < " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[256];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  EXPECT_EQ(pclose(pipe), 0) << output;
  EXPECT_EQ(output, "") << "promtool warned";

  // The console's route.
  const testing::HttpReply drift =
      testing::HttpCall(server_->http_port(), "GET", "/v1/models/species/drift");
  ASSERT_EQ(drift.status, 200) << drift.body;
  const nlohmann::json report = nlohmann::json::parse(drift.body);
  const nlohmann::json& window = report["versions"][0]["drift"];
  EXPECT_EQ(window["features"][0]["name"], "limbs");
  EXPECT_EQ(window["features"][0]["window"][1], 1.0);
  EXPECT_NEAR(window["features"][0]["baseline"][2].get<double>(), 0.97, 1e-9);
  EXPECT_GT(window["features"][0]["psi"].get<double>(), 1.0);
  EXPECT_EQ(testing::HttpCall(server_->http_port(), "GET", "/v1/models/nothing/drift").status,
            404);

  // One warning for limbs, naming the model, version, PSI and threshold.
  const auto warnings = log.Lines("drift: model species version 1 feature 'limbs'");
  ASSERT_EQ(warnings.size(), 1u) << log.text();
  EXPECT_THAT(warnings[0], HasSubstr("is above the threshold 0.200"));
}

TEST_F(DriftServerTest, ABadBaselineRefusesTheVersionWithItsReason) {
  repository_.WriteFile("species/baseline.textproto",
                        "features { name: \"legs\" edges: [ 1 ] counts: [ 1, 1 ] }\n");
  repository_.AddReferenceVersion("species", 2, "species");
  server_->models().Refresh();
  const testing::HttpReply list = testing::HttpCall(server_->http_port(), "GET", "/v1/models");
  ASSERT_EQ(list.status, 200);
  EXPECT_THAT(list.body, HasSubstr("baseline has 1 features; the config's feature_names has 3"));
}

}  // namespace
}  // namespace seqserve
