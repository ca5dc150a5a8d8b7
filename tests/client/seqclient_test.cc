// seqclient end to end against the real seqserve binary on the sample
// models in models/.
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/seqserve_client.h"
#include "nlohmann/json.hpp"
#include "tests/support/http_client.h"
#include "tests/support/sample_server_fixture.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;

class SeqclientTest : public testing::SampleServerTest {
 protected:
  static testing::CommandResult Seqclient(const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server_->target(), " ",
                                   arguments));
  }
};

TEST_F(SeqclientTest, ClassifyPrintsATable) {
  const auto result = Seqclient("classify --model species 4,0,1 2,1,0 0,1,0");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::vector<std::string> lines = absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << result.output;
  EXPECT_THAT(lines[0], HasSubstr("bird"));
  EXPECT_THAT(lines[1], ::testing::StartsWith("0     mammal"));
  EXPECT_THAT(lines[2], ::testing::StartsWith("1     bird"));
  EXPECT_THAT(lines[3], ::testing::StartsWith("2     reptile"));
}

// The issue's own question: how much each feature pushed this animal to
// mammal. The table names the features as the model's config does.
TEST_F(SeqclientTest, ExplainPrintsEachFeaturesPushAsAColumn) {
  const auto result =
      Seqclient("explain --model species --output logits --target_class mammal 4,0,1");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::vector<std::string> lines = absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << result.output;
  EXPECT_EQ(lines[0],
            "species version 1: integrated_gradients (gausslegendre, 50 steps) of logits, "
            "baseline 0,0,0");
  EXPECT_THAT(lines[1], ::testing::MatchesRegex("row +class +score +limbs +lays_eggs +has_hair "
                                                "+delta"));
  EXPECT_THAT(lines[2], ::testing::StartsWith("0    mammal"));
}

TEST_F(SeqclientTest, ExplainCsvAndJsonCarryTheSameNumbers) {
  const auto csv = Seqclient(
      "explain --model species --method input_x_gradient --output logits --format csv 4,0,1");
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  std::vector<std::string> lines = absl::StrSplit(csv.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "row,target_index,target_label,score,limbs,lays_eggs,has_hair");
  std::vector<std::string> fields = absl::StrSplit(lines[1], ',');
  ASSERT_EQ(fields.size(), 7u);
  EXPECT_EQ(fields[2], "mammal");
  EXPECT_EQ(fields[5], "0");  // lays_eggs is 0: no push either way

  const auto json = Seqclient(
      "explain --model species --method input_x_gradient --output logits --format json 4,0,1");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.output, &parsed).ok())
      << json.output;
  const auto& row = parsed.fields().at("results").list_value().values(0).struct_value();
  const auto& attributions = row.fields().at("attributions").list_value();
  ASSERT_EQ(attributions.values_size(), 3);
  EXPECT_DOUBLE_EQ(attributions.values(0).number_value(), std::stod(fields[4]));
  EXPECT_DOUBLE_EQ(attributions.values(2).number_value(), std::stod(fields[6]));
}

