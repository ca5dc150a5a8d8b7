// TF Serving's REST API (its api_rest.md) on a real server's HTTP port:
// the documents of api_rest.md that apply to a float-feature classifier,
// posted as written with the samples' feature names and values, answered
// with exactly the numbers gRPC Classify gives for the same rows; status
// and metadata in the shapes of TF Serving's protos; every refusal with its
// status and {"error": ...}.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
using testing::HttpCall;
using testing::HttpReply;
using testing::TestRepository;

using Rows = std::vector<std::vector<float>>;

constexpr char kFeatureNames[] = "feature_names: ['limbs', 'lays_eggs', 'has_hair']";

class TfServingRestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The samples, with their feature names; the same weights without a
    // config (no labels, no feature names); mammal with two labels.
    for (const char* name : {"species", "mammal"}) {
      repository_.AddReferenceVersion(name, 1, name);
      repository_.WriteReferenceConfig(
          name, name, absl::StrCat(kFeatureNames, "\nversion_labels { key: 'stable' value: 1 }"));
    }
    repository_.AddReferenceVersion("bare_species", 1, "species");
    repository_.AddReferenceVersion("bare_mammal", 1, "mammal");
    repository_.AddReferenceVersion("yes_no", 1, "mammal");
    repository_.WriteFile("yes_no/config.textproto", "labels: ['no', 'yes']\n");
    ModelServer::Options options;
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->http_port();
    stub_ = v1::Classifier::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  // The scores gRPC Classify answers for `rows`.
  Rows GrpcScores(const std::string& model, const Rows& rows, v1::OutputMode mode) {
    v1::ClassifyRequest request;
    request.set_model(model);
    for (const auto& row : rows) request.mutable_features()->Add(row.begin(), row.end());
    request.set_rows(static_cast<uint32_t>(rows.size()));
    request.set_output(mode);
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    const grpc::Status status = stub_->Classify(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    Rows scores;
    for (const auto& result : response.results()) {
      scores.emplace_back(result.scores().begin(), result.scores().end());
    }
    return scores;
  }

  // A call whose answer is 200 and JSON.
  json Answer(const std::string& method, const std::string& path, const std::string& body = "") {
    const HttpReply reply = HttpCall(port_, method, path, body);
    EXPECT_EQ(reply.status, 200) << method << " " << path << " " << body << ": " << reply.body;
    EXPECT_EQ(reply.headers.at("content-type"), "application/json");
    return json::parse(reply.body, nullptr, false);
  }

  TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  int port_ = 0;
};

uint32_t Bits(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// A JSON number read back as the float it was written from.
float AsFloat(const json& number) { return static_cast<float>(number.get<double>()); }

// `got` (a JSON list of lists of numbers) holds exactly the bits of `want`.
void ExpectSameFloats(const json& got, const Rows& want, const std::string& what) {
  ASSERT_TRUE(got.is_array()) << what << ": " << got.dump();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t r = 0; r < want.size(); ++r) {
    ASSERT_EQ(got[r].size(), want[r].size()) << what << " row " << r;
    for (size_t c = 0; c < want[r].size(); ++c) {
      EXPECT_EQ(Bits(AsFloat(got[r][c])), Bits(want[r][c]))
          << what << " row " << r << " column " << c << ": " << got[r][c] << " vs " << want[r][c];
    }
  }
}

json ByName(const std::vector<float>& row) {
  return {{"limbs", row[0]}, {"lays_eggs", row[1]}, {"has_hair", row[2]}};
}

