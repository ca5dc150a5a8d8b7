// A binary model (one sigmoid output, labels "stays" and "churns") is one
// two-class classifier over every interface: the same rows asked through
// seqserve.v1 over gRPC, REST, the Open Inference Protocol over HTTP and
// gRPC, TF Serving's classify, seqclient and seqmodel answer the same
// class, index and score, and the same top-k, with the threshold deciding
// and logits predicting what the sigmoid predicts, at the boundary too.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/seqserve_client.h"
#include "nlohmann/json.hpp"
#include "tests/support/http_client.h"
#include "tests/support/server_process.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using testing::CommandResult;
using testing::RunCommand;

// logit = first feature - second feature, exactly: rows choose their logit.
constexpr char kModel[] =
    "input_width: 2\n"
    "layers { linear { in_features: 2 out_features: 1 weight: [1, -1] bias: [0] } }\n"
    "head: HEAD_SIGMOID\n";
constexpr char kConfig[] =
    "labels: [\"stays\", \"churns\"]\n"
    "feature_names: [\"usage_drop\", \"tenure\"]\n";

const std::vector<std::string> kLabels = {"stays", "churns"};

// Logits 2, -1, 0 (probability 0.5: not above the threshold), 1e-9 (whose
// probability rounds to 0.5), 1e-5 (just above) and 4.
const std::vector<float> kFeatures = {3, 1, 0, 1, 0, 0, 1e-9f, 0, 1e-5f, 0, 4, 0};
constexpr size_t kRows = 6;
const char kRowsText[] = "3,1 0,1 0,0 1e-09,0 1e-05,0 4,0";
// The classes: at the default threshold 0.5, and at 0.9.
const std::vector<uint32_t> kClassesAtHalf = {1, 0, 0, 0, 1, 1};
const std::vector<uint32_t> kClassesAt09 = {0, 0, 0, 0, 0, 1};

struct Scored {
  uint32_t index = 0;
  std::string label;
  float score = 0;
  bool operator==(const Scored& other) const {
    return index == other.index && label == other.label &&
           std::memcmp(&score, &other.score, sizeof(float)) == 0;
  }
};

std::ostream& operator<<(std::ostream& out, const Scored& s) {
  return out << s.index << ":" << s.label << ":" << s.score;
}

// What an interface says of one row: the predicted class and the top-k.
// Protocols without a predicted class (the Open Inference Protocol's
// classification) predict their first class.
struct RowAnswer {
  Scored predicted;
  std::vector<Scored> top;
};

// How a row is asked: output "sigmoid" or "logits", k best classes, a
// threshold (0: the model's).
struct Question {
  std::string model = "churn";
  std::string output = "sigmoid";
  uint32_t top_k = 2;
  float threshold = 0;
};

std::string Describe(const Question& q) {
  return absl::StrCat(q.model, " ", q.output, " top_k ", q.top_k, " threshold ", q.threshold);
}

float JsonFloat(const nlohmann::json& value) { return static_cast<float>(value.get<double>()); }

// "score:index:label" as the classification extension writes it.
Scored ParseClassification(const std::string& text) {
  const size_t first = text.find(':');
  const size_t second = text.find(':', first + 1);
  Scored s;
  s.score = std::stof(text.substr(0, first));
  s.index = static_cast<uint32_t>(std::stoul(text.substr(first + 1, second - first - 1)));
  s.label = second == std::string::npos ? "" : text.substr(second + 1);
  return s;
}

std::vector<Scored> JsonScored(const nlohmann::json& list) {
  std::vector<Scored> out;
  for (const auto& e : list) {
    out.push_back({e.at("index").get<uint32_t>(), e.at("label").get<std::string>(),
                   JsonFloat(e.at("score"))});
  }
  return out;
}

class BinaryModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repository_ = new testing::TestRepository();
    for (const char* model : {"churn", "churn_strict"}) {
      repository_->WriteFile(absl::StrCat(model, "/1/model.textproto"), kModel);
    }
    repository_->WriteFile("churn/config.textproto", kConfig);
    repository_->WriteFile("churn_strict/config.textproto",
                           absl::StrCat(kConfig, "threshold: 0.9\n"));
    server_ = new testing::ServerProcess(
        SEQSERVE_PATH, {"--model_repository=" + repository_->root(), "--poll_seconds=0"});
    rows_file_ = ::testing::TempDir() + "/binary_model_rows.csv";
    std::ofstream(rows_file_) << "3,1\n0,1\n0,0\n1e-09,0\n1e-05,0\n4,0\n";
  }
  static void TearDownTestSuite() {
    delete server_;
    delete repository_;
  }
  void SetUp() override {
    ASSERT_TRUE(server_->ready()) << server_->output();
    auto client = Client::Create(server_->target());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  std::vector<RowAnswer> AskV1(const Question& q) {
    ClassifyOptions options;
    options.output = q.output == "logits" ? v1::OUTPUT_MODE_LOGITS : v1::OUTPUT_MODE_SIGMOID;
    options.top_k = q.top_k;
    options.threshold = q.threshold;
    auto answer = client_->Classify(q.model, kFeatures, kRows, options);
    EXPECT_TRUE(answer.ok()) << answer.status();
    std::vector<RowAnswer> rows;
    if (!answer.ok()) return rows;
    for (const RowPrediction& row : answer->rows) {
      EXPECT_EQ(row.scores.size(), 1u);  // the raw output stays one number
      RowAnswer a{{row.predicted_index, row.predicted_label, row.score}, {}};
      for (const ScoredLabel& t : row.top_k) a.top.push_back({t.index, t.label, t.score});
      rows.push_back(a);
    }
    return rows;
  }

  // The raw scores of a v1 answer: p under sigmoid, z under logits.
  std::vector<float> RawScores(const Question& q) {
    ClassifyOptions options;
    options.output = q.output == "logits" ? v1::OUTPUT_MODE_LOGITS : v1::OUTPUT_MODE_SIGMOID;
    auto answer = client_->Classify(q.model, kFeatures, kRows, options);
    EXPECT_TRUE(answer.ok()) << answer.status();
    std::vector<float> scores;
    if (answer.ok()) {
      for (const RowPrediction& row : answer->rows) scores.push_back(row.scores.at(0));
    }
    return scores;
  }

  static std::vector<RowAnswer> FromJsonRows(const nlohmann::json& rows) {
    std::vector<RowAnswer> out;
    for (const auto& row : rows) {
      EXPECT_EQ(row.at("scores").size(), 1u);
      out.push_back({{row.at("predicted_index").get<uint32_t>(),
                      row.at("predicted_label").get<std::string>(), JsonFloat(row.at("score"))},
                     JsonScored(row.at("top_k"))});
    }
    return out;
  }

  std::vector<RowAnswer> AskRest(const Question& q) {
    nlohmann::json body = {{"features", kFeatures},
                           {"rows", kRows},
                           {"output", q.output == "logits" ? "OUTPUT_MODE_LOGITS"
                                                           : "OUTPUT_MODE_SIGMOID"},
                           {"top_k", q.top_k}};
    if (q.threshold != 0) body["threshold"] = q.threshold;
    const auto reply = testing::HttpCall(server_->http_port(), "POST",
                                         "/v1/models/" + q.model + ":classify", body.dump());
    EXPECT_EQ(reply.status, 200) << reply.body;
    if (reply.status != 200) return {};
    return FromJsonRows(nlohmann::json::parse(reply.body).at("results"));
  }

  // The Open Inference Protocol has no threshold of its own: the model's.
  static std::vector<RowAnswer> FromClassifications(const std::vector<std::string>& texts,
                                                    size_t k) {
    std::vector<RowAnswer> out;
    EXPECT_EQ(texts.size(), kRows * k);
    for (size_t r = 0; r * k < texts.size(); ++r) {
      RowAnswer a;
      for (size_t i = 0; i < k; ++i) a.top.push_back(ParseClassification(texts[r * k + i]));
      a.predicted = a.top.front();
      out.push_back(a);
    }
    return out;
  }

  std::vector<RowAnswer> AskV2Http(const Question& q) {
    nlohmann::json data = nlohmann::json::array();
    for (size_t r = 0; r < kRows; ++r) data.push_back({kFeatures[2 * r], kFeatures[2 * r + 1]});
    const nlohmann::json body = {
        {"inputs", {{{"name", "input"}, {"shape", {kRows, 2}}, {"datatype", "FP32"},
                     {"data", data}}}},
        {"outputs", {{{"name", q.output}, {"parameters", {{"classification", q.top_k}}}}}}};
    const auto reply = testing::HttpCall(server_->http_port(), "POST",
                                         "/v2/models/" + q.model + "/infer", body.dump());
    EXPECT_EQ(reply.status, 200) << reply.body;
    if (reply.status != 200) return {};
    const auto output = nlohmann::json::parse(reply.body).at("outputs").at(0);
    EXPECT_EQ(output.at("datatype"), "BYTES");
    EXPECT_EQ(output.at("shape"), nlohmann::json({kRows, q.top_k}));
    return FromClassifications(output.at("data").get<std::vector<std::string>>(), q.top_k);
  }

  std::vector<RowAnswer> AskV2Grpc(const Question& q) {
    inference::ModelInferRequest request;
    request.set_model_name(q.model);
    auto* input = request.add_inputs();
    input->set_name("input");
    input->set_datatype("FP32");
    input->add_shape(kRows);
    input->add_shape(2);
    input->mutable_contents()->mutable_fp32_contents()->Add(kFeatures.begin(), kFeatures.end());
    auto* output = request.add_outputs();
    output->set_name(q.output);
    (*output->mutable_parameters())["classification"].set_int64_param(q.top_k);
    auto answer = client_->Infer(request);
    EXPECT_TRUE(answer.ok()) << answer.status();
    if (!answer.ok()) return {};
    const auto& bytes = answer->outputs(0).contents().bytes_contents();
    return FromClassifications(std::vector<std::string>(bytes.begin(), bytes.end()), q.top_k);
  }

  static std::string ToolOptions(const Question& q) {
    std::string options = absl::StrCat("--format json --top_k ", q.top_k, " --output ", q.output);
    if (q.threshold != 0) absl::StrAppend(&options, " --threshold ", q.threshold);
    return options;
  }

  static std::vector<RowAnswer> FromTool(const CommandResult& result) {
    EXPECT_EQ(result.exit_code, 0) << result.output;
    if (result.exit_code != 0) return {};
    return FromJsonRows(nlohmann::json::parse(result.output).at("results"));
  }

  std::vector<RowAnswer> AskSeqclient(const Question& q) {
    return FromTool(RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server_->target(),
                                            " classify --model ", q.model, " ", ToolOptions(q),
                                            " ", kRowsText)));
  }

  std::vector<RowAnswer> AskSeqmodel(const Question& q) {
    return FromTool(RunCommand(absl::StrCat(SEQMODEL_PATH, " run ", repository_->root(), "/",
                                            q.model, "/1/model.textproto ", ToolOptions(q),
                                            " --input ", rows_file_)));
  }

  // Every row's class as `classes` says, labelled, with its own score (1 - p
  // or p; -z or z), and the top-k: the predicted class, then the other.
  void ExpectTheRule(const Question& q, const std::vector<RowAnswer>& rows,
                     const std::vector<uint32_t>& classes) {
    const std::vector<float> raw = RawScores(q);
    ASSERT_EQ(rows.size(), kRows) << Describe(q);
    ASSERT_EQ(raw.size(), kRows);
    for (size_t r = 0; r < kRows; ++r) {
      const float z = kFeatures[2 * r] - kFeatures[2 * r + 1];
      const uint32_t predicted = classes[r];
      // The raw score is PyTorch's one number: the logit, or its sigmoid.
      if (q.output == "logits") {
        EXPECT_EQ(raw[r], z);
      } else {
        EXPECT_NEAR(raw[r], 1.0 / (1.0 + std::exp(-static_cast<double>(z))), 1e-7);
      }
      auto score_of = [&](uint32_t index) {
        if (q.output == "logits") return index == 1 ? z : 0.0f - z;  // +0, never -0
        return index == 1 ? raw[r] : 1.0f - raw[r];
      };
      const RowAnswer& a = rows[r];
      EXPECT_EQ(a.predicted, (Scored{predicted, kLabels[predicted], score_of(predicted)}))
          << Describe(q) << " row " << r;
      ASSERT_EQ(a.top.size(), q.top_k) << Describe(q) << " row " << r;
      EXPECT_EQ(a.top[0], a.predicted) << Describe(q) << " row " << r;
      if (q.top_k == 2) {
        EXPECT_EQ(a.top[1], (Scored{1 - predicted, kLabels[1 - predicted],
                                    score_of(1 - predicted)}))
            << Describe(q) << " row " << r;
      }
    }
  }

  // v1, REST, seqclient, seqmodel (which take a threshold per call), and
  // when `v2`, both transports of the Open Inference Protocol: the same
  // answers, bit for bit, each following the rule.
  void ExpectEveryInterface(const Question& q, const std::vector<uint32_t>& classes, bool v2) {
    const std::vector<RowAnswer> v1 = AskV1(q);
    ExpectTheRule(q, v1, classes);
    std::vector<std::pair<const char*, std::vector<RowAnswer>>> others = {
        {"REST", AskRest(q)}, {"seqclient", AskSeqclient(q)}, {"seqmodel", AskSeqmodel(q)}};
    if (v2) {
      others.push_back({"v2 HTTP", AskV2Http(q)});
      others.push_back({"v2 gRPC", AskV2Grpc(q)});
    }
    for (const auto& [name, rows] : others) {
      ASSERT_EQ(rows.size(), v1.size()) << name << " " << Describe(q);
      for (size_t r = 0; r < rows.size(); ++r) {
        EXPECT_EQ(rows[r].predicted, v1[r].predicted) << name << " " << Describe(q) << " row " << r;
        EXPECT_EQ(rows[r].top.size(), v1[r].top.size()) << name << " " << Describe(q);
        for (size_t i = 0; i < std::min(rows[r].top.size(), v1[r].top.size()); ++i) {
          EXPECT_EQ(rows[r].top[i], v1[r].top[i]) << name << " " << Describe(q) << " row " << r;
        }
      }
    }
  }

  static inline testing::TestRepository* repository_ = nullptr;
  static inline testing::ServerProcess* server_ = nullptr;
  static inline std::string rows_file_;
  std::unique_ptr<Client> client_;
};

