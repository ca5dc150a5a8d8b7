// One vocabulary on every interface: an output mode is read in either
// spelling ("softmax" or "OUTPUT_MODE_SOFTMAX") by seqclient, seqmodel,
// the REST body, the Open Inference Protocol's output names over HTTP and
// gRPC and config.textproto; the programs' tables and CSV print the short
// name. A classification in JSON is the API's ClassifyResponse in
// protobuf's JSON mapping, the same bytes from REST, seqclient and seqmodel.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/seqserve_client.h"
#include "core/feature_rows.h"
#include "nlohmann/json.hpp"
#include "tests/support/http_client.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/server_process.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::CommandResult;
using testing::RunCommand;

const std::vector<float> kRows = {4, 0, 1, 2, 1, 0};

class VocabularyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repository_ = new testing::TestRepository();
    repository_->AddReferenceVersion("species", 1, "species");
    repository_->WriteReferenceConfig("species", "species");
    // The config in the short spelling.
    repository_->AddReferenceVersion("species_short", 1, "species");
    repository_->WriteReferenceConfig("species_short", "species", "default_output: log_softmax\n");
    // Labels that read like output modes stay labels.
    // A graph that names its output like a head: softmax, its default.
    testing::OnnxBuilder named(3);
    named.Weight("w", {3, 3}, {1, 0, 0, 0, 2, 0, 0, 0, -1}).Weight("b", {3}, {0, 0, 0});
    testing::SetInt(named.Node("Gemm", {"features", "w", "b"}, {"logits"}), "transB", 1);
    named.Node("Softmax", {"logits"}, {"softmax"});
    named.Output("softmax", 3);
    repository_->WriteFile("named_softmax/1/model.onnx", named.Serialize());
    repository_->AddReferenceVersion("modes", 1, "species");
    repository_->WriteFile("modes/config.textproto",
                           "labels: ['OUTPUT_MODE_SOFTMAX', 'OUTPUT_MODE_LOGITS', 'output']\n");
    server_ = new testing::ServerProcess(
        SEQSERVE_PATH, {"--model_repository=" + repository_->root(), "--poll_seconds=0"});
    rows_file_ = ::testing::TempDir() + "/vocabulary_rows.csv";
    std::ofstream(rows_file_) << "4,0,1\n2,1,0\n";
  }
  static void TearDownTestSuite() {
    delete server_;
    delete repository_;
  }
  void SetUp() override { ASSERT_TRUE(server_->ready()) << server_->output(); }

  static CommandResult Seqclient(const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server_->target(), " ",
                                   arguments));
  }
  static CommandResult Seqmodel(const std::string& model, const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQMODEL_PATH, " run ", repository_->root(), "/", model,
                                   "/1/model.onnx ", arguments, " --input ", rows_file_));
  }

  // The v2 answer's one output over HTTP, asked by `name`.
  static nlohmann::json V2Http(const std::string& name) {
    const nlohmann::json body = {
        {"inputs", {{{"name", "features"}, {"shape", {2, 3}}, {"datatype", "FP32"},
                     {"data", kRows}}}},
        {"outputs", {{{"name", name}}}}};
    const auto reply = testing::HttpCall(server_->http_port(), "POST",
                                         "/v2/models/species/infer", body.dump());
    EXPECT_EQ(reply.status, 200) << reply.body;
    if (reply.status != 200) return {};
    return nlohmann::json::parse(reply.body).at("outputs").at(0);
  }

  static std::vector<float> V2Grpc(const std::string& name, std::string* answered_name) {
    auto client = Client::Create(server_->target());
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return {};
    inference::ModelInferRequest request;
    request.set_model_name("species");
    auto* input = request.add_inputs();
    input->set_name("features");
    input->set_datatype("FP32");
    input->add_shape(2);
    input->add_shape(3);
    input->mutable_contents()->mutable_fp32_contents()->Add(kRows.begin(), kRows.end());
    request.add_outputs()->set_name(name);
    auto answer = (*client)->Infer(request);
    EXPECT_TRUE(answer.ok()) << answer.status();
    if (!answer.ok()) return {};
    *answered_name = answer->outputs(0).name();
    const auto& values = answer->outputs(0).contents().fp32_contents();
    return std::vector<float>(values.begin(), values.end());
  }

  static inline testing::TestRepository* repository_ = nullptr;
  static inline testing::ServerProcess* server_ = nullptr;
  static inline std::string rows_file_;
};