TEST_F(TfServingRestTest, PredictInEveryRowAndColumnFormEqualsGrpcBitForBit) {
  const std::vector<std::pair<std::string, Rows>> cases = {
      {"species", {{4, 0, 1}, {2, 1, 0}, {0, 0, 0}, {6, 1, 1}}},
      {"mammal", {{4, 0, 1}, {2, 1, 0}, {-3.25f, 1e6f, 0.1f}}}};
  for (const auto& [model, rows] : cases) {
    SCOPED_TRACE(model);
    // The model's default output: softmax for species, sigmoid for mammal.
    const Rows want = GrpcScores(model, rows, v1::OUTPUT_MODE_DEFAULT);
    json by_name = json::array(), by_input = json::array();
    json columns = {{"limbs", json::array()}, {"lays_eggs", json::array()},
                    {"has_hair", json::array()}};
    for (const auto& row : rows) {
      by_name.push_back(ByName(row));
      by_input.push_back({{"features", row}});
      columns["limbs"].push_back(row[0]);
      columns["lays_eggs"].push_back(row[1]);
      columns["has_hair"].push_back(row[2]);
    }
    // api_rest.md's forms: one input's rows; named inputs per instance; the
    // columnar form, bare or by name; with the signature named or not.
    const std::vector<std::pair<json, const char*>> bodies = {
        {{{"instances", rows}}, "predictions"},
        {{{"signature_name", "serving_default"}, {"instances", by_name}}, "predictions"},
        {{{"signature_name", ""}, {"instances", by_input}}, "predictions"},
        {{{"inputs", rows}}, "outputs"},
        {{{"inputs", columns}}, "outputs"},
        {{{"inputs", {{"features", rows}}}}, "outputs"},
    };
    for (const auto& [body, key] : bodies) {
      for (const std::string& path : {absl::StrCat("/v1/models/", model, ":predict"),
                                     absl::StrCat("/v1/models/", model, "/versions/1:predict")}) {
        const json answer = Answer("POST", path, body.dump());
        ASSERT_TRUE(answer.is_object() && answer.size() == 1 && answer.contains(key))
            << body.dump() << " -> " << answer.dump();
        ExpectSameFloats(answer[key], want, body.dump());
      }
    }
  }
  // api_rest.md's curl example, on a model of three features.
  const json answer = Answer("POST", "/v1/models/species:predict",
                             R"({"instances": [[4.0, 0.0, 1.0], [2.0, 1.0, 0.0], [0.0, 1.0, 0.0]]})");
  ExpectSameFloats(answer["predictions"],
                   GrpcScores("species", {{4, 0, 1}, {2, 1, 0}, {0, 1, 0}},
                              v1::OUTPUT_MODE_SOFTMAX),
                   "curl example");
}

TEST_F(TfServingRestTest, ClassifyAnswersEveryClassWithItsProbability) {
  // api_rest.md's request format: a context shared by every example.
  const std::string body = R"({
    "signature_name": "serving_default",
    "context": {"has_hair": 1},
    "examples": [
      {"limbs": 4, "lays_eggs": 0},
      {"limbs": 0, "lays_eggs": 1}
    ]
  })";
  const Rows rows = {{4, 0, 1}, {0, 1, 1}};
  // Labels per class and how each score comes from gRPC's answer.
  struct Case {
    std::string model;
    std::string body;
    v1::OutputMode mode;
    std::vector<std::string> labels;
  };
  json bare = {{"examples", json::array()}};
  for (const auto& row : rows) bare["examples"].push_back({{"features", row}});
  const std::vector<Case> cases = {
      {"species", body, v1::OUTPUT_MODE_SOFTMAX, {"bird", "mammal", "reptile"}},
      // One sigmoid output: two classes, 1 - p and p, named as the labels say.
      {"mammal", body, v1::OUTPUT_MODE_SIGMOID, {"not mammal", "mammal"}},
      {"yes_no", bare.dump(), v1::OUTPUT_MODE_SIGMOID, {"no", "yes"}},
      // No labels: "".
      {"bare_species", bare.dump(), v1::OUTPUT_MODE_SOFTMAX, {"", "", ""}},
      {"bare_mammal", bare.dump(), v1::OUTPUT_MODE_SIGMOID, {"", ""}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.model);
    const Rows scores = GrpcScores(c.model, rows, c.mode);
    json want = json::array();
    for (const auto& row : scores) {
      json classes = json::array();
      if (row.size() == 1) {
        classes.push_back({c.labels[0], 1.0f - row[0]});
        classes.push_back({c.labels[1], row[0]});
      } else {
        for (size_t i = 0; i < row.size(); ++i) classes.push_back({c.labels[i], row[i]});
      }
      want.push_back(classes);
    }
    const json answer = Answer("POST", absl::StrCat("/v1/models/", c.model, ":classify"), c.body);
    ASSERT_TRUE(answer.contains("result")) << answer.dump();
    // "result" as api_rest.md names it, "results" as TF Serving sends it.
    EXPECT_EQ(answer["results"], answer["result"]);
    EXPECT_EQ(answer.size(), 2u) << answer.dump();
    const json& result = answer["result"];
    ASSERT_EQ(result.size(), want.size()) << answer.dump();
    for (size_t r = 0; r < want.size(); ++r) {
      ASSERT_EQ(result[r].size(), want[r].size()) << answer.dump();
      for (size_t i = 0; i < want[r].size(); ++i) {
        EXPECT_EQ(result[r][i][0], want[r][i][0]) << answer.dump();
        EXPECT_EQ(Bits(AsFloat(result[r][i][1])), Bits(want[r][i][1].get<float>()))
            << "row " << r << " class " << i << ": " << answer.dump();
      }
    }
  }
  // seqserve's own ClassifyRequest still answers on the same route.
  const json own = Answer("POST", "/v1/models/species:classify",
                          R"({"features": [4, 0, 1], "rows": 1})");
  EXPECT_EQ(own["results"][0]["predicted_label"], "mammal");
}