TEST_F(SeqclientTest, ExplainRefusesBadFlagsAndReportsTheServersReason) {
  auto result = Seqclient("explain --model species --method lime 4,0,1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("unknown --method 'lime'"));
  result = Seqclient("explain --model species --baseline 1,x,2 4,0,1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("--baseline takes comma-separated numbers"));
  result = Seqclient("explain --model species --target_class fish 4,0,1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("INVALID_ARGUMENT: model 'species' has no class "
                                       "labelled 'fish'"));
  result = Seqclient("explain 4,0,1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("explain needs --model"));
}

TEST_F(SeqclientTest, ClassifyCsvHasAHeaderAndOneLinePerRow) {
  const std::string path = ::testing::TempDir() + "/animals.csv";
  std::ofstream(path) << "# limbs,eggs,hair\n4,0,1\n2,1,0\n\n4,1,0\n";
  const auto result =
      Seqclient("classify --model species --format csv --output logits --input " + path);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::vector<std::string> lines = absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << result.output;
  EXPECT_EQ(lines[0], "row,predicted_index,predicted_label,bird,mammal,reptile");
  std::vector<std::string> fields = absl::StrSplit(lines[1], ',');
  ASSERT_EQ(fields.size(), 6u);
  EXPECT_EQ(fields[2], "mammal");
  // Logits: the mammal score is the largest of the three.
  EXPECT_GT(std::stof(fields[4]), std::stof(fields[3]));
  EXPECT_GT(std::stof(fields[4]), std::stof(fields[5]));
}

TEST_F(SeqclientTest, ClassifyGivesLogSoftmaxWhenAsked) {
  const auto result =
      Seqclient("classify --model species --format csv --output log_softmax 4,0,1");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::vector<std::string> lines = absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << result.output;
  std::vector<std::string> fields = absl::StrSplit(lines[1], ',');
  ASSERT_EQ(fields.size(), 6u);
  EXPECT_EQ(fields[2], "mammal");
  // Log-probabilities: never positive, and their exps sum to one.
  double sum = 0.0;
  for (int i = 3; i < 6; ++i) {
    EXPECT_LE(std::stof(fields[i]), 0.0f);
    sum += std::exp(std::stod(fields[i]));
  }
  EXPECT_NEAR(sum, 1.0, 1e-4);
  const auto refused = Seqclient("classify --model mammal --output log_softmax 4,0,1");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.output, HasSubstr("log_softmax over it is always 0"));
}

TEST_F(SeqclientTest, ClassifyJsonParses) {
  const auto result = Seqclient("classify --model mammal --format json --top_k 1 4,0,1 2,1,0");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  google::protobuf::Struct json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(result.output, &json).ok())
      << result.output;
  EXPECT_EQ(json.fields().at("model").string_value(), "mammal");
  const auto& rows = json.fields().at("results").list_value();
  ASSERT_EQ(rows.values_size(), 2);
  EXPECT_EQ(rows.values(0).struct_value().fields().at("predicted_label").string_value(),
            "mammal");
  EXPECT_EQ(rows.values(1).struct_value().fields().at("predicted_label").string_value(),
            "not mammal");
  const double p = rows.values(0).struct_value().fields().at("scores").list_value()
                       .values(0).number_value();
  EXPECT_GT(p, 0.5);
  EXPECT_LE(p, 1.0);
}

TEST_F(SeqclientTest, ClassifyReadsStdin) {
  const auto result = RunCommand(absl::StrCat("printf '4,0,1\\n' | ", SEQCLIENT_PATH,
                                              " --target=", server_->target(),
                                              " classify --model species --format csv"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("\n0,1,mammal,"));
}

TEST_F(SeqclientTest, BadRowsNameTheRowAndColumn) {
  auto result = Seqclient("classify --model species 4,0,1 2,eggs,0");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("row 2 column 2: 'eggs' is not a finite number"));
  const std::string path = ::testing::TempDir() + "/bad.csv";
  std::ofstream(path) << "4,0,1\n\n2,1\n";
  result = Seqclient("classify --model species --input " + path);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr(path + " line 3 has 2 values, expected 3"));
  result = Seqclient("classify --model species 4,0,1,7");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(result.output, HasSubstr("takes 3 features per row"));
}

TEST_F(SeqclientTest, UnknownOutputFormatAndCommandAreRefused) {
  auto result = Seqclient("classify --model species --output probits 4,0,1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("unknown --output 'probits'"));
  result = Seqclient("classify --model species --format xml 4,0,1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("unknown --format 'xml'"));
  result = Seqclient("classify 4,0,1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("classify needs --model"));
  result = Seqclient("predict");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("unknown command 'predict'"));
}

TEST_F(SeqclientTest, UnknownModelExitsNonZero) {
  const auto result = Seqclient("classify --model unicorn 1,2,3");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(result.output, HasSubstr("'unicorn' is not served"));
}

TEST_F(SeqclientTest, ModelsAndMetadata) {
  auto result = Seqclient("models");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("mammal                   1        available"));
  EXPECT_THAT(result.output, HasSubstr("species                  1        available"));
  result = Seqclient("metadata species");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("labels:         bird, mammal, reptile"));
  EXPECT_THAT(result.output, HasSubstr("input width:    3"));
  EXPECT_THAT(result.output, HasSubstr("Linear(3, 16) -> ReLU -> Linear(16, 3)"));
  EXPECT_THAT(result.output, HasSubstr("feature names:  limbs, lays_eggs, has_hair"));
  // The server's flags at their defaults: the samples' configs set none.
  EXPECT_THAT(result.output,
              HasSubstr("limits:         4096 rows, 268435456 bytes of activations per request"));
  EXPECT_THAT(result.output, HasSubstr("batching:       256 rows per pass, 0 us queue delay, "
                                       "65536 rows queued at most"));
}

