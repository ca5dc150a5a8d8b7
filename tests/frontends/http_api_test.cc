// The HTTP port of a real server on free ports: REST answers equal gRPC
// answers bit for bit, every error has its status and JSON body, health
// endpoints follow the serving state, metrics count exactly the calls made
// and pass promtool, slow clients stall nobody, and the access log has one
// JSON line per call.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "tests/server/held_slot.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::HttpCall;
using testing::HttpConnection;
using testing::HttpReply;
using testing::TestRepository;

class HttpApiTest : public ::testing::Test {
 protected:
  void Start(ModelServer::Options options = {}) {
    for (const char* name : {"species", "mammal"}) {
      repository_.AddReferenceVersion(name, 1, name);
      repository_.WriteReferenceConfig(name, name);
    }
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->http_port();
    ASSERT_GT(port_, 0);
    stub_ = v1::Classifier::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  grpc::Status GrpcClassify(const v1::ClassifyRequest& request,
                            v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Classify(&context, request, response);
  }

  // The JSON error body's code, checked to be the only other field beside
  // the message, which is also under "error" (where TF Serving's clients
  // read it).
  static std::string ErrorCode(const HttpReply& reply) {
    const auto body = nlohmann::json::parse(reply.body, nullptr, false);
    if (!body.is_object() || !body.contains("code") || !body.contains("message") ||
        !body.contains("error") || body["error"] != body["message"] || body.size() != 3) {
      return "not an error body: " + reply.body;
    }
    return body["code"].get<std::string>();
  }

  TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  int port_ = 0;
};

TEST_F(HttpApiTest, RestAnswersEqualGrpcAnswersBitForBit) {
  Start();
  const std::vector<std::pair<std::string, std::vector<float>>> cases = {
      {"species", {4, 0, 1, 2, 1, 0, 0, 0, 0, 6, 1, 1}},
      {"mammal", {4, 0, 1, 2, 1, 0, -3.25f, 1e6f, 0.1f}}};
  for (const auto& [model, features] : cases) {
    for (v1::OutputMode mode : {v1::OUTPUT_MODE_DEFAULT, v1::OUTPUT_MODE_LOGITS,
                                v1::OUTPUT_MODE_SIGMOID, v1::OUTPUT_MODE_SOFTMAX}) {
      if (model == "mammal" && mode == v1::OUTPUT_MODE_SOFTMAX) continue;
      v1::ClassifyRequest request;
      request.mutable_features()->Add(features.begin(), features.end());
      request.set_rows(static_cast<uint32_t>(features.size() / 3));
      request.set_output(mode);
      if (model == "species") request.set_top_k(2);
      std::string body;
      ASSERT_TRUE(google::protobuf::util::MessageToJsonString(request, &body).ok());
      const HttpReply reply =
          HttpCall(port_, "POST", absl::StrCat("/v1/models/", model, ":classify"), body);
      ASSERT_EQ(reply.status, 200) << reply.body;
      EXPECT_EQ(reply.headers.at("content-type"), "application/json");
      v1::ClassifyResponse over_http;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(reply.body, &over_http).ok())
          << reply.body;
      request.set_model(model);
      v1::ClassifyResponse over_grpc;
      ASSERT_TRUE(GrpcClassify(request, &over_grpc).ok());
      // Floats printed in JSON read back to the same bits.
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(over_http, over_grpc))
          << model << " mode " << mode << "\nHTTP: " << over_http.DebugString()
          << "\ngRPC: " << over_grpc.DebugString();
    }
  }
  // The version in the path, and the field names of the .proto on output.
  const HttpReply versioned = HttpCall(port_, "POST", "/v1/models/species/versions/1:classify",
                                       R"({"features": [4, 0, 1], "rows": 1})");
  ASSERT_EQ(versioned.status, 200) << versioned.body;
  EXPECT_THAT(versioned.body, HasSubstr("\"predicted_label\":\"mammal\""));
  EXPECT_THAT(versioned.body, HasSubstr("\"version\":\"1\""));
}