TEST_F(TfServingRestTest, StatusIsGetModelStatusResponse) {
  const json available = json::parse(R"({
    "model_version_status": [
      {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]})");
  EXPECT_EQ(Answer("GET", "/v1/models/species"), available);
  EXPECT_EQ(Answer("GET", "/v1/models/species/versions/1"), available);
  // A version that fails to load: END, with why; version 1 still serves.
  repository_.WriteFile("species/2/model.onnx", "not a model");
  server_->models().Refresh();
  const json both = Answer("GET", "/v1/models/species");
  ASSERT_EQ(both["model_version_status"].size(), 2u) << both.dump();
  const json& failed = both["model_version_status"][0];
  EXPECT_EQ(failed["version"], "2");
  EXPECT_EQ(failed["state"], "END");
  EXPECT_EQ(failed["status"]["error_code"], "UNKNOWN");
  EXPECT_FALSE(failed["status"]["error_message"].get<std::string>().empty()) << both.dump();
  EXPECT_EQ(both["model_version_status"][1], available["model_version_status"][0]);
  const json one = Answer("GET", "/v1/models/species/versions/2");
  EXPECT_EQ(one["model_version_status"], json::array({failed}));
  // Metadata and inference name the failure too, as 503.
  const HttpReply metadata = HttpCall(port_, "GET", "/v1/models/species/versions/2/metadata");
  EXPECT_EQ(metadata.status, 503) << metadata.body;
  EXPECT_THAT(json::parse(metadata.body).value("error", ""), HasSubstr("failed to load"));
}

// A label in the path answers with the version the config names for it,
// on every TF Serving path and seqserve's own classify body.
TEST_F(TfServingRestTest, LabelPathsReachTheVersionTheirLabelNames) {
  repository_.AddReferenceVersion("species", 2, "species");
  repository_.WriteReferenceConfig("species", "species",
                                   absl::StrCat(kFeatureNames,
                                                "\nversion_policy { all {} }"
                                                "\nversion_labels { key: 'stable' value: 1 }"
                                                "\nversion_labels { key: 'canary' value: 2 }"));
  server_->models().Refresh();
  for (const auto& [label, version] : {std::pair<std::string, std::string>{"stable", "1"},
                                       {"canary", "2"}}) {
    SCOPED_TRACE(label);
    const std::string base = absl::StrCat("/v1/models/species/labels/", label);
    const json status = Answer("GET", base);
    ASSERT_EQ(status["model_version_status"].size(), 1u) << status.dump();
    EXPECT_EQ(status["model_version_status"][0]["version"], version);
    EXPECT_EQ(Answer("GET", base + "/metadata")["model_spec"]["version"], version);
    const json classified = Answer("POST", base + ":classify", R"({"features": [4, 0, 1]})");
    EXPECT_EQ(classified["version"], version) << classified.dump();
    EXPECT_EQ(Answer("POST", base + ":predict", R"({"instances": [[4, 0, 1]]})"),
              Answer("POST", "/v1/models/species/versions/" + version + ":predict",
                     R"({"instances": [[4, 0, 1]]})"));
  }
  // Labels are listed with the versions they name.
  const json models = Answer("GET", "/v1/models");
  for (const json& model : models["models"]) {
    if (model["name"] != "species") continue;
    EXPECT_EQ(model["versions"][0]["labels"], json::array({"canary"})) << models.dump();
    EXPECT_EQ(model["versions"][1]["labels"], json::array({"stable"})) << models.dump();
  }
  const HttpReply both = HttpCall(port_, "POST", "/v1/models/species/labels/stable:classify",
                                  R"({"features": [4, 0, 1], "version_label": "canary"})");
  EXPECT_EQ(both.status, 400) << both.body;
  EXPECT_THAT(both.body, HasSubstr("the body names version label 'canary' but the path names "
                                   "'stable'"));
}