// --max_model_bytes reaches the loaders: the samples are 991 bytes (species,
// ONNX) and 1154 bytes (mammal, text); with a limit between them only
// species loads and mammal reports why.
TEST(SeqserveMaxModelBytes, AModelOverTheLimitFailsToLoadAndSaysWhy) {
  ServerProcess server(SEQSERVE_PATH, {"--model_repository=" SEQSERVE_MODELS_DIR,
                                       "--poll_seconds=0", "--max_model_bytes=1024"});
  ASSERT_TRUE(server.ready()) << server.output();
  const auto result =
      RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(), " models"));
  EXPECT_THAT(result.output, HasSubstr("species                  1        available"));
  EXPECT_THAT(result.output, HasSubstr("mammal                   1        failed"));
  EXPECT_THAT(result.output, HasSubstr("model.textproto: 1154 bytes is over the limit of 1024 "
                                       "bytes"));
}

TEST_F(SeqclientTest, HealthExitsZeroWhenServing) {
  const auto result = Seqclient("health");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "SERVING\n");
}

TEST_F(SeqclientTest, BenchReportsEverySteps) {
  const auto result =
      Seqclient("bench --model species --concurrency 1,2 --requests 200 --csv");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("rpc,concurrency,requests,errors,"));
  EXPECT_THAT(result.output, HasSubstr("\nclassify,1,200,0,"));
  EXPECT_THAT(result.output, HasSubstr("\nclassify,2,200,0,"));
  const auto health = Seqclient("bench --rpc health --concurrency 4 --requests 100 --csv");
  ASSERT_EQ(health.exit_code, 0) << health.output;
  EXPECT_THAT(health.output, HasSubstr("\nhealth,4,100,0,"));
}

// The Open Inference Protocol on the same port: the same scores as v1,
// Triton's classification strings, and a bench of ModelInfer calls.
TEST_F(SeqclientTest, ProtocolV2ClassifiesAndBenches) {
  auto v1 = Seqclient("classify --model species --format csv --output logits 4,0,1");
  auto v2 = Seqclient("classify --protocol v2 --model species --format csv --output logits 4,0,1");
  ASSERT_EQ(v2.exit_code, 0) << v2.output;
  // One header over rows of as many columns, the scores named by label.
  EXPECT_THAT(v2.output, ::testing::StartsWith("row,output,bird,mammal,reptile\n0,logits,"));
  EXPECT_EQ(std::count(v2.output.begin(), v2.output.end(), ','), 2 * 4) << v2.output;
  // v1's CSV row holds the same logits after its index and label columns.
  const std::string logits = v2.output.substr(v2.output.find("0,logits,") + 9);
  EXPECT_THAT(v1.output, HasSubstr(logits.substr(0, logits.find('\n'))));
  const auto classes = Seqclient("classify --protocol v2 --model species --top_k 1 4,0,1");
  ASSERT_EQ(classes.exit_code, 0) << classes.output;
  EXPECT_THAT(classes.output, HasSubstr(":1:mammal"));
  const auto two = Seqclient("classify --protocol v2 --model species --top_k 2 --format csv 4,0,1");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_THAT(two.output, ::testing::StartsWith("row,output,top_1,top_2\n0,softmax,1:1:mammal,"));
  // A flag the protocol cannot carry is refused, not dropped.
  const auto threshold =
      Seqclient("classify --protocol v2 --model mammal --threshold 0.9 4,0,1");
  EXPECT_EQ(threshold.exit_code, 1);
  EXPECT_THAT(threshold.output, HasSubstr("--threshold cannot be sent over --protocol v2"));
  const auto bench =
      Seqclient("bench --protocol v2 --model species --concurrency 2 --requests 100 --csv");
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_THAT(bench.output, HasSubstr("\nv2_infer,2,100,0,"));
  const auto wrong = Seqclient("classify --protocol v3 --model species 4,0,1");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.output, HasSubstr("unknown --protocol 'v3'"));
}