TEST_F(HttpApiTest, MetadataAndListingMatchGrpc) {
  Start();
  repository_.WriteReferenceConfig("species", "species",
                                   "feature_names: ['limbs', 'lays_eggs', 'has_hair']");
  server_->models().Refresh();
  const HttpReply list = HttpCall(port_, "GET", "/v1/models");
  ASSERT_EQ(list.status, 200);
  v1::ListModelsResponse models;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(list.body, &models).ok());
  ASSERT_EQ(models.models_size(), 2);
  EXPECT_EQ(models.models(0).name(), "mammal");
  // seqserve's own metadata is in TF Serving's metadata answer, as an Any.
  for (const char* path : {"/v1/models/species/metadata", "/v1/models/species/versions/1/metadata"}) {
    const HttpReply reply = HttpCall(port_, "GET", path);
    ASSERT_EQ(reply.status, 200) << path;
    nlohmann::json own = nlohmann::json::parse(reply.body)["metadata"]["seqserve"];
    EXPECT_EQ(own["@type"], "type.googleapis.com/seqserve.v1.GetModelMetadataResponse");
    own.erase("@type");
    v1::GetModelMetadataResponse metadata;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(own.dump(), &metadata).ok());
    EXPECT_EQ(metadata.input_width(), 3);
    EXPECT_EQ(metadata.labels_size(), 3);
    EXPECT_THAT(metadata.feature_names(),
                ::testing::ElementsAre("limbs", "lays_eggs", "has_hair"));
    EXPECT_EQ(metadata.version(), 1);
    grpc::ClientContext context;
    v1::GetModelMetadataRequest request;
    request.set_model("species");
    v1::GetModelMetadataResponse over_grpc;
    ASSERT_TRUE(stub_->GetModelMetadata(&context, request, &over_grpc).ok());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(metadata, over_grpc))
        << metadata.DebugString() << over_grpc.DebugString();
  }
}

TEST_F(HttpApiTest, EveryErrorHasItsStatusAndAJsonBody) {
  ModelServer::Options options;
  options.max_request_rows = 2;
  options.max_message_bytes = 8192;
  Start(options);
  struct Case {
    const char* method;
    std::string path;
    std::string body;
    int status;
    const char* code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"GET", "/nowhere", "", 404, "NOT_FOUND", "no endpoint at '/nowhere'"},
      {"GET", "/v1/models/species:classify", "", 405, "INVALID_ARGUMENT", "use POST"},
      {"DELETE", "/v1/models", "", 405, "INVALID_ARGUMENT", "use GET"},
      {"POST", "/v1/models/species:classify", "{not json", 400, "INVALID_ARGUMENT",
       "not a valid seqserve.v1.ClassifyRequest in JSON"},
      {"POST", "/v1/models/species:classify", R"({"features": [1], "colour": 3})", 400,
       "INVALID_ARGUMENT", "colour"},
      {"POST", "/v1/models/unicorn:classify", R"({"features": [1, 2, 3], "rows": 1})", 404, "NOT_FOUND",
       "unicorn"},
      {"POST", "/v1/models/species/versions/7:classify", R"({"features": [1, 2, 3], "rows": 1})", 404,
       "NOT_FOUND", "version 7"},
      {"POST", "/v1/models/species/versions/x:classify", R"({"features": [1, 2, 3], "rows": 1})", 400,
       "INVALID_ARGUMENT", "positive integer"},
      {"POST", "/v1/models/species:classify", R"({"model": "mammal", "features": [1, 2, 3], "rows": 1})",
       400, "INVALID_ARGUMENT", "the body names model 'mammal'"},
      {"POST", "/v1/models/species:classify", R"({"features": [1, 2], "rows": 1})", 400,
       "INVALID_ARGUMENT", "3"},
      {"POST", "/v1/models/species:classify", R"({"features": [1,2,3,1,2,3,1,2,3], "rows": 3})", 429,
       "RESOURCE_EXHAUSTED", "rows"},
      {"POST", "/v1/models/species:classify",
       absl::StrCat(R"({"features": [)", std::string(9000, '1'), "]}"), 413,
       "RESOURCE_EXHAUSTED", "larger than the limit of 8192 bytes"},
      {"GET", "/v1/models/nobody", "", 404, "NOT_FOUND", "nobody"},
      {"GET", "/v1/models/nobody/metadata", "", 404, "NOT_FOUND", "nobody"},
  };
  for (const Case& c : cases) {
    const HttpReply reply = HttpCall(port_, c.method, c.path, c.body);
    EXPECT_EQ(reply.status, c.status) << c.method << " " << c.path << ": " << reply.body;
    EXPECT_EQ(ErrorCode(reply), c.code) << c.path;
    EXPECT_THAT(reply.body, HasSubstr(c.message)) << c.path;
  }
  const HttpReply wrong_method = HttpCall(port_, "PUT", "/v1/models/species/versions/1");
  EXPECT_EQ(wrong_method.headers.count("allow") ? wrong_method.headers.at("allow") : "", "GET");
}