TEST_F(TfServingRestTest, MetadataIsGetModelMetadataResponseWithSeqservesOwn) {
  const json answer = Answer("GET", "/v1/models/species/metadata");
  EXPECT_EQ(answer["model_spec"],
            json::parse(R"({"name": "species", "signature_name": "", "version": "1"})"));
  const json want_signatures = json::parse(R"({
    "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap",
    "signature_def": {
      "serving_default": {
        "inputs": {
          "features": {
            "dtype": "DT_FLOAT",
            "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}],
                             "unknown_rank": false},
            "name": "features"
          }
        },
        "outputs": {
          "scores": {
            "dtype": "DT_FLOAT",
            "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}],
                             "unknown_rank": false},
            "name": "scores"
          }
        },
        "method_name": "tensorflow/serving/predict",
        "defaults": {}
      }
    }})");
  EXPECT_EQ(answer["metadata"]["signature_def"], want_signatures) << answer.dump(1);
  EXPECT_EQ(answer["metadata"].size(), 2u) << answer.dump(1);
  // seqserve's own, as an Any: what gRPC GetModelMetadata answers.
  json own = answer["metadata"]["seqserve"];
  EXPECT_EQ(own["@type"], "type.googleapis.com/seqserve.v1.GetModelMetadataResponse");
  own.erase("@type");
  v1::GetModelMetadataResponse over_http;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(own.dump(), &over_http).ok());
  v1::GetModelMetadataRequest request;
  request.set_model("species");
  v1::GetModelMetadataResponse over_grpc;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->GetModelMetadata(&context, request, &over_grpc).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(over_http, over_grpc))
      << over_http.DebugString() << over_grpc.DebugString();
  // A binary model's one output, by version.
  const json mammal = Answer("GET", "/v1/models/mammal/versions/1/metadata");
  EXPECT_EQ(mammal["model_spec"]["version"], "1");
  EXPECT_EQ(mammal["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
                  ["scores"]["tensor_shape"]["dim"][1]["size"],
            "1");
}