// GetModelMetadata calls the server has answered, from its metrics.
int MetadataCalls(const ServerProcess& server) {
  const testing::HttpReply metrics = testing::HttpCall(server.http_port(), "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200) << metrics.body;
  int calls = 0;
  for (absl::string_view line : absl::StrSplit(metrics.body, '\n')) {
    if (!absl::StartsWith(line, "seqserve_requests_total{") ||
        !absl::StrContains(line, "method=\"GetModelMetadata\"")) {
      continue;
    }
    calls += std::stoi(std::string(line.substr(line.rfind(' ') + 1)));
  }
  return calls;
}

// classify asks for the model's metadata only when what it reads or prints
// needs it: a header row's names, the labels of a table's score columns.
// --version_label asks for a version by its label, over v1 and v2; with
// --version too it is refused.
TEST(Seqclient, AVersionLabelNamesTheVersionOverBothProtocols) {
  testing::TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.AddReferenceVersion("species", 2, "species");
  repository.WriteFile("species/config.textproto",
                       "version_policy { all {} }\nversion_labels { key: 'stable' value: 1 }\n");
  ServerProcess server(SEQSERVE_PATH, {"--model_repository=" + repository.root(),
                                       "--poll_seconds=0"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto seqclient = [&](const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(), " ",
                                   arguments, " 2>&1"));
  };
  auto v1 = seqclient("classify --model species --version_label stable --format json 4,0,1");
  ASSERT_EQ(v1.exit_code, 0) << v1.output;
  EXPECT_THAT(v1.output, HasSubstr("\"version\":\"1\""));
  auto latest = seqclient("classify --model species --format json 4,0,1");
  EXPECT_THAT(latest.output, HasSubstr("\"version\":\"2\""));
  auto v2 = seqclient(
      "classify --protocol v2 --model species --version_label stable --format json 4,0,1");
  ASSERT_EQ(v2.exit_code, 0) << v2.output;
  EXPECT_THAT(v2.output, HasSubstr("\"model_version\":\"1\""));
  auto unknown = seqclient("classify --model species --version_label beta 4,0,1");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("has no version label 'beta' (labels: stable)"));
  auto both = seqclient("classify --model species --version 1 --version_label stable 4,0,1");
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_THAT(both.output, HasSubstr("give --version or --version_label, not both"));
}

// JSON Lines rows by name with a category's text and a null reach a
// preprocessed model (the species sample behind limbs with a default and a
// one-hot coat) and answer species' rows, over v1 and v2.
TEST(Seqclient, ClassifySendsCategoriesAndMissingValuesByName) {
  testing::TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.WriteReferenceConfig("species", "species");
  repository.AddReferenceVersion("pets", 1, "species");
  repository.WriteReferenceConfig(
      "pets", "species",
      "feature_names: ['limbs', 'coat']\n"
      "preprocessing { feature: 'limbs' missing_value: 4 }\n"
      "preprocessing { feature: 'coat' one_hot { categories: ['feathers', 'hair'] } }\n");
  ServerProcess server(SEQSERVE_PATH, {"--model_repository=" + repository.root(),
                                       "--poll_seconds=0"});
  ASSERT_TRUE(server.ready()) << server.output();
  const std::string rows = ::testing::TempDir() + "/pets.jsonl";
  std::ofstream(rows) << "{\"coat\": \"hair\", \"limbs\": null}\n"
                         "{\"limbs\": 2, \"coat\": \"feathers\"}\n";
  auto seqclient = [&](const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(), " ",
                                   arguments, " 2>&1"));
  };
  auto pets = seqclient("classify --model pets --format json --input " + rows);
  ASSERT_EQ(pets.exit_code, 0) << pets.output;
  auto species = seqclient("classify --model species --format json 4,0,1 2,1,0");
  ASSERT_EQ(species.exit_code, 0) << species.output;
  auto results = [](const std::string& output) {
    return nlohmann::json::parse(output, nullptr, false)["results"].dump();
  };
  EXPECT_EQ(results(pets.output), results(species.output)) << pets.output << species.output;
  EXPECT_THAT(pets.output, HasSubstr("\"predicted_label\":\"mammal\""));

  // Over v2 the features go as inputs by name, coat as BYTES.
  auto v2_outputs = [](const std::string& output) {
    return nlohmann::json::parse(output, nullptr, false)["outputs"].dump();
  };
  auto pets_v2 = seqclient("classify --protocol v2 --model pets --format json --input " + rows);
  ASSERT_EQ(pets_v2.exit_code, 0) << pets_v2.output;
  auto species_v2 = seqclient("classify --protocol v2 --model species --format json 4,0,1 2,1,0");
  ASSERT_EQ(species_v2.exit_code, 0) << species_v2.output;
  EXPECT_EQ(v2_outputs(pets_v2.output), v2_outputs(species_v2.output))
      << pets_v2.output << species_v2.output;
  EXPECT_THAT(pets_v2.output, HasSubstr("\"fp32_contents\""));

  // The client library's raw form (what seqclient bench sends) answers the
  // bits of its typed form.
  auto client = Client::Create(server.target(), ClientOptions{});
  ASSERT_TRUE(client.ok()) << client.status();
  auto metadata = (*client)->ModelMetadataV2("pets", 0);
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  v1::ClassifyRequest request;
  request.set_model("pets");
  for (float value : {std::nanf(""), 0.0f, 2.0f, 0.0f}) request.add_features(value);
  for (const char* text : {"", "hair", "", "feathers"}) request.add_categories(text);
  request.set_rows(2);
  auto typed = (*client)->Infer(ToModelInferRequest(request, *metadata, /*raw=*/false));
  auto raw = (*client)->Infer(ToModelInferRequest(request, *metadata, /*raw=*/true));
  ASSERT_TRUE(typed.ok()) << typed.status();
  ASSERT_TRUE(raw.ok()) << raw.status();
  ASSERT_EQ(typed->outputs_size(), 1);
  ASSERT_EQ(raw->raw_output_contents_size(), 1);
  const auto& scores = typed->outputs(0).contents().fp32_contents();
  ASSERT_EQ(scores.size(), 6);
  EXPECT_EQ(raw->raw_output_contents(0),
            std::string(reinterpret_cast<const char*>(scores.data()), 6 * sizeof(float)));
}