TEST_F(VocabularyTest, ToolsTakeEitherSpellingAndPrintTheShortOne) {
  for (const char* format : {"table", "csv", "json"}) {
    const std::string short_name = absl::StrCat("--format ", format, " --output log_softmax");
    const std::string api_name =
        absl::StrCat("--format ", format, " --output OUTPUT_MODE_LOG_SOFTMAX");
    const CommandResult client =
        Seqclient(absl::StrCat("classify --model species ", short_name, " --input ", rows_file_));
    ASSERT_EQ(client.exit_code, 0) << client.output;
    EXPECT_EQ(Seqclient(absl::StrCat("classify --model species ", api_name, " --input ",
                                     rows_file_))
                  .output,
              client.output)
        << format;
    EXPECT_EQ(Seqmodel("species", short_name).output, client.output) << format;
    EXPECT_EQ(Seqmodel("species", api_name).output, client.output) << format;
    if (std::string(format) == "json") {
      // protobuf's JSON mapping: the enum's name, which its parsers read.
      EXPECT_THAT(client.output, HasSubstr("\"output\":\"OUTPUT_MODE_LOG_SOFTMAX\""));
    } else {
      EXPECT_THAT(client.output, Not(HasSubstr("OUTPUT_MODE")));
    }
  }
  // Neither another case nor a part of a name.
  for (const char* wrong : {"Softmax", "OUTPUT_MODE_softmax", "MODE_SOFTMAX"}) {
    const CommandResult refused =
        Seqclient(absl::StrCat("classify --model species --output ", wrong, " 4,0,1"));
    EXPECT_EQ(refused.exit_code, 1) << wrong;
    EXPECT_THAT(refused.output, HasSubstr(absl::StrCat(
                                    "unknown --output '", wrong,
                                    "' (default, logits, sigmoid, softmax, log_softmax)")));
  }
}

// config.textproto's `default_output: log_softmax` is OUTPUT_MODE_LOG_SOFTMAX.
TEST_F(VocabularyTest, AConfigTakesTheShortSpelling) {
  const CommandResult metadata = Seqclient("metadata species_short --format json");
  ASSERT_EQ(metadata.exit_code, 0) << metadata.output;
  EXPECT_THAT(metadata.output, HasSubstr("\"default_output\":\"OUTPUT_MODE_LOG_SOFTMAX\""));
  const CommandResult table = Seqclient("metadata species_short");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("log_softmax"));
  EXPECT_THAT(table.output, Not(HasSubstr("OUTPUT_MODE")));
  const CommandResult by_default =
      Seqclient(absl::StrCat("classify --model species_short --format csv --input ", rows_file_));
  const CommandResult asked = Seqclient(
      absl::StrCat("classify --model species --format csv --output log_softmax --input ",
                   rows_file_));
  ASSERT_EQ(by_default.exit_code, 0) << by_default.output;
  EXPECT_EQ(by_default.output, asked.output);
}

// An Open Inference Protocol output may be named by either spelling of its
// head; the answer's tensor keeps the name it was asked by.
TEST_F(VocabularyTest, OpenInferenceOutputsTakeEitherSpelling) {
  const nlohmann::json short_name = V2Http("softmax");
  const nlohmann::json api_name = V2Http("OUTPUT_MODE_SOFTMAX");
  EXPECT_EQ(api_name.at("name"), "OUTPUT_MODE_SOFTMAX");
  EXPECT_EQ(api_name.at("data"), short_name.at("data"));
  std::string name_short, name_api;
  const std::vector<float> grpc_short = V2Grpc("log_softmax", &name_short);
  const std::vector<float> grpc_api = V2Grpc("OUTPUT_MODE_LOG_SOFTMAX", &name_api);
  ASSERT_EQ(grpc_short.size(), 6u);
  EXPECT_EQ(grpc_api, grpc_short);
  EXPECT_EQ(name_api, "OUTPUT_MODE_LOG_SOFTMAX");
}