TEST_F(HttpApiTest, HealthEndpointsFollowTheServingState) {
  Start();
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);
  EXPECT_EQ(HttpCall(port_, "GET", "/readyz").status, 200);
  server_->StartDraining();
  const HttpReply draining = HttpCall(port_, "GET", "/readyz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_THAT(draining.body, HasSubstr("draining"));
  EXPECT_EQ(HttpCall(port_, "GET", "/healthz").status, 200);
  // Draining still answers calls; only readiness changed.
  EXPECT_EQ(HttpCall(port_, "POST", "/v1/models/species:classify", R"({"features": [4,0,1], "rows": 1})")
                .status,
            200);
}

// The value of the series `series` (name and labels exactly as written).
double SeriesValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return -1;
}

std::string RunShell(const std::string& command, int* exit_code) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string output;
  char buffer[512];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  *exit_code = pclose(pipe);
  return output;
}

TEST_F(HttpApiTest, TheDashboardQueriesMetricsTheServerExports) {
  Start();
  const std::string text = HttpCall(port_, "GET", "/metrics").body;
  std::ifstream file(std::string(SEQSERVE_TEST_DATA_DIR) + "/../../deploy/grafana/seqserve.json");
  const nlohmann::json dashboard = nlohmann::json::parse(file);
  // Each query as a recording rule, Grafana's variables filled in, for
  // promtool to parse.
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  int queries = 0;
  const std::regex metric(R"(\b((seqserve|process)_[a-z_]+?)(_bucket|_sum|_count)?\b)");
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& target : panel["targets"]) {
      std::string expr = target["expr"];
      for (auto it = std::sregex_iterator(expr.begin(), expr.end(), metric);
           it != std::sregex_iterator(); ++it) {
        EXPECT_THAT(text, HasSubstr("# TYPE " + (*it)[1].str() + " "))
            << "panel '" << panel["title"] << "' queries " << (*it)[0];
      }
      expr = std::regex_replace(expr, std::regex(R"(\$__rate_interval)"), "1m");
      expr = std::regex_replace(expr, std::regex(R"(\$job)"), "seqserve");
      absl::StrAppend(&rules, "      - record: dashboard:query", ++queries, "\n        expr: '",
                      expr, "'\n");
    }
  }
  EXPECT_GE(queries, 8);
  const std::string path = ::testing::TempDir() + "/dashboard-rules.yaml";
  std::ofstream(path) << rules;
  int exit_code = 0;
  const std::string output = RunShell("promtool check rules " + path, &exit_code);
  EXPECT_EQ(exit_code, 0) << output << rules;
}