// --request_id sends the id a traffic split routes by: over v1 and v2 an id
// reaches the same version every time, and ids spread over both.
TEST(Seqclient, ARequestIdReachesTheSameVersionOverBothProtocols) {
  testing::TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.AddReferenceVersion("species", 2, "species");
  repository.WriteFile("species/config.textproto",
                       "version_policy { all {} }\n"
                       "traffic { version: 1 percent: 50 }\ntraffic { version: 2 percent: 50 }\n");
  ServerProcess server(SEQSERVE_PATH, {"--model_repository=" + repository.root(),
                                       "--poll_seconds=0"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto version_of = [&](const std::string& protocol, const std::string& id) {
    const auto result = RunCommand(absl::StrCat(
        SEQCLIENT_PATH, " --target=", server.target(), " classify --model species --protocol ",
        protocol, " --format json --request_id ", id, " 4,0,1 2>&1"));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    if (absl::StrContains(result.output, "\"version\":\"1\"") ||
        absl::StrContains(result.output, "\"model_version\":\"1\"")) {
      return 1;
    }
    if (absl::StrContains(result.output, "\"version\":\"2\"") ||
        absl::StrContains(result.output, "\"model_version\":\"2\"")) {
      return 2;
    }
    ADD_FAILURE() << "no version in " << result.output;
    return 0;
  };
  std::set<int> seen;
  for (int i = 0; i < 8; ++i) {
    const std::string id = absl::StrCat("order-", i);
    const int version = version_of("v1", id);
    EXPECT_EQ(version_of("v1", id), version) << id;
    EXPECT_EQ(version_of("v2", id), version) << id;
    seen.insert(version);
  }
  EXPECT_EQ(seen, (std::set<int>{1, 2}));
  const auto refused = RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(),
                                               " classify --model species --request_id "
                                               "$(printf 'x%.0s' $(seq 200)) 4,0,1 2>&1"));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("INVALID_ARGUMENT"));
}