// seqserve's REST body takes either spelling. Its answers stay protobuf's
// JSON of the API's messages (enum names), which protobuf's parsers read.
TEST_F(VocabularyTest, RestTakesEitherSpelling) {
  auto classify = [](const std::string& output) {
    const std::string body = absl::StrCat(
        R"({"features": [4, 0, 1, 2, 1, 0], "rows": 2, "output" : ")", output, R"("})");
    return testing::HttpCall(server_->http_port(), "POST", "/v1/models/species:classify", body);
  };
  const auto short_name = classify("log_softmax");
  const auto api_name = classify("OUTPUT_MODE_LOG_SOFTMAX");
  ASSERT_EQ(short_name.status, 200) << short_name.body;
  ASSERT_EQ(api_name.status, 200) << api_name.body;
  EXPECT_EQ(short_name.body, api_name.body);
  const nlohmann::json answer = nlohmann::json::parse(short_name.body);
  EXPECT_EQ(answer.at("output"), "OUTPUT_MODE_LOG_SOFTMAX");
  EXPECT_LT(answer.at("results").at(0).at("scores").at(0).get<double>(), 0);  // log-probabilities
  // Another case is refused, as protobuf's parser refuses an unknown name.
  const auto refused = classify("Log_Softmax");
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_THAT(refused.body, HasSubstr("Log_Softmax"));
  // A label that happens to be a mode's name is left as it is.
  const auto labelled = testing::HttpCall(
      server_->http_port(), "POST", "/v1/models/modes:classify",
      R"({"features": [4, 0, 1], "rows": 1, "output": "OUTPUT_MODE_SOFTMAX", "top_k": 3})");
  ASSERT_EQ(labelled.status, 200) << labelled.body;
  const nlohmann::json row = nlohmann::json::parse(labelled.body).at("results").at(0);
  EXPECT_EQ(row.at("predicted_label"), "OUTPUT_MODE_LOGITS");
  EXPECT_EQ(row.at("top_k").at(1).at("label"), "output");
  EXPECT_EQ(row.at("top_k").at(2).at("label"), "OUTPUT_MODE_SOFTMAX");
  const auto openapi = testing::HttpCall(server_->http_port(), "GET", "/openapi.json");
  ASSERT_EQ(openapi.status, 200);
  const auto modes = nlohmann::json::parse(openapi.body)
                         .at("components")
                         .at("schemas")
                         .at("seqserve.v1.ClassifyRequest")
                         .at("properties")
                         .at("output")
                         .at("enum");
  EXPECT_THAT(modes.dump(), HasSubstr("\"OUTPUT_MODE_SOFTMAX\""));
  EXPECT_THAT(modes.dump(), HasSubstr("\"softmax\""));
}

// seqclient over the Open Inference Protocol asks a top-k of the default
// output by that output's name, from the model's metadata: for a graph
// whose output is named "softmax" the v2 list ends in log_softmax, which a
// guess by place would have asked.
TEST_F(VocabularyTest, SeqclientV2AsksTheDefaultOutputByName) {
  const CommandResult v1 =
      Seqclient("classify --model named_softmax --top_k 1 --format json 1,2,3");
  ASSERT_EQ(v1.exit_code, 0) << v1.output;
  const nlohmann::json top =
      nlohmann::json::parse(v1.output).at("results").at(0).at("top_k").at(0);
  const std::string expected = absl::StrCat(
      "0,softmax,", FormatFloat(static_cast<float>(top.at("score").get<double>())), ":",
      top.at("index").get<int>(), "\n");
  const CommandResult v2 =
      Seqclient("classify --protocol v2 --model named_softmax --top_k 1 --format csv 1,2,3");
  ASSERT_EQ(v2.exit_code, 0) << v2.output;
  EXPECT_EQ(v2.output, "row,output,top_1\n" + expected);
}