TEST_F(TfServingRestTest, RefusalsSayWhyUnderError) {
  struct Case {
    const char* method;
    std::string path;
    std::string body;
    int status;
    std::string message;
  };
  const std::string predict = "/v1/models/species:predict";
  const std::string classify = "/v1/models/species:classify";
  const std::vector<Case> cases = {
      // api_rest.md's own error example.
      {"POST", "/v1/models/half:predict", R"({"instances": [1.0,5.0]})", 404,
       "model 'half' is not served"},
      {"POST", "/v1/models/species/versions/9:predict", R"({"instances": [1.0,5.0]})", 404,
       "has no version 9"},
      {"POST", predict, R"({"signature_name": "classify_x_to_y", "instances": [[4, 0, 1]]})", 400,
       "Serving signature name: 'classify_x_to_y' not found in signature def"},
      {"POST", classify, R"({"signature_name": "tensorflow/serving/regress", "examples": []})",
       400, "Serving signature name: 'tensorflow/serving/regress' not found"},
      {"POST", predict, R"({"instances": [[4, 0, 1]], "inputs": [[4, 0, 1]]})", 400,
       "either \"instances\" (rows) or \"inputs\" (columns), not both"},
      {"POST", predict, R"({"signature_name": ""})", 400, "needs \"instances\" (rows) or"},
      {"POST", predict, R"({"instance": [[4, 0, 1]]})", 400, "unknown field 'instance'"},
      {"POST", classify, R"({"examples": [{"limbs": 4}], "features": [4, 0, 1], "rows": 1})",
       400, "the body mixes TF Serving's classify request ('examples') with seqserve's "
            "ClassifyRequest ('features')"},
      {"POST", classify, R"({"features": [4, 0, 1], "rows": 1, "signature_name": ""})", 400,
       "the body mixes TF Serving's classify request ('signature_name') with seqserve's "
       "ClassifyRequest ('features')"},
      // A key inside a value is no key of the body: seqserve's request.
      {"POST", classify, R"({"model": "examples", "features": [4, 0, 1], "rows": 1})", 400,
       "the body names model 'examples' but the path names 'species'"},
      {"POST", classify, R"({"context": {"limbs": 4}})", 400, "needs \"examples\""},
      {"POST", predict, R"({"instances": [[4, 0]]})", 400,
       "model 'species' takes 3 features per row"},
      {"POST", predict, R"({"inputs": [[4, 0, 1, 1], [2, 1, 0, 0]]})", 400,
       "model 'species' takes 3 features per row"},
      {"POST", predict, R"({"instances": [[4, 0, 1], [2, 1]]})", 400,
       "instances[1]: has 2 values and instances[0] has 3"},
      {"POST", predict, R"({"instances": [[4, 0, 1], {"limbs": 2, "lays_eggs": 1, "has_hair": 0}]})",
       400, "instances[1]: is an object and instances[0] a list: give every row the same way"},
      {"POST", predict, R"({"instances": [4, 0, 1]})", 400,
       "instances[0]: must be a list of numbers or an object, got number"},
      {"POST", predict, R"({"instances": [[[4, 0, 1]]]})", 400,
       "instances[0][0]: must be a number, a string or null, got array"},
      {"POST", predict, R"({"instances": [["four", 0, 1]]})", 400,
       "row 0 feature 'limbs' is a number, got 'four'"},
      {"POST", predict, R"({"instances": [[4, 0, 1e39]]})", 400,
       "instances[0][2]: is beyond FP32's range"},
      {"POST", predict, R"({"instances": [{"limbs": 4, "lays_eggs": 0, "wings": 2}]})", 400,
       "model 'species' has no feature 'wings'; its features are limbs, lays_eggs, has_hair"},
      {"POST", predict, R"({"instances": [{"limbs": 4, "lays_eggs": 0}]})", 400,
       "feature 'has_hair' of model 'species' is missing"},
      {"POST", predict,
       R"({"instances": [{"limbs": 4, "lays_eggs": 0, "has_hair": 1}, {"limbs": 4, "lays_eggs": 0}]})",
       400, "instances[1]: has no 'has_hair', which instances[0] has"},
      {"POST", predict, R"({"inputs": {"limbs": [4, 2], "lays_eggs": [0, 1], "has_hair": [1]}})",
       400, "inputs['lays_eggs']: has 2 values and inputs['has_hair'] has 1: every input has one "
            "per row"},
      {"POST", predict, R"({"instances": [{"limbs": [4, 2], "lays_eggs": 0, "has_hair": 1}]})",
       400, "instances[0]['limbs']: a feature holds one value, got a list of 2"},
      {"POST", "/v1/models/bare_species:predict",
       R"({"instances": [{"limbs": 4, "lays_eggs": 0, "has_hair": 1}]})", 400,
       "model 'bare_species' names no features (its config has no feature_names)"},
      // The context's features must not be in an example.
      {"POST", classify,
       R"({"context": {"has_hair": 1}, "examples": [{"limbs": 4, "lays_eggs": 0, "has_hair": 0}]})",
       400, "examples[0]: feature 'has_hair' is also in the context"},
      {"POST", classify, R"({"examples": [[4, 0, 1]]})", 400,
       "examples[0]: must be an object of features, got array"},
      {"POST", classify,
       R"({"context": {"has_hair": 1}, "examples": [{"limbs": 4, "lays_eggs": 0}, {"limbs": 4}]})",
       400, "examples[1]: has no 'lays_eggs', which examples[0] has"},
      {"POST", classify,
       R"({"context": {"has_hair": 1}, "examples": [{"limbs": 4, "lays_eggs": 0},
                                                   {"limbs": 4, "lays_eggs": 0, "wings": 2}]})",
       400, "examples[1]: has 'wings', which examples[0] has not"},
      // NaN and Infinity, which api_rest.md allows: refused, and said so.
      {"POST", predict, R"({"instances": [[1.0, NaN, 1]]})", 400,
       "NaN and Infinity are not accepted"},
      {"POST", classify,
       R"({"examples": [{"limbs": -Infinity, "lays_eggs": 0, "has_hair": 1}]})", 400,
       "NaN and Infinity are not accepted"},
      {"POST", predict, R"({"instances": [[1, 0, 1]] ])", 400,
       "request body is not a valid TF Serving predict request in JSON: JSON syntax error"},
      // Version labels the config does not give.
      {"GET", "/v1/models/species/labels/canary", "", 404,
       "model 'species' has no version label 'canary' (labels: stable)"},
      {"GET", "/v1/models/species/labels/canary/metadata", "", 404,
       "no version label 'canary'"},
      {"POST", "/v1/models/species/labels/canary:predict", R"({"instances": [[4, 0, 1]]})", 404,
       "no version label 'canary'"},
      {"POST", "/v1/models/species/labels/canary:classify",
       R"({"examples": [{"limbs": 4, "lays_eggs": 0, "has_hair": 1}]})", 404,
       "no version label 'canary'"},
      {"POST", "/v1/models/bare_species/labels/stable:classify",
       R"({"features": [4, 0, 1]})", 404,
       "model 'bare_species' has no version label 'stable' (it has none)"},
      {"GET", "/v1/models/species/versions/9", "", 404, "has no version 9"},
      {"GET", "/v1/models/unicorn", "", 404, "model 'unicorn' is not served"},
      {"GET", "/v1/models/unicorn/metadata", "", 404, "model 'unicorn' is not served"},
      {"POST", "/v1/models/species:regress", R"({"examples": [{"x": 1.0}]})", 404,
       "no endpoint at"},
      {"POST", "/v1/models/species", R"({"instances": [[4, 0, 1]]})", 405, "use GET"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.method, " ", c.path, " ", c.body));
    const HttpReply reply = HttpCall(port_, c.method, c.path, c.body);
    EXPECT_EQ(reply.status, c.status) << reply.body;
    EXPECT_EQ(reply.headers.at("content-type"), "application/json");
    const json body = json::parse(reply.body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << reply.body;
    EXPECT_THAT(body["error"].get<std::string>(), HasSubstr(c.message)) << reply.body;
    EXPECT_EQ(body["error"], body["message"]);
  }
}