// index, load and unload against a server under explicit model control,
// run as the seqserve program with --load_model and --admin_tokens_file.
TEST(Seqclient, IndexLoadAndUnloadAModelWithAnAdminToken) {
  testing::TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.AddReferenceVersion("mammal", 1, "mammal");
  repository.WriteFile("admins.txt", "ops:admin-secret-token-1\n");
  const std::string config = repository.root() + "/labels.textproto";
  repository.WriteFile("labels.textproto",
                       "labels: ['no', 'yes']\nversion_labels { key: 'stable' value: 1 }\n");
  ServerProcess server(SEQSERVE_PATH, {"--model_repository=" + repository.root(),
                                       "--model_control_mode=explicit", "--load_model=species",
                                       "--admin_tokens_file=" + repository.root() +
                                           "/admins.txt"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto seqclient = [&](const std::string& arguments, const std::string& token = "") {
    return RunCommand(absl::StrCat(token.empty() ? "" : "SEQSERVE_TOKEN=" + token + " ",
                                   SEQCLIENT_PATH, " --target=", server.target(), " ",
                                   arguments, " 2>&1"));
  };
  auto index = seqclient("index");
  ASSERT_EQ(index.exit_code, 0) << index.output;
  EXPECT_EQ(index.output,
            "model                    version  state      reason\n"
            "mammal                   -        unloaded\n"
            "species                  1        available\n");
  // Without an admin's token the load is refused; with it, it loads.
  auto refused = seqclient("load mammal");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("UNAUTHENTICATED"));
  auto loaded = seqclient("load mammal --config " + config, "admin-secret-token-1");
  ASSERT_EQ(loaded.exit_code, 0) << loaded.output;
  EXPECT_EQ(loaded.output, "loaded mammal\n  1 available (stable)\n");
  auto classified = seqclient("classify --model mammal --version_label stable --format csv 4,0,1",
                              "admin-secret-token-1");
  ASSERT_EQ(classified.exit_code, 0) << classified.output;
  EXPECT_THAT(classified.output, HasSubstr(",yes,"));
  EXPECT_THAT(seqclient("index --ready --format csv").output,
              HasSubstr("model,version,state,reason\nmammal,1,available,\n"));
  auto bad_config = seqclient("load mammal --config " + repository.root() + "/admins.txt",
                              "admin-secret-token-1");
  EXPECT_EQ(bad_config.exit_code, 1);
  EXPECT_THAT(bad_config.output, HasSubstr("is not a seqserve.v1.ModelConfig in text format"));
  auto unloaded = seqclient("unload mammal", "admin-secret-token-1");
  ASSERT_EQ(unloaded.exit_code, 0) << unloaded.output;
  EXPECT_EQ(unloaded.output, "unloaded mammal\n");
  auto again = seqclient("unload mammal", "admin-secret-token-1");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.output, HasSubstr("NOT_FOUND: model 'mammal' is not loaded"));
}

TEST(Seqclient, ClassifyAsksForMetadataOnlyWhenItNeedsIt) {
  ServerProcess server(SEQSERVE_PATH,
                       {"--model_repository=" SEQSERVE_MODELS_DIR, "--poll_seconds=0"});
  ASSERT_TRUE(server.ready()) << server.output();
  auto seqclient = [&](const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(), " ",
                                   arguments, " 2>&1"));
  };
  auto json = seqclient("classify --model species --format json 4,0,1 2,1,0");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_THAT(json.output, HasSubstr("\"predicted_label\":\"mammal\""));
  EXPECT_EQ(MetadataCalls(server), 0);
  auto unknown = seqclient("classify --model unicorn 4,0,1");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(MetadataCalls(server), 0);
  auto v2 = seqclient("classify --protocol v2 --model species 4,0,1");
  ASSERT_EQ(v2.exit_code, 0) << v2.output;
  EXPECT_EQ(MetadataCalls(server), 0);

  // The table's score columns are named by the labels: one call.
  auto table = seqclient("classify --model species 4,0,1");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("bird"));
  EXPECT_EQ(MetadataCalls(server), 1);
  // A header row is matched to the feature names: one call, and pandas'
  // index column is skipped.
  const std::string path = ::testing::TempDir() + "/named_rows.csv";
  std::ofstream(path) << ",has_hair,limbs,lays_eggs\n0,1,4,0\n";
  auto named = seqclient("classify --model species --format json --input " + path);
  ASSERT_EQ(named.exit_code, 0) << named.output;
  EXPECT_THAT(named.output, HasSubstr("\"predicted_label\":\"mammal\""));
  EXPECT_EQ(MetadataCalls(server), 2);
}

TEST(Seqclient, AnUnreachableServerExitsNonZeroWithAClearMessage) {
  const auto result = RunCommand(absl::StrCat(SEQCLIENT_PATH,
                                              " --target=127.0.0.1:1 --deadline_ms=3000 health"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("cannot reach 127.0.0.1:1"));
}

TEST(Seqserve, SigtermDrainsAndExitsZero) {
  ServerProcess server(SEQSERVE_PATH,
                       {"--model_repository=" SEQSERVE_MODELS_DIR, "--poll_seconds=0"});
  ASSERT_TRUE(server.ready()) << server.output();
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.output();
  EXPECT_THAT(server.output(), HasSubstr("draining"));
  EXPECT_THAT(server.output(), HasSubstr("stopped"));
}

}  // namespace
}  // namespace seqserve