TEST_F(HttpApiTest, EveryProtocolRecordsTheSameSeriesForTheSameCalls) {
  Start();
  auto v2 = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  constexpr int kCalls = 3;  // of two rows each, one at a time
  const std::string v2_body =
      R"({"inputs":[{"name":"features","shape":[2,3],"datatype":"FP32","data":[4,0,1,2,1,0]}]})";
  // One protocol's calls: gRPC Classify, REST Classify, v2 over gRPC, v2
  // over HTTP, TF Serving's predict.
  const std::vector<std::pair<std::string, std::function<void()>>> protocols = {
      {"grpc Classify",
       [&] {
         v1::ClassifyRequest request;
         request.set_model("species");
         for (float v : {4, 0, 1, 2, 1, 0}) request.add_features(v);
         request.set_rows(2);
         v1::ClassifyResponse response;
         ASSERT_TRUE(GrpcClassify(request, &response).ok());
       }},
      {"http Classify",
       [&] {
         ASSERT_EQ(HttpCall(port_, "POST", "/v1/models/species:classify",
                            R"({"features": [4,0,1,2,1,0], "rows": 2})")
                       .status,
                   200);
       }},
      {"grpc ModelInfer",
       [&] {
         inference::ModelInferRequest request;
         request.set_model_name("species");
         auto* input = request.add_inputs();
         input->set_name("features");
         input->set_datatype("FP32");
         input->add_shape(2);
         input->add_shape(3);
         for (float v : {4, 0, 1, 2, 1, 0}) input->mutable_contents()->add_fp32_contents(v);
         inference::ModelInferResponse response;
         grpc::ClientContext context;
         ASSERT_TRUE(v2->ModelInfer(&context, request, &response).ok());
       }},
      {"http ModelInfer",
       [&] {
         ASSERT_EQ(HttpCall(port_, "POST", "/v2/models/species/infer", v2_body).status, 200);
       }},
      // TF Serving's REST API.
      {"http Predict",
       [&] {
         ASSERT_EQ(HttpCall(port_, "POST", "/v1/models/species:predict",
                            R"({"instances": [[4,0,1],[2,1,0]]})")
                       .status,
                   200);
       }},
  };
  // The per-model series every inference call feeds, whatever its protocol.
  const std::vector<std::string> series = {
      "seqserve_request_rows_count{model=\"species\"}",
      "seqserve_request_rows_sum{model=\"species\"}",
      "seqserve_batch_rows_count{model=\"species\"}",
      "seqserve_batch_rows_sum{model=\"species\"}",
      "seqserve_inference_duration_seconds_count{model=\"species\"}",
      "seqserve_queue_duration_seconds_count{model=\"species\"}",
  };
  auto scrape = [&] {
    const std::string text = HttpCall(port_, "GET", "/metrics").body;
    std::map<std::string, double> values;
    for (const std::string& name : series) values[name] = std::max(0.0, SeriesValue(text, name));
    return std::make_pair(text, values);
  };
  for (const auto& [name, call] : protocols) {
    SCOPED_TRACE(name);
    const auto before = scrape();
    for (int i = 0; i < kCalls; ++i) call();
    const auto after = scrape();
    EXPECT_EQ(after.second.at(series[0]) - before.second.at(series[0]), kCalls);
    EXPECT_EQ(after.second.at(series[1]) - before.second.at(series[1]), 2 * kCalls);
    EXPECT_EQ(after.second.at(series[2]) - before.second.at(series[2]), kCalls);
    EXPECT_EQ(after.second.at(series[3]) - before.second.at(series[3]), 2 * kCalls);
    EXPECT_EQ(after.second.at(series[4]) - before.second.at(series[4]), kCalls);
    EXPECT_EQ(after.second.at(series[5]) - before.second.at(series[5]), kCalls);
    // And the per-call series, under the protocol's own labels.
    const std::vector<std::string> words = absl::StrSplit(name, ' ');
    const std::string requests = absl::StrCat(
        "seqserve_requests_total{protocol=\"", words[0], "\",method=\"", words[1],
        "\",model=\"species\",version=\"1\",code=\"OK\"}");
    EXPECT_EQ(SeriesValue(after.first, requests), kCalls) << requests;
    const std::string durations =
        absl::StrCat("seqserve_request_duration_seconds_count{protocol=\"", words[0],
                     "\",method=\"", words[1], "\",model=\"species\"}");
    EXPECT_EQ(SeriesValue(after.first, durations), kCalls) << durations;
  }
}