// A context's features count once per example: a small body cannot ask
// for more values than a body may hold.
TEST_F(TfServingRestTest, AContextCannotMultiplyTheRowsPastTheValueLimit) {
  json context = json::object();
  for (int i = 0; i < 2000; ++i) context[absl::StrCat("f", i)] = 0;
  json body = {{"context", context}, {"examples", json::array()}};
  for (int i = 0; i < 5000; ++i) body["examples"].push_back(json::object());
  const HttpReply reply = HttpCall(port_, "POST", "/v1/models/species:classify", body.dump());
  EXPECT_EQ(reply.status, 429) << reply.body;
  EXPECT_THAT(json::parse(reply.body).value("error", ""),
              HasSubstr("the rows hold more than 8388608 values"));
  // Every feature in the context, none in the examples: as many rows.
  const json shared = Answer(
      "POST", "/v1/models/species:classify",
      R"({"context": {"limbs": 4, "lays_eggs": 0, "has_hair": 1}, "examples": [{}, {}]})");
  ASSERT_EQ(shared["result"].size(), 2u) << shared.dump();
  EXPECT_EQ(shared["result"][0], shared["result"][1]);
  EXPECT_EQ(shared["result"][0][1][0], "mammal");
}

TEST_F(TfServingRestTest, EveryCallTakesTheBatcherAndIsAccounted) {
  auto series = [this](const std::string& name) {
    const std::string text = HttpCall(port_, "GET", "/metrics").body;
    const size_t at = text.find("\n" + name + " ");
    return at == std::string::npos ? 0.0 : std::stod(text.substr(at + name.size() + 2));
  };
  const std::string rows = "seqserve_request_rows_sum{model=\"species\"}";
  const std::string passes = "seqserve_batch_rows_count{model=\"species\"}";
  const double rows_before = series(rows), passes_before = series(passes);
  Answer("POST", "/v1/models/species:predict", R"({"instances": [[4, 0, 1], [2, 1, 0]]})");
  Answer("POST", "/v1/models/species:classify",
         R"({"examples": [{"features": [4, 0, 1]}, {"features": [2, 1, 0]}, {"features": [0, 1, 0]}]})");
  EXPECT_EQ(series(rows) - rows_before, 5);
  EXPECT_EQ(series(passes) - passes_before, 2);
  Answer("GET", "/v1/models/species");
  Answer("GET", "/v1/models/species/metadata");
  // The status of every version names none.
  for (const auto& [method, version] : {std::pair<std::string, std::string>{"Predict", "1"},
                                        {"Classify", "1"},
                                        {"GetModelStatus", ""},
                                        {"GetModelMetadata", "1"}}) {
    EXPECT_EQ(series(absl::StrCat("seqserve_requests_total{protocol=\"http\",method=\"", method,
                                  "\",model=\"species\",version=\"", version,
                                  "\",code=\"OK\"}")),
              1)
        << method;
  }
  HttpCall(port_, "POST", "/v1/models/species:predict", R"({"instances": [[4, 0]]})");
  EXPECT_EQ(series("seqserve_requests_total{protocol=\"http\",method=\"Predict\",model=\"species\","
                   "version=\"1\",code=\"INVALID_ARGUMENT\"}"),
            1);
}

}  // namespace
}  // namespace seqserve
