// The Open Inference Protocol (KServe v2) against a real server on free
// ports, driven by stubs generated from proto/inference/v2 and by HTTP
// requests: every output equals seqserve.v1 Classify bit for bit, raw and
// typed contents agree, classification strings parse back to the top-k,
// and every refusal has its code and message.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "auth/token_authenticator.h"
#include "server/model_server.h"
#include "tests/server/held_slot.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::HttpCall;
using testing::HttpReply;
using testing::TestRepository;

const std::vector<float> kRows = {4, 0, 1, 2, 1, 0, 0, 1, 0};  // dog, eagle, snake

template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::vector<float> Floats(const std::string& raw) {
  std::vector<float> values(raw.size() / sizeof(float));
  std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  return values;
}

class OpenInferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"species", "mammal"}) {
      repository_.AddReferenceVersion(name, 1, name);
      repository_.WriteReferenceConfig(name, name);
    }
    repository_.WriteFile("broken/1/model.onnx", "not a model");
    ModelServer::Options options;
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    v2_ = inference::GRPCInferenceService::NewStub(channel);
    v1_ = v1::Classifier::NewStub(channel);
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return context;
  }

  grpc::Status Infer(const ModelInferRequest& request, ModelInferResponse* response) {
    return v2_->ModelInfer(Context().get(), request, response);
  }

  // The v1 answer to the same rows.
  v1::ClassifyResponse Classify(const std::string& model, const std::vector<float>& rows,
                                v1::OutputMode output, uint32_t top_k = 0) {
    v1::ClassifyRequest request;
    request.set_model(model);
    request.mutable_features()->Add(rows.begin(), rows.end());
    request.set_rows(static_cast<uint32_t>(rows.size() / 3));  // both take 3 features
    request.set_output(output);
    request.set_top_k(top_k);
    v1::ClassifyResponse response;
    const grpc::Status status = v1_->Classify(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::GetModelMetadataResponse V1Metadata(const std::string& model) {
    v1::GetModelMetadataRequest request;
    request.set_model(model);
    v1::GetModelMetadataResponse response;
    EXPECT_TRUE(v1_->GetModelMetadata(Context().get(), request, &response).ok());
    return response;
  }

  // A typed FP32 request for `rows` of `model`, input named as the model's.
  ModelInferRequest Request(const std::string& model, const std::vector<float>& rows) {
    ModelInferRequest request;
    request.set_model_name(model);
    auto* input = request.add_inputs();
    input->set_name(V1Metadata(model).input_tensor());
    input->set_datatype("FP32");
    input->add_shape(static_cast<int64_t>(rows.size() / 3));
    input->add_shape(3);
    input->mutable_contents()->mutable_fp32_contents()->Add(rows.begin(), rows.end());
    return request;
  }

  static std::vector<float> ScoresOf(const v1::ClassifyResponse& response) {
    std::vector<float> scores;
    for (const auto& row : response.results()) {
      scores.insert(scores.end(), row.scores().begin(), row.scores().end());
    }
    return scores;
  }

  TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> v2_;
  std::unique_ptr<v1::Classifier::Stub> v1_;
};

TEST_F(OpenInferenceTest, HealthAndServerMetadata) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(v2_->ServerLive(Context().get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(v2_->ServerReady(Context().get(), {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(v2_->ServerMetadata(Context().get(), {}, &metadata).ok());
  EXPECT_EQ(metadata.name(), "seqserve");
  EXPECT_FALSE(metadata.version().empty());
  EXPECT_THAT(metadata.extensions(),
              ElementsAre("classification", "binary_tensor_data", "model_repository"));

  auto model_ready = [&](const std::string& name, const std::string& version,
                         bool* answer) {
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    const grpc::Status status = v2_->ModelReady(Context().get(), request, &response);
    *answer = response.ready();
    return status.error_code();
  };
  bool answer = false;
  EXPECT_EQ(model_ready("species", "", &answer), grpc::StatusCode::OK);
  EXPECT_TRUE(answer);
  EXPECT_EQ(model_ready("species", "1", &answer), grpc::StatusCode::OK);
  EXPECT_TRUE(answer);
  EXPECT_EQ(model_ready("species", "2", &answer), grpc::StatusCode::OK);
  EXPECT_FALSE(answer);
  EXPECT_EQ(model_ready("nope", "", &answer), grpc::StatusCode::OK);
  EXPECT_FALSE(answer);
  EXPECT_EQ(model_ready("broken", "", &answer), grpc::StatusCode::OK);
  EXPECT_FALSE(answer);
  EXPECT_EQ(model_ready("species", "one", &answer), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(OpenInferenceTest, ModelMetadataNamesTheTensorsEachModelAllows) {
  for (const std::string model : {"species", "mammal"}) {
    const v1::GetModelMetadataResponse v1 = V1Metadata(model);
    inference::ModelMetadataRequest request;
    request.set_name(model);
    inference::ModelMetadataResponse metadata;
    ASSERT_TRUE(v2_->ModelMetadata(Context().get(), request, &metadata).ok());
    EXPECT_EQ(metadata.name(), model);
    EXPECT_THAT(metadata.versions(), ElementsAre("1"));
    EXPECT_EQ(metadata.platform(), "seqserve_sequential");
    ASSERT_EQ(metadata.inputs_size(), 1);
    EXPECT_EQ(metadata.inputs(0).name(), v1.input_tensor());
    EXPECT_FALSE(v1.input_tensor().empty());
    EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
    EXPECT_THAT(metadata.inputs(0).shape(), ElementsAre(-1, v1.input_width()));
    std::vector<std::string> names;
    for (const auto& output : metadata.outputs()) {
      names.push_back(output.name());
      EXPECT_EQ(output.datatype(), "FP32");
      EXPECT_THAT(output.shape(), ElementsAre(-1, v1.output_width()));
    }
    if (model == "species") {
      EXPECT_THAT(names, ElementsAre("logits", "sigmoid", "softmax", "log_softmax",
                                     v1.output_tensor()));
    } else {  // one output: no softmax over it
      EXPECT_THAT(names, ElementsAre("logits", "sigmoid", v1.output_tensor()));
    }
  }
  inference::ModelMetadataRequest request;
  inference::ModelMetadataResponse metadata;
  request.set_name("nope");
  EXPECT_EQ(v2_->ModelMetadata(Context().get(), request, &metadata).error_code(),
            grpc::StatusCode::NOT_FOUND);
  request.set_name("broken");
  const grpc::Status broken = v2_->ModelMetadata(Context().get(), request, &metadata);
  EXPECT_EQ(broken.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(broken.error_message(), HasSubstr("broken"));
}

TEST_F(OpenInferenceTest, EveryOutputEqualsClassifyBitForBit) {
  struct Case {
    const char* name;
    v1::OutputMode mode;
  };
  for (const std::string model : {"species", "mammal"}) {
    std::vector<Case> cases = {{"logits", v1::OUTPUT_MODE_LOGITS},
                               {"sigmoid", v1::OUTPUT_MODE_SIGMOID}};
    if (model == "species") {
      cases.push_back({"softmax", v1::OUTPUT_MODE_SOFTMAX});
      cases.push_back({"log_softmax", v1::OUTPUT_MODE_LOG_SOFTMAX});
    }
    // All outputs from one call, and each on its own.
    ModelInferRequest all = Request(model, kRows);
    for (const Case& c : cases) all.add_outputs()->set_name(c.name);
    ModelInferResponse answer;
    ASSERT_TRUE(Infer(all, &answer).ok());
    ASSERT_EQ(answer.outputs_size(), static_cast<int>(cases.size()));
    for (size_t i = 0; i < cases.size(); ++i) {
      SCOPED_TRACE(absl::StrCat(model, " ", cases[i].name));
      const auto& tensor = answer.outputs(static_cast<int>(i));
      EXPECT_EQ(tensor.name(), cases[i].name);
      EXPECT_EQ(tensor.datatype(), "FP32");
      const std::vector<float> want = ScoresOf(Classify(model, kRows, cases[i].mode));
      EXPECT_THAT(tensor.shape(), ElementsAre(3, want.size() / 3));
      const std::vector<float> got(tensor.contents().fp32_contents().begin(),
                                   tensor.contents().fp32_contents().end());
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
    }
    // None named: the default head under the graph's own output name.
    ModelInferResponse plain;
    ModelInferRequest request = Request(model, kRows);
    request.set_id("call-7");
    ASSERT_TRUE(Infer(request, &plain).ok());
    EXPECT_EQ(plain.model_name(), model);
    EXPECT_EQ(plain.model_version(), "1");
    EXPECT_EQ(plain.id(), "call-7");
    ASSERT_EQ(plain.outputs_size(), 1);
    EXPECT_EQ(plain.outputs(0).name(), V1Metadata(model).output_tensor());
    const std::vector<float> want = ScoresOf(Classify(model, kRows, v1::OUTPUT_MODE_DEFAULT));
    EXPECT_TRUE(std::equal(want.begin(), want.end(),
                           plain.outputs(0).contents().fp32_contents().begin(),
                           plain.outputs(0).contents().fp32_contents().end()));
  }
}

TEST_F(OpenInferenceTest, RawAndTypedContentsGiveIdenticalAnswers) {
  ModelInferRequest typed = Request("species", kRows);
  typed.add_outputs()->set_name("softmax");
  ModelInferResponse typed_answer;
  ASSERT_TRUE(Infer(typed, &typed_answer).ok());
  const std::vector<float> want(typed_answer.outputs(0).contents().fp32_contents().begin(),
                                typed_answer.outputs(0).contents().fp32_contents().end());

  // Raw in, raw out (as Triton's clients call), in each input type.
  const std::vector<uint16_t> half = {0x4400, 0, 0x3c00, 0x4000, 0x3c00, 0, 0, 0x3c00, 0};
  const std::vector<uint16_t> bfloat = {0x4080, 0, 0x3f80, 0x4000, 0x3f80, 0, 0, 0x3f80, 0};
  const std::vector<std::pair<std::string, std::string>> encodings = {
      {"FP32", RawBytes(kRows)},
      {"FP64", RawBytes(std::vector<double>(kRows.begin(), kRows.end()))},
      {"FP16", RawBytes(half)},
      {"BF16", RawBytes(bfloat)},
      {"INT32", RawBytes(std::vector<int32_t>(kRows.begin(), kRows.end()))},
      {"INT64", RawBytes(std::vector<int64_t>(kRows.begin(), kRows.end()))},
      {"UINT8", RawBytes(std::vector<uint8_t>(kRows.begin(), kRows.end()))},
      {"BOOL", RawBytes(std::vector<uint8_t>({1, 0, 1, 1, 1, 0, 0, 1, 0}))},
  };
  for (const auto& [datatype, bytes] : encodings) {
    SCOPED_TRACE(datatype);
    ModelInferRequest raw = typed;
    raw.mutable_inputs(0)->set_datatype(datatype);
    raw.mutable_inputs(0)->clear_contents();
    raw.add_raw_input_contents(bytes);
    ModelInferResponse answer;
    ASSERT_TRUE(Infer(raw, &answer).ok());
    ASSERT_EQ(answer.raw_output_contents_size(), 1);
    EXPECT_FALSE(answer.outputs(0).has_contents());
    if (datatype == "BOOL") continue;  // other features: checked to run only
    EXPECT_EQ(Floats(answer.raw_output_contents(0)), want);
  }
  // Typed contents of other types.
  ModelInferRequest ints = typed;
  ints.mutable_inputs(0)->set_datatype("INT32");
  ints.mutable_inputs(0)->clear_contents();
  ints.mutable_inputs(0)->mutable_contents()->mutable_int_contents()->Add(kRows.begin(),
                                                                          kRows.end());
  ModelInferResponse answer;
  ASSERT_TRUE(Infer(ints, &answer).ok());
  EXPECT_EQ(answer.raw_output_contents_size(), 0);
  EXPECT_TRUE(std::equal(want.begin(), want.end(),
                         answer.outputs(0).contents().fp32_contents().begin(),
                         answer.outputs(0).contents().fp32_contents().end()));
  // Typed in, raw out when asked.
  ModelInferRequest asked = typed;
  (*asked.mutable_parameters())["binary_data_output"].set_bool_param(true);
  ASSERT_TRUE(Infer(asked, &answer).ok());
  ASSERT_EQ(answer.raw_output_contents_size(), 1);
  EXPECT_EQ(Floats(answer.raw_output_contents(0)), want);
}

TEST_F(OpenInferenceTest, ClassificationStringsParseBackToTheTopK) {
  for (bool raw : {false, true}) {
    ModelInferRequest request = Request("species", kRows);
    auto* output = request.add_outputs();
    output->set_name("softmax");
    (*output->mutable_parameters())["classification"].set_int64_param(2);
    if (raw) (*request.mutable_parameters())["binary_data_output"].set_bool_param(true);
    ModelInferResponse answer;
    ASSERT_TRUE(Infer(request, &answer).ok());
    ASSERT_EQ(answer.outputs_size(), 1);
    EXPECT_EQ(answer.outputs(0).datatype(), "BYTES");
    EXPECT_THAT(answer.outputs(0).shape(), ElementsAre(3, 2));
    std::vector<std::string> strings;
    if (raw) {
      const std::string& bytes = answer.raw_output_contents(0);
      for (size_t at = 0; at < bytes.size();) {
        uint32_t size = 0;
        std::memcpy(&size, bytes.data() + at, sizeof(size));
        strings.push_back(bytes.substr(at + sizeof(size), size));
        at += sizeof(size) + size;
      }
    } else {
      strings.assign(answer.outputs(0).contents().bytes_contents().begin(),
                     answer.outputs(0).contents().bytes_contents().end());
    }
    const v1::ClassifyResponse want = Classify("species", kRows, v1::OUTPUT_MODE_SOFTMAX, 2);
    ASSERT_EQ(strings.size(), 6u);
    for (int row = 0; row < 3; ++row) {
      for (int k = 0; k < 2; ++k) {
        const std::vector<std::string> parts = absl::StrSplit(strings[row * 2 + k], ':');
        ASSERT_EQ(parts.size(), 3u) << strings[row * 2 + k];
        float score = 0;
        std::from_chars(parts[0].data(), parts[0].data() + parts[0].size(), score);
        const v1::ScoredClass& top = want.results(row).top_k(k);
        EXPECT_EQ(score, top.score());
        EXPECT_EQ(parts[1], absl::StrCat(top.index()));
        EXPECT_EQ(parts[2], top.label());
      }
    }
  }
}

TEST_F(OpenInferenceTest, EveryRefusalHasItsCodeAndMessage) {
  struct Case {
    const char* what;
    std::function<void(ModelInferRequest&)> change;
    grpc::StatusCode code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"no input", [](ModelInferRequest& r) { r.clear_inputs(); },
       grpc::StatusCode::INVALID_ARGUMENT, "one input tensor of whole rows, or its features as "
                                           "inputs named by feature; the request has 0 inputs"},
      {"two inputs", [](ModelInferRequest& r) { *r.add_inputs() = r.inputs(0); },
       grpc::StatusCode::INVALID_ARGUMENT,
       "has shape [3, 3]; a feature sent by name is [rows] or [rows, 1], the tensor of whole "
       "rows the only input"},
      {"another name", [](ModelInferRequest& r) { r.mutable_inputs(0)->set_name("x"); },
       grpc::StatusCode::INVALID_ARGUMENT, "has no input 'x'; its input is"},
      {"rank 1: a feature by name", [](ModelInferRequest& r) {
         r.mutable_inputs(0)->mutable_shape()->RemoveLast();
         r.mutable_inputs(0)->mutable_contents()->mutable_fp32_contents()->Truncate(3);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "names no features (its config has no feature_names)"},
      {"rank 3", [](ModelInferRequest& r) { r.mutable_inputs(0)->add_shape(1); },
       grpc::StatusCode::INVALID_ARGUMENT, "send [rows, features per row]"},
      {"width", [](ModelInferRequest& r) {
         r.mutable_inputs(0)->set_shape(0, 1);
         r.mutable_inputs(0)->set_shape(1, 9);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "has shape [-1, 3]; got 9 columns"},
      {"FP8", [](ModelInferRequest& r) { r.mutable_inputs(0)->set_datatype("FP8"); },
       grpc::StatusCode::INVALID_ARGUMENT, "features may be FP32"},
      {"too few values",
       [](ModelInferRequest& r) {
         r.mutable_inputs(0)->mutable_contents()->mutable_fp32_contents()->RemoveLast();
       },
       grpc::StatusCode::INVALID_ARGUMENT, "contents hold 8 values"},
      {"raw size",
       [](ModelInferRequest& r) {
         r.mutable_inputs(0)->clear_contents();
         r.add_raw_input_contents(std::string(35, '\0'));
       },
       grpc::StatusCode::INVALID_ARGUMENT, "has 35 raw bytes"},
      {"raw and typed", [](ModelInferRequest& r) { r.add_raw_input_contents(RawBytes(kRows)); },
       grpc::StatusCode::INVALID_ARGUMENT, "both contents and raw_input_contents"},
      {"integer beyond 2^24",
       [](ModelInferRequest& r) {
         auto* input = r.mutable_inputs(0);
         input->set_datatype("INT64");
         input->clear_contents();
         for (int i = 0; i < 9; ++i) input->mutable_contents()->add_int64_contents(16777217);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "beyond 2^24"},
      {"FP64 beyond FP32",
       [](ModelInferRequest& r) {
         auto* input = r.mutable_inputs(0);
         input->set_datatype("FP64");
         input->clear_contents();
         for (int i = 0; i < 9; ++i) input->mutable_contents()->add_fp64_contents(1e300);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "beyond FP32's range"},
      {"NaN", [](ModelInferRequest& r) {
         r.mutable_inputs(0)->mutable_contents()->set_fp32_contents(4, std::nanf(""));
       },
       grpc::StatusCode::INVALID_ARGUMENT, "row 1 feature 1 is NaN or Inf"},
      {"unknown output", [](ModelInferRequest& r) { r.add_outputs()->set_name("probs"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       "has no output 'probs'; its outputs are logits, sigmoid, softmax, log_softmax"},
      {"output twice",
       [](ModelInferRequest& r) {
         r.add_outputs()->set_name("softmax");
         r.add_outputs()->set_name("softmax");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "'softmax' is asked for twice"},
      {"classification 0",
       [](ModelInferRequest& r) {
         auto* output = r.add_outputs();
         output->set_name("softmax");
         (*output->mutable_parameters())["classification"].set_int64_param(0);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "must be a positive integer"},
      {"classification 4",
       [](ModelInferRequest& r) {
         auto* output = r.add_outputs();
         output->set_name("softmax");
         (*output->mutable_parameters())["classification"].set_int64_param(4);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "top_k 4 is more than the 3 outputs"},
      {"timeout 0",
       [](ModelInferRequest& r) { (*r.mutable_parameters())["timeout"].set_int64_param(0); },
       grpc::StatusCode::INVALID_ARGUMENT,
       "parameter \"timeout\" must be a positive integer of microseconds"},
      {"timeout as text",
       [](ModelInferRequest& r) {
         (*r.mutable_parameters())["timeout"].set_string_param("1s");
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       "parameter \"timeout\" must be a positive integer of microseconds"},
      {"version text", [](ModelInferRequest& r) { r.set_model_version("latest"); },
       grpc::StatusCode::INVALID_ARGUMENT, "version must be a positive integer or empty"},
      {"unknown model", [](ModelInferRequest& r) { r.set_model_name("nope"); },
       grpc::StatusCode::NOT_FOUND, "model 'nope' is not served"},
      {"unknown version", [](ModelInferRequest& r) { r.set_model_version("3"); },
       grpc::StatusCode::NOT_FOUND, "has no version 3"},
      {"failed model", [](ModelInferRequest& r) { r.set_model_name("broken"); },
       grpc::StatusCode::UNAVAILABLE, "model 'broken' has no loadable version"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ModelInferRequest request = Request("species", kRows);
    c.change(request);
    ModelInferResponse answer;
    const grpc::Status status = Infer(request, &answer);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  // Softmax of one output is refused as in seqserve.v1.
  ModelInferRequest request = Request("mammal", {4, 0, 1});
  request.add_outputs()->set_name("softmax");
  ModelInferResponse answer;
  const grpc::Status status = Infer(request, &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("has one output"));
}

// The HTTP endpoints: the same answers as gRPC, JSON or binary.
TEST_F(OpenInferenceTest, HttpAnswersEqualGrpcInJsonAndBinary) {
  const int port = server_->http_port();
  const std::string input = V1Metadata("species").input_tensor();
  ModelInferRequest request = Request("species", kRows);
  request.add_outputs()->set_name("softmax");
  request.add_outputs()->set_name("logits");
  ModelInferResponse grpc_answer;
  ASSERT_TRUE(Infer(request, &grpc_answer).ok());

  const nlohmann::json body = {
      {"id", "h1"},
      {"inputs",
       {{{"name", input}, {"shape", {3, 3}}, {"datatype", "FP32"},
         {"data", {{4, 0, 1}, {2, 1, 0}, {0, 1, 0}}}}}},
      {"outputs", {{{"name", "softmax"}}, {{"name", "logits"}}}}};
  HttpReply reply = HttpCall(port, "POST", "/v2/models/species/infer", body.dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto json = nlohmann::json::parse(reply.body);
  // FP32 values in their shortest form: at most 9 significant digits each,
  // not the 17 of a double's expansion.
  const std::regex data_array("\"data\":\\[([^\\]]*)\\]");
  int arrays = 0;
  for (std::sregex_iterator it(reply.body.begin(), reply.body.end(), data_array), end;
       it != end; ++it, ++arrays) {
    for (absl::string_view number : absl::StrSplit((*it)[1].str(), ',')) {
      std::string digits;
      for (char c : number.substr(0, number.find_first_of("eE"))) {
        if (absl::ascii_isdigit(c) && !(digits.empty() && c == '0')) digits += c;
      }
      EXPECT_LE(digits.size(), 9u) << number;
    }
  }
  EXPECT_EQ(arrays, 2) << reply.body;
  EXPECT_EQ(json["id"], "h1");
  EXPECT_EQ(json["model_version"], "1");
  for (int i = 0; i < 2; ++i) {
    const auto& output = json["outputs"][i];
    EXPECT_EQ(output["name"], grpc_answer.outputs(i).name());
    EXPECT_EQ(output["shape"], nlohmann::json({3, 3}));
    const std::vector<float> got = output["data"].get<std::vector<float>>();
    const auto& want = grpc_answer.outputs(i).contents().fp32_contents();
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end()));
  }

  // Binary tensors both ways: the JSON header, then the rows' bytes.
  const nlohmann::json header = {
      {"inputs",
       {{{"name", input}, {"shape", {3, 3}}, {"datatype", "FP32"},
         {"parameters", {{"binary_data_size", 36}}}}}},
      {"outputs", {{{"name", "softmax"}, {"parameters", {{"binary_data", true}}}}}}};
  const std::string json_part = header.dump();
  reply = HttpCall(port, "POST", "/v2/models/species/versions/1/infer",
                   json_part + RawBytes(kRows),
                   absl::StrCat("Inference-Header-Content-Length: ", json_part.size(), "\r\n"));
  ASSERT_EQ(reply.status, 200) << reply.body;
  ASSERT_TRUE(reply.headers.count("inference-header-content-length"));
  const size_t json_size = std::stoul(reply.headers["inference-header-content-length"]);
  const auto answer_header = nlohmann::json::parse(reply.body.substr(0, json_size));
  EXPECT_EQ(answer_header["outputs"][0]["parameters"]["binary_data_size"], 36);
  const auto& want = grpc_answer.outputs(0).contents().fp32_contents();
  EXPECT_EQ(Floats(reply.body.substr(json_size)), std::vector<float>(want.begin(), want.end()));
}

TEST_F(OpenInferenceTest, HttpHealthMetadataAndErrors) {
  const int port = server_->http_port();
  HttpReply reply = HttpCall(port, "GET", "/v2/health/live");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "");
  EXPECT_EQ(HttpCall(port, "GET", "/v2/health/ready").status, 200);
  EXPECT_EQ(HttpCall(port, "GET", "/v2/models/species/ready").status, 200);
  EXPECT_EQ(HttpCall(port, "GET", "/v2/models/species/versions/1/ready").status, 200);
  EXPECT_EQ(HttpCall(port, "GET", "/v2/models/species/versions/2/ready").status, 400);
  // Not ready says why, in the protocol's error shape.
  const HttpReply broken = HttpCall(port, "GET", "/v2/models/broken/ready");
  EXPECT_EQ(broken.status, 400);
  EXPECT_EQ(broken.headers.at("content-type"), "application/json");
  const auto why = nlohmann::json::parse(broken.body, nullptr, false);
  EXPECT_TRUE(why.is_object() && why.contains("error") && why.size() == 1) << broken.body;

  reply = HttpCall(port, "GET", "/v2");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(nlohmann::json::parse(reply.body)["extensions"],
            nlohmann::json({"classification", "binary_tensor_data", "model_repository"}));
  reply = HttpCall(port, "GET", "/v2/models/mammal");
  ASSERT_EQ(reply.status, 200);
  const auto metadata = nlohmann::json::parse(reply.body);
  EXPECT_EQ(metadata["platform"], "seqserve_sequential");
  EXPECT_EQ(metadata["inputs"][0]["shape"], nlohmann::json({-1, 3}));

  struct Case {
    std::string path;
    std::string body;
    int status;
    const char* message;
    std::string headers = "";
  };
  // The binary tensor extension: a JSON header of the given length, then bytes.
  const std::string binary_json =
      R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",)"
      R"( "parameters": {"binary_data_size": 12}}]})";
  auto header_length = [](size_t bytes) {
    return absl::StrCat("Inference-Header-Content-Length: ", bytes, "\r\n");
  };
  const std::vector<Case> cases = {
      {"/v2/models/nope", "", 404, "model 'nope' is not served"},
      {"/v2/models/broken", "", 503, "has no loadable version"},
      {"/v2/models/species/infer", "{", 400, "not a JSON object"},
      {"/v2/models/species/infer", R"({"input": []})", 400, "unknown field 'input'"},
      {"/v2/models/species/infer",
       R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT8", "data": [1, 2, 300]}]})",
       400, "element 2 is 300, not INT8"},
      {"/v2/models/species/infer",
       R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, "a", 3]}]})",
       400, "element \"a\" is not FP32"},
      {"/v2/models/species/infer",
       R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
           "parameters": {"binary_data_size": 12}}]})",
       400, "runs past the body"},
      {"/v2/models/species/versions/9/infer",
       R"({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})",
       404, "has no version 9"},
      {"/v2/models/species/infer", binary_json + std::string(12, '\0'), 400,
       "not a length within the body", "Inference-Header-Content-Length: twelve\r\n"},
      {"/v2/models/species/infer", binary_json + std::string(12, '\0'), 400,
       "not a length within the body", header_length(binary_json.size() + 13)},
      {"/v2/models/species/infer", binary_json + std::string(16, '\0'), 400,
       "4 bytes of binary data belong to no input", header_length(binary_json.size())},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path + " " + c.body);
    reply = HttpCall(port, c.body.empty() ? "GET" : "POST", c.path, c.body, c.headers);
    EXPECT_EQ(reply.status, c.status);
    const auto error = nlohmann::json::parse(reply.body, nullptr, false);
    ASSERT_TRUE(error.is_object() && error.size() == 1 && error.contains("error")) << reply.body;
    EXPECT_THAT(error["error"].get<std::string>(), HasSubstr(c.message));
  }
}

// The request parameter "timeout" (microseconds, as Triton reads it) gives
// a call a deadline, over HTTP too, where the transport has none: a call
// still queued past it is answered DEADLINE_EXCEEDED (504), one with time
// left is answered.
TEST(OpenInferenceTimeout, ACallQueuedPastItsTimeoutIsAnsweredDeadlineExceeded) {
  TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  ModelServer::Options options;
  options.model_repository = repository.root();
  options.poll_interval = absl::ZeroDuration();
  options.inference.threads = 1;  // one slot, and no pass on the caller's thread:
  options.inference.inline_max_macs = 0;  // held, it keeps every call queued
  auto server = testing::StartLocalServer(options, /*with_http=*/true);
  ASSERT_TRUE(server.ok()) << server.status();
  auto served = (*server)->models().Find("species", 0);
  ASSERT_TRUE(served.ok());
  const std::string input = (*served)->model->tensor_names().input;
  auto body = [&](const nlohmann::json& timeout) {
    return nlohmann::json({{"inputs", {{{"name", input}, {"shape", {1, 3}},
                                        {"datatype", "FP32"}, {"data", {4, 0, 1}}}}},
                           {"parameters", {{"timeout", timeout}}}})
        .dump();
  };
  const int port = (*server)->http_port();
  auto held = std::make_unique<testing::HeldSlot>((*server)->runner(), *served);
  HttpReply short_reply, long_reply;
  std::thread short_call([&] {
    short_reply = HttpCall(port, "POST", "/v2/models/species/infer", body(100'000));
  });
  std::thread long_call([&] {
    long_reply = HttpCall(port, "POST", "/v2/models/species/infer", body(60'000'000));
  });
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while ((*server)->calls_in_flight() < 2 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ((*server)->calls_in_flight(), 2) << "the calls never arrived";
  absl::SleepFor(absl::Milliseconds(300));  // three times the short call's timeout
  held->Release();
  short_call.join();
  long_call.join();
  EXPECT_EQ(short_reply.status, 504) << short_reply.body;
  EXPECT_THAT(short_reply.body, HasSubstr("deadline passed while waiting for a forward pass"));
  EXPECT_EQ(long_reply.status, 200) << long_reply.body;
  EXPECT_THAT(long_reply.body, HasSubstr("\"outputs\""));
}

// The request parameter "version_label" names a version by its label in
// the model's config, over HTTP as over gRPC; with a version too, or of a
// label the config does not give, it is refused.
TEST(OpenInferenceLabels, AVersionLabelParameterNamesTheVersion) {
  TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.AddReferenceVersion("species", 2, "species");
  repository.WriteFile("species/config.textproto",
                       "version_policy { all {} }\n"
                       "version_labels { key: 'stable' value: 1 }\n");
  ModelServer::Options options;
  options.model_repository = repository.root();
  options.poll_interval = absl::ZeroDuration();
  auto server = testing::StartLocalServer(options, /*with_http=*/true);
  ASSERT_TRUE(server.ok()) << server.status();
  auto served = (*server)->models().Find("species", 0);
  ASSERT_TRUE(served.ok());
  const std::string input = (*served)->model->tensor_names().input;
  auto body = [&](const nlohmann::json& parameters, const std::string& version) {
    nlohmann::json request = {{"inputs", {{{"name", input}, {"shape", {1, 3}},
                                           {"datatype", "FP32"}, {"data", {4, 0, 1}}}}},
                              {"parameters", parameters}};
    return std::make_pair(
        version.empty() ? std::string("/v2/models/species/infer")
                        : absl::StrCat("/v2/models/species/versions/", version, "/infer"),
        request.dump());
  };
  const int port = (*server)->http_port();
  struct Case {
    nlohmann::json parameters;
    std::string version;
    int status;
    std::string fragment;
  };
  const Case cases[] = {
      {{{"version_label", "stable"}}, "", 200, "\"model_version\":\"1\""},
      {nlohmann::json::object(), "", 200, "\"model_version\":\"2\""},
      {{{"version_label", "canary"}}, "", 404,
       "model 'species' has no version label 'canary' (labels: stable)"},
      {{{"version_label", "stable"}}, "1", 400,
       "give a model version or the parameter \"version_label\", not both"},
      {{{"version_label", 1}}, "", 400, "parameter \"version_label\" must be a string"},
      {{{"version_label", std::string(300, 'x')}}, "", 400,
       "parameter \"version_label\" is over 256 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.parameters.dump());
    const auto [path, request] = body(c.parameters, c.version);
    const HttpReply reply = HttpCall(port, "POST", path, request);
    EXPECT_EQ(reply.status, c.status) << reply.body;
    const auto answer = nlohmann::json::parse(reply.body, nullptr, false);
    EXPECT_THAT(answer.contains("error") ? answer["error"].get<std::string>() : reply.body,
                HasSubstr(c.fragment));
  }
  // gRPC: the same parameter.
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));
  ModelInferRequest request;
  request.set_model_name("species");
  auto* tensor = request.add_inputs();
  tensor->set_name(input);
  tensor->set_datatype("FP32");
  tensor->add_shape(1);
  tensor->add_shape(3);
  for (float value : {4.0f, 0.0f, 1.0f}) tensor->mutable_contents()->add_fp32_contents(value);
  (*request.mutable_parameters())["version_label"].set_string_param("stable");
  ModelInferResponse answer;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->ModelInfer(&context, request, &answer).ok());
  EXPECT_EQ(answer.model_version(), "1");
}

// Tokens guard v2 inference and metadata as they guard seqserve.v1; health
// stays open to probes.
TEST(OpenInferenceTokens, InferenceNeedsATokenHealthDoesNot) {
  TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.WriteReferenceConfig("species", "species");
  repository.WriteFile("tokens.txt", "tests:v2-secret\n");
  auto authenticator =
      TokenAuthenticator::Start({repository.root() + "/tokens.txt", absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  ModelServer::Options options;
  options.model_repository = repository.root();
  options.poll_interval = absl::ZeroDuration();
  options.authenticator = authenticator->get();
  auto server = testing::StartLocalServer(options, /*with_http=*/true);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));

  inference::ModelMetadataRequest asked;
  asked.set_name("species");
  inference::ModelMetadataResponse metadata;
  grpc::ClientContext anonymous;
  EXPECT_EQ(stub->ModelMetadata(&anonymous, asked, &metadata).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext with_token;
  with_token.AddMetadata("authorization", "Bearer v2-secret");
  ASSERT_TRUE(stub->ModelMetadata(&with_token, asked, &metadata).ok());

  ModelInferRequest request;
  request.set_model_name("species");
  auto* input = request.add_inputs();
  input->set_name(metadata.inputs(0).name());
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(3);
  for (float value : {4.0f, 0.0f, 1.0f}) input->mutable_contents()->add_fp32_contents(value);
  ModelInferResponse answer;
  grpc::ClientContext no_token;
  EXPECT_EQ(stub->ModelInfer(&no_token, request, &answer).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext token;
  token.AddMetadata("authorization", "Bearer v2-secret");
  EXPECT_TRUE(stub->ModelInfer(&token, request, &answer).ok());
  grpc::ClientContext probe;
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub->ServerReady(&probe, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());

  const int port = (*server)->http_port();
  const std::string body = nlohmann::json(
      {{"inputs", {{{"name", metadata.inputs(0).name()}, {"shape", {1, 3}},
                    {"datatype", "FP32"}, {"data", {4, 0, 1}}}}}}).dump();
  HttpReply reply = HttpCall(port, "POST", "/v2/models/species/infer", body);
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.headers["www-authenticate"], "Bearer");
  EXPECT_THAT(reply.body, HasSubstr("\"error\""));
  EXPECT_EQ(HttpCall(port, "GET", "/v2").status, 401);
  reply = HttpCall(port, "POST", "/v2/models/species/infer", body,
                   "Authorization: Bearer v2-secret\r\n");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(HttpCall(port, "GET", "/v2/health/ready").status, 200);
  EXPECT_EQ(HttpCall(port, "GET", "/v2/models/species/ready").status, 200);
}

}  // namespace
}  // namespace seqserve