TEST_F(HttpApiTest, MetricsCountExactlyTheCallsMadeAndPassPromtool) {
  Start();
  constexpr int kGrpcOk = 7, kHttpOk = 5, kHttpNotFound = 3, kGrpcInvalid = 2;
  for (int i = 0; i < kGrpcOk; ++i) {
    v1::ClassifyRequest request;
    request.set_model("species");
    for (float v : std::vector<float>{4, 0, 1, 2, 1, 0}) request.add_features(v);
    request.set_rows(2);
    v1::ClassifyResponse response;
    ASSERT_TRUE(GrpcClassify(request, &response).ok());
  }
  for (int i = 0; i < kGrpcInvalid; ++i) {
    v1::ClassifyRequest request;
    request.set_model("species");
    for (float v : std::vector<float>{4, 0}) request.add_features(v);
    request.set_rows(1);
    v1::ClassifyResponse response;
    ASSERT_EQ(GrpcClassify(request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  HttpConnection connection(port_);  // keep-alive: several calls, one connection
  for (int i = 0; i < kHttpOk; ++i) {
    ASSERT_EQ(connection.Send("POST", "/v1/models/mammal:classify", R"({"features": [4,0,1], "rows": 1})")
                  .status,
              200);
  }
  for (int i = 0; i < kHttpNotFound; ++i) {
    ASSERT_EQ(connection.Send("POST", absl::StrCat("/v1/models/ghost", i, ":classify"),
                              R"({"features": [4,0,1], "rows": 1})")
                  .status,
              404);
  }
  const HttpReply scrape = HttpCall(port_, "GET", "/metrics");
  ASSERT_EQ(scrape.status, 200);
  EXPECT_EQ(scrape.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = scrape.body;
  auto requests = [&](const char* protocol, const char* model, const char* version,
                      const char* code) {
    return SeriesValue(text, absl::StrCat("seqserve_requests_total{protocol=\"", protocol,
                                          "\",method=\"Classify\",model=\"", model,
                                          "\",version=\"", version, "\",code=\"", code, "\"}"));
  };
  EXPECT_EQ(requests("grpc", "species", "1", "OK"), kGrpcOk);
  EXPECT_EQ(requests("grpc", "species", "1", "INVALID_ARGUMENT"), kGrpcInvalid);
  EXPECT_EQ(requests("http", "mammal", "1", "OK"), kHttpOk);
  EXPECT_EQ(requests("http", "_unknown", "", "NOT_FOUND"), kHttpNotFound);
  EXPECT_EQ(SeriesValue(text, "seqserve_request_duration_seconds_count{protocol=\"grpc\","
                              "method=\"Classify\",model=\"species\"}"),
            kGrpcOk + kGrpcInvalid);
  EXPECT_EQ(SeriesValue(text, "seqserve_request_duration_seconds_count{protocol=\"http\","
                              "method=\"Classify\",model=\"mammal\"}"),
            kHttpOk);
  EXPECT_EQ(SeriesValue(text, "seqserve_request_rows_count{model=\"species\"}"), kGrpcOk);
  EXPECT_EQ(SeriesValue(text, "seqserve_request_rows_sum{model=\"species\"}"), 2 * kGrpcOk);
  EXPECT_EQ(SeriesValue(text, "seqserve_model_loads_total{model=\"species\",result=\"ok\"}"), 1);
  EXPECT_EQ(SeriesValue(text, "seqserve_model_versions{model=\"mammal\",state=\"available\"}"),
            1);
  // Calls answered one at a time ran one pass each.
  EXPECT_EQ(SeriesValue(text, "seqserve_batch_rows_count{model=\"mammal\"}"), kHttpOk);
  EXPECT_EQ(SeriesValue(text, "seqserve_inflight_requests"), 0);

  // promtool (Debian's prometheus package) checks format and naming.
  const std::string file = ::testing::TempDir() + "/metrics.txt";
  std::ofstream(file) << text;
  int exit_code = 0;
  const std::string output = RunShell("promtool check metrics < " + file, &exit_code);
  EXPECT_EQ(exit_code, 0) << output;
  EXPECT_EQ(output, "") << "promtool warned";
}

TEST_F(HttpApiTest, TheOpenApiDocumentValidatesAndEveryPathInItIsServed) {
  // Explicit model control, so the load and unload routes answer too.
  ModelServer::Options options;
  options.model_control = ModelControlMode::kExplicit;
  options.load_models = {"*"};
  Start(options);
  const HttpReply reply = HttpCall(port_, "GET", "/openapi.json");
  ASSERT_EQ(reply.status, 200);
  const nlohmann::json document = nlohmann::json::parse(reply.body);
  // The Open Inference Protocol's body names the model's input tensor.
  const std::string input = nlohmann::json::parse(
      HttpCall(port_, "GET", "/v2/models/species").body)["inputs"][0]["name"];
  const std::string v2_body = nlohmann::json(
      {{"inputs", {{{"name", input}, {"shape", {1, 3}}, {"datatype", "FP32"},
                    {"data", {4, 0, 1}}}}}}).dump();
  // A body's schema: the one its $ref names, or the first of a oneOf.
  auto schema_of = [&](nlohmann::json schema) {
    if (schema.contains("oneOf")) schema = schema["oneOf"][0];
    const std::string ref = schema.value("$ref", "");
    return document["components"]["schemas"][ref.substr(ref.rfind('/') + 1)];
  };
  int operations = 0;
  for (const auto& [pattern, methods] : document["paths"].items()) {
    // Unloading takes mammal away (loaded again below); the rest ask species.
    const bool unload = absl::EndsWith(pattern, "unload");
    std::string path =
        std::regex_replace(pattern, std::regex(R"(\{model\})"), unload ? "mammal" : "species");
    path = std::regex_replace(path, std::regex(R"(\{version\})"), "1");
    path = std::regex_replace(path, std::regex(R"(\{label\})"), "stable");
    for (const auto& [method, operation] : methods.items()) {
      std::string upper = method;
      for (char& c : upper) c = static_cast<char>(std::toupper(c));
      std::string body;
      if (operation.contains("requestBody")) {
        const nlohmann::json schema =
            schema_of(operation["requestBody"]["content"]["application/json"]["schema"]);
        const bool control = absl::StrContains(pattern, "repository") ||
                             absl::EndsWith(pattern, "load");
        body = schema.contains("example")      ? schema["example"].dump()
               : control                       ? "{}"
               : absl::StartsWith(pattern, "/v2") ? v2_body
                                               : R"({"features": [4, 0, 1], "rows": 1})";
      }
      const HttpReply answer = HttpCall(port_, upper, path, body);
      if (unload) {
        EXPECT_EQ(HttpCall(port_, "POST", "/v1/models/mammal:load").status, 200);
      }
      if (absl::StrContains(pattern, "{label}")) {
        // Routed; this repository's config gives no labels.
        EXPECT_EQ(answer.status, 404) << upper << " " << path << ": " << answer.body;
        EXPECT_THAT(answer.body, HasSubstr("has no version label 'stable' (it has none)"))
            << path;
      } else {
        EXPECT_EQ(answer.status, 200) << upper << " " << path << ": " << answer.body;
      }
      ++operations;
    }
  }
  // The classify routes take either body, each from its schema's example.
  const nlohmann::json tf_classify = document["components"]["schemas"]["TfClassifyRequest"];
  ASSERT_TRUE(tf_classify.contains("example"));
  EXPECT_EQ(HttpCall(port_, "POST", "/v1/models/species:classify", tf_classify["example"].dump())
                .status,
            200);
  EXPECT_EQ(operations, static_cast<int>(RestApi::Routes().size()));
  // Calls (not probes) document the request id header.
  EXPECT_EQ(document["paths"]["/v1/models/{model}:classify"]["post"]["parameters"].back()["name"],
            "X-Request-Id");
  EXPECT_FALSE(document["paths"]["/healthz"]["get"].contains("parameters"));
  // A standard OpenAPI validator from npm (tests/web) agrees.
  const std::string file = ::testing::TempDir() + "/openapi.json";
  std::ofstream(file) << reply.body;
  int exit_code = 0;
  const std::string output = RunShell(absl::StrCat("node ", SEQSERVE_TEST_DATA_DIR,
                                                   "/../web/validate-openapi.js ", file),
                                      &exit_code);
  EXPECT_EQ(exit_code, 0) << output;
  EXPECT_THAT(output, HasSubstr("valid: seqserve"));
}

TEST_F(HttpApiTest, SlowClientsHoldNoThreadAndAreClosedWhenIdle) {
  ModelServer::Options options;
  options.http.threads = 1;
  options.http.idle_timeout = absl::Seconds(1);
  Start(options);
  // More trickling clients than listener threads, each with half a request.
  std::vector<std::unique_ptr<HttpConnection>> slow;
  for (int i = 0; i < 16; ++i) {
    slow.push_back(std::make_unique<HttpConnection>(port_));
    ASSERT_TRUE(slow.back()->Write("POST /v1/models/species:classify HTTP/1.1\r\nHost: x\r\n"));
  }
  const absl::Time start = absl::Now();
  const HttpReply reply =
      HttpCall(port_, "POST", "/v1/models/species:classify", R"({"features": [4,0,1], "rows": 1})");
  EXPECT_EQ(reply.status, 200);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "a slow client delayed another";
  // Without progress for the idle timeout, the server hangs up on them.
  for (auto& connection : slow) EXPECT_EQ(connection->Read(5000).status, 0);
  EXPECT_EQ(server_->calls_in_flight(), 0);
}

TEST_F(HttpApiTest, ConnectionsPerClientAreCapped) {
  ModelServer::Options options;
  options.http.max_connections_per_client = 3;
  Start(options);
  std::vector<std::unique_ptr<HttpConnection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<HttpConnection>(port_));
    ASSERT_EQ(held.back()->Send("GET", "/healthz").status, 200);
  }
  // The fourth is answered 503 at once, and closed; a freed slot takes the
  // next.
  auto fourth = std::make_unique<HttpConnection>(port_);
  HttpReply refused = fourth->Read(5000);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.headers["retry-after"], "1");
  EXPECT_EQ(ErrorCode(refused), "UNAVAILABLE");
  EXPECT_EQ(fourth->Send("GET", "/healthz").status, 0);
  // Closed here, its slot is free as soon as the server sees it go (else
  // after the second the server waits for a refused client to leave).
  fourth.reset();
  held.pop_back();
  bool answered = false;
  for (int attempt = 0; attempt < 250 && !answered; ++attempt) {
    answered = HttpCall(port_, "GET", "/healthz").status == 200;
    if (!answered) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(answered);
}

TEST_F(HttpApiTest, BodiesPastTheBufferedBytesLimitAreRefusedUntilOthersEnd) {
  ModelServer::Options options;
  options.max_message_bytes = 1 << 20;
  options.max_buffered_request_bytes = 1 << 20;
  Start(options);
  // A valid call, padded with spaces to `bytes`.
  auto padded = [](size_t bytes) {
    std::string body = R"({"features": [4,0,1], "rows": 1})";
    body.resize(bytes, ' ');
    return body;
  };
  // Asks before sending a body (Expect: 100-continue, as curl does for
  // large bodies): "100 Continue" says the body fits now, 503 that it does
  // not, before any byte of it is sent.
  auto announce = [](HttpConnection& connection, size_t bytes) {
    EXPECT_TRUE(connection.Write(absl::StrCat(
        "POST /v1/models/species:classify HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: ",
        bytes, "\r\nExpect: 100-continue\r\n\r\n")));
    return connection.Read();
  };
  // A connection whose announced `bytes` got "100 Continue", retrying
  // while the server answers 503, for up to 10 s (the server frees a body's
  // bytes just after sending its answer); null if it never did.
  auto announce_when_room = [&](size_t bytes) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (true) {
      auto connection = std::make_unique<HttpConnection>(port_);
      const int status = announce(*connection, bytes).status;
      if (status == 100) return connection;
      EXPECT_EQ(status, 503);
      if (status != 503 || absl::Now() > give_up) return std::unique_ptr<HttpConnection>();
      absl::SleepFor(absl::Milliseconds(10));
    }
  };
  // Announces `bytes` when there is room, sends them, reads the answer;
  // again if the connection closed because the room was gone by the time
  // the bytes came (another body's bytes not yet freed), for up to 10 s.
  auto call_when_room = [&](size_t bytes) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (true) {
      auto connection = announce_when_room(bytes);
      if (connection == nullptr) return HttpReply{};
      connection->Write(padded(bytes));  // fails if the server closed it
      HttpReply reply = connection->Read();
      if (reply.status != 0 || absl::Now() > give_up) return reply;
    }
  };
  // Headers alone hold nothing: many announced bodies do not crowd out one
  // that is sent.
  std::vector<std::unique_ptr<HttpConnection>> announced_only;
  for (int i = 0; i < 4; ++i) {
    announced_only.push_back(std::make_unique<HttpConnection>(port_));
    ASSERT_EQ(announce(*announced_only.back(), 1000000).status, 100);
  }
  EXPECT_EQ(call_when_room(1000000).status, 200);
  // One client sends 900,000 bytes of a 1,000,000-byte body and stops.
  const std::string held_body = padded(1000000);
  auto held = announce_when_room(held_body.size());
  ASSERT_NE(held, nullptr);
  ASSERT_TRUE(held->Write(held_body.substr(0, 900000)));
  // What /metrics says of the budget: bytes held, bodies refused.
  auto budget_metric = [this](const std::string& name) {
    return SeriesValue(HttpCall(port_, "GET", "/metrics").body, name);
  };
  const double refused_before = budget_metric("seqserve_http_bodies_refused_total");
  // A body that would take the total past 1 MiB is refused from its
  // headers, once the server has read those bytes: 503, retryable.
  HttpReply refused;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (true) {
    HttpConnection second(port_);
    refused = announce(second, 200000);
    if (refused.status != 100 || absl::Now() > give_up) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(ErrorCode(refused), "UNAVAILABLE");
  EXPECT_THAT(refused.body, HasSubstr("1048576 bytes of request bodies"));
  EXPECT_EQ(refused.headers["retry-after"], "1");
  EXPECT_EQ(budget_metric("seqserve_http_bodies_refused_total"), refused_before + 1);
  const double held_bytes = budget_metric("seqserve_http_body_bytes");
  EXPECT_GE(held_bytes, 900000);
  EXPECT_LE(held_bytes, 1000000);
  // A small body still fits beside the held one.
  EXPECT_EQ(HttpCall(port_, "POST", "/v1/models/species:classify", padded(1000)).status, 200);
  // Once the first call ends, its bytes are free again (the server frees
  // them after sending the answer, hence the retries).
  ASSERT_TRUE(held->Write(held_body.substr(900000)));
  const HttpReply first = held->Read();
  EXPECT_EQ(first.status, 200) << first.body;
  EXPECT_THAT(first.body, HasSubstr("mammal"));
  EXPECT_EQ(call_when_room(1000000).status, 200);
  // So are those of a client that leaves halfway through its body.
  {
    auto leaving = announce_when_room(held_body.size());
    ASSERT_NE(leaving, nullptr);
    ASSERT_TRUE(leaving->Write(held_body.substr(0, 900000)));
  }
  EXPECT_EQ(call_when_room(1000000).status, 200);
  // A body told "100 Continue" while there was room, whose bytes no longer
  // fit when they arrive, closes its connection.
  auto late = announce_when_room(600000);
  ASSERT_NE(late, nullptr);
  auto early = announce_when_room(600000);
  ASSERT_NE(early, nullptr);
  const std::string early_body = padded(600000);
  ASSERT_TRUE(early->Write(early_body.substr(0, 599999)));
  // Once the server holds those bytes, 500,000 more do not fit.
  const absl::Time held_by = absl::Now() + absl::Seconds(10);
  while (true) {
    HttpConnection probe(port_);
    const int status = announce(probe, 500000).status;
    if (status == 503) break;
    ASSERT_LT(absl::Now(), held_by) << "the server never held the first body's bytes";
    absl::SleepFor(absl::Milliseconds(10));
  }
  late->Write(padded(600000));  // may fail once the server has closed it
  EXPECT_EQ(late->Read().status, 0) << "a body past the limit was read whole";
  ASSERT_TRUE(early->Write(early_body.substr(599999)));
  EXPECT_EQ(early->Read().status, 200);
  // Every body's bytes are given back (just after each answer).
  const absl::Time drained_by = absl::Now() + absl::Seconds(10);
  while (budget_metric("seqserve_http_body_bytes") != 0 && absl::Now() < drained_by) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(budget_metric("seqserve_http_body_bytes"), 0);
}

TEST_F(HttpApiTest, ACallWaitingForItsPassIsAnsweredDuringShutdown) {
  ModelServer::Options options;
  options.inference.threads = 1;
  options.inference.inline_max_macs = 0;
  Start(options);
  auto served = server_->models().Find("species", 0);
  ASSERT_TRUE(served.ok());
  auto held = std::make_unique<testing::HeldSlot>(server_->runner(), *served);
  HttpReply reply;
  std::thread caller([&] {
    reply = HttpCall(port_, "POST", "/v1/models/species:classify", R"({"features": [4,0,1], "rows": 1})");
  });
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (server_->calls_in_flight() == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(server_->calls_in_flight(), 1) << "the call never arrived";
  std::thread release([&] {
    absl::SleepFor(absl::Milliseconds(300));
    held->Release();
  });
  server_->Shutdown(absl::Seconds(10));
  caller.join();
  release.join();
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_THAT(reply.body, HasSubstr("mammal"));
}

TEST_F(HttpApiTest, TheAccessLogHasOneJsonLinePerCall) {
  const std::string path = ::testing::TempDir() + "/access.log";
  std::remove(path.c_str());
  ModelServer::Options options;
  options.access_log = path;
  Start(options);
  ASSERT_EQ(HttpCall(port_, "POST", "/v1/models/species:classify",
                     R"({"features": [4,0,1,2,1,0], "rows": 2})")
                .status,
            200);
  ASSERT_EQ(HttpCall(port_, "GET", "/v1/models/ghost/metadata").status, 404);
  v1::ClassifyRequest request;
  request.set_model("mammal");
  for (float v : std::vector<float>{4, 0, 1}) request.add_features(v);
  request.set_rows(1);
  v1::ClassifyResponse response;
  ASSERT_TRUE(GrpcClassify(request, &response).ok());
  // The file keeps up here: the metric is there, and nothing was dropped.
  EXPECT_THAT(HttpCall(port_, "GET", "/metrics").body,
              HasSubstr("\nseqserve_access_log_dropped_lines_total 0\n"));
  server_.reset();  // writes what is queued

  std::ifstream file(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(file, line);) {
    lines.push_back(nlohmann::json::parse(line));  // throws, failing the test, if not JSON
  }
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["protocol"], "http");
  EXPECT_EQ(lines[0]["method"], "Classify");
  EXPECT_EQ(lines[0]["model"], "species");
  EXPECT_EQ(lines[0]["version"], 1);
  EXPECT_EQ(lines[0]["rows"], 2);
  EXPECT_EQ(lines[0]["code"], "OK");
  EXPECT_GT(lines[0]["duration_seconds"].get<double>(), 0.0);
  EXPECT_THAT(lines[0]["peer"].get<std::string>(), HasSubstr("127.0.0.1"));
  EXPECT_TRUE(std::regex_match(lines[0]["time"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
  EXPECT_EQ(lines[1]["code"], "NOT_FOUND");
  EXPECT_EQ(lines[1]["method"], "GetModelMetadata");
  EXPECT_EQ(lines[2]["protocol"], "grpc");
  EXPECT_EQ(lines[2]["model"], "mammal");
}

}  // namespace
}  // namespace seqserve