// One shape for a classification in JSON: REST's answer, seqclient's and
// seqmodel's --format json are the same bytes for the same rows.
TEST_F(VocabularyTest, AClassificationInJsonIsTheSameBytesEverywhere) {
  for (const char* output : {"softmax", "logits"}) {
    const auto rest = testing::HttpCall(
        server_->http_port(), "POST", "/v1/models/species:classify",
        absl::StrCat(R"({"features": [4, 0, 1, 2, 1, 0], "top_k": 2, "output": ")", output,
                     R"("})"));
    ASSERT_EQ(rest.status, 200) << rest.body;
    const std::string options = absl::StrCat("--format json --top_k 2 --output ", output);
    const CommandResult client =
        Seqclient(absl::StrCat("classify --model species ", options, " --input ", rows_file_));
    ASSERT_EQ(client.exit_code, 0) << client.output;
    EXPECT_EQ(client.output, rest.body + "\n") << output;
    EXPECT_EQ(Seqmodel("species", options).output, rest.body + "\n") << output;
    const nlohmann::json answer = nlohmann::json::parse(rest.body);
    EXPECT_EQ(answer.at("version"), "1");  // int64 as a JSON string, as the mapping says
    ASSERT_EQ(answer.at("results").size(), 2u);
    EXPECT_EQ(answer.at("results").at(1).at("predicted_label"), "bird");
    EXPECT_EQ(answer.at("results").at(1).at("top_k").size(), 2u);
  }
}

// seqclient's models and metadata in JSON are the API's messages REST
// answers: /v1/models itself, and the "seqserve" entry of the metadata.
TEST_F(VocabularyTest, ModelsAndMetadataInJsonAreWhatRestAnswers) {
  const auto rest_models = testing::HttpCall(server_->http_port(), "GET", "/v1/models");
  ASSERT_EQ(rest_models.status, 200) << rest_models.body;
  const CommandResult models = Seqclient("models --format json");
  ASSERT_EQ(models.exit_code, 0) << models.output;
  EXPECT_EQ(models.output, rest_models.body + "\n");
  const auto rest_metadata =
      testing::HttpCall(server_->http_port(), "GET", "/v1/models/species_short/metadata");
  ASSERT_EQ(rest_metadata.status, 200) << rest_metadata.body;
  const CommandResult metadata = Seqclient("metadata species_short --format json");
  ASSERT_EQ(metadata.exit_code, 0) << metadata.output;
  // REST's entry is a google.protobuf.Any, so it names its type too.
  nlohmann::json entry = nlohmann::json::parse(rest_metadata.body).at("metadata").at("seqserve");
  EXPECT_EQ(entry.at("@type"), "type.googleapis.com/seqserve.v1.GetModelMetadataResponse");
  entry.erase("@type");
  EXPECT_EQ(nlohmann::json::parse(metadata.output), entry);
}

// A REST body may leave rows out: the features over the model's width.
TEST_F(VocabularyTest, RestInfersRowsFromTheFeatures) {
  auto classify = [](const std::string& body) {
    return testing::HttpCall(server_->http_port(), "POST", "/v1/models/species:classify", body);
  };
  const auto given = classify(R"({"features": [4, 0, 1, 2, 1, 0], "rows": 2})");
  const auto inferred = classify(R"({"features": [4, 0, 1, 2, 1, 0]})");
  ASSERT_EQ(given.status, 200) << given.body;
  ASSERT_EQ(inferred.status, 200) << inferred.body;
  EXPECT_EQ(inferred.body, given.body);
  EXPECT_EQ(nlohmann::json::parse(inferred.body).at("results").size(), 2u);
  const auto partial = classify(R"({"features": [4, 0, 1, 2]})");
  EXPECT_EQ(partial.status, 400) << partial.body;
  EXPECT_THAT(partial.body, HasSubstr("takes 3 features per row: 4 values are not whole rows"));
  const auto empty = classify(R"({"features": []})");
  EXPECT_EQ(empty.status, 400) << empty.body;
  EXPECT_THAT(empty.body, HasSubstr("empty batch"));
}

}  // namespace
}  // namespace seqserve