TEST_F(BinaryModelTest, EveryInterfaceAnswersTheTwoClassesAlike) {
  for (const char* output : {"sigmoid", "logits"}) {
    for (uint32_t k : {1u, 2u}) {
      Question q;
      q.output = output;
      q.top_k = k;
      ExpectEveryInterface(q, kClassesAtHalf, /*v2=*/true);
    }
  }
}

// A threshold decides the class, under logits as under sigmoid: asked per
// call, or the model's own (which the Open Inference Protocol uses).
TEST_F(BinaryModelTest, TheThresholdDecidesTheClassEverywhere) {
  for (const char* output : {"sigmoid", "logits"}) {
    Question per_call;
    per_call.output = output;
    per_call.threshold = 0.9f;
    ExpectEveryInterface(per_call, kClassesAt09, /*v2=*/false);
    Question configured;
    configured.model = "churn_strict";
    configured.output = output;
    ExpectEveryInterface(configured, kClassesAt09, /*v2=*/true);
  }
}

// TF Serving's classify answers both classes in index order: the same
// probabilities as v1's top two.
TEST_F(BinaryModelTest, TfServingClassifyAnswersTheSameTwoClasses) {
  Question q;
  const std::vector<RowAnswer> v1 = AskV1(q);
  nlohmann::json examples = nlohmann::json::array();
  for (size_t r = 0; r < kRows; ++r) {
    examples.push_back({{"usage_drop", kFeatures[2 * r]}, {"tenure", kFeatures[2 * r + 1]}});
  }
  const auto reply = testing::HttpCall(server_->http_port(), "POST", "/v1/models/churn:classify",
                                       nlohmann::json({{"examples", examples}}).dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto result = nlohmann::json::parse(reply.body).at("result");
  ASSERT_EQ(result.size(), kRows);
  ASSERT_EQ(v1.size(), kRows);
  for (size_t r = 0; r < kRows; ++r) {
    ASSERT_EQ(result[r].size(), 2u);
    for (uint32_t index : {0u, 1u}) {
      const Scored& expected = v1[r].top[v1[r].top[0].index == index ? 0 : 1];
      EXPECT_EQ((Scored{index, result[r][index][0].get<std::string>(),
                        JsonFloat(result[r][index][1])}),
                expected)
          << "row " << r;
    }
  }
}

// More than two classes of a binary model is refused alike.
TEST_F(BinaryModelTest, TopKBeyondTwoIsRefused) {
  Question q;
  q.top_k = 3;
  ClassifyOptions options;
  options.top_k = 3;
  auto answer = client_->Classify("churn", kFeatures, kRows, options);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(answer.status().message()),
              ::testing::HasSubstr("top_k 3 is more than the 2 classes"));
  const CommandResult seqmodel = RunCommand(absl::StrCat(
      SEQMODEL_PATH, " run ", repository_->root(), "/churn/1/model.textproto ", ToolOptions(q),
      " --input ", rows_file_));
  EXPECT_EQ(seqmodel.exit_code, 1) << seqmodel.output;
  EXPECT_THAT(seqmodel.output, ::testing::HasSubstr("top_k 3 is more than the 2 classes"));
}

// A table and a CSV name the one score by the positive class's label, and
// the table's score column is the predicted class's.
TEST_F(BinaryModelTest, TablesAndCsvNameTheScoreByItsClass) {
  const CommandResult csv = RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=",
                                                    server_->target(),
                                                    " classify --model churn --format csv 0,1"));
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  EXPECT_THAT(csv.output, ::testing::StartsWith("row,predicted_index,predicted_label,churns\n"));
  EXPECT_THAT(csv.output, ::testing::HasSubstr("\n0,0,stays,"));
  const CommandResult table = RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=",
                                                      server_->target(),
                                                      " classify --model churn 0,1"));
  ASSERT_EQ(table.exit_code, 0) << table.output;
  // p = sigmoid(-1) = 0.268941; the row stays with 1 - p = 0.731059.
  EXPECT_THAT(table.output, ::testing::MatchesRegex(
                                "row +predicted +score +churns *\n0 +stays +0\\.731059 +0\\.268941 *\n"));
}

}  // namespace
}  // namespace seqserve
