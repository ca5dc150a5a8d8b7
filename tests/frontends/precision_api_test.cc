// A model served in INT8 (config `precision: int8`) on a real server:
// metadata over gRPC and REST says so, the answers keep PyTorch's class
// on the reference rows within a stated distance of its probabilities,
// and every protocol gives the same bits, since all go through one path.
// The same file in float32 beside it keeps PyTorch's numbers.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/reference_data.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using nlohmann::json;

class PrecisionApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reference = testing::LoadReference("species");
    ASSERT_TRUE(reference.ok()) << reference.status();
    reference_ = *std::move(reference);
    repository_.AddReferenceVersion("species", 1, "species");
    repository_.WriteReferenceConfig("species", "species");
    repository_.AddReferenceVersion("species_int8", 1, "species");
    repository_.WriteReferenceConfig("species_int8", "species", "precision: int8");
    // A file ONNX Runtime's quantize_dynamic wrote, as stored and in fp32.
    const std::string quantized = testing::ReferenceDir() + "/quantized/dynamic_per_channel/";
    for (const std::string model : {"quantized", "quantized_fp32"}) {
      for (const std::string file : {"model.onnx", "model.onnx.data"}) {
        std::ifstream in(quantized + file, std::ios::binary);
        ASSERT_TRUE(in) << quantized << file;
        repository_.WriteFile(model + "/1/" + file, std::string(std::istreambuf_iterator<char>(in),
                                                                std::istreambuf_iterator<char>()));
      }
    }
    repository_.WriteFile("quantized_fp32/config.textproto", "precision: fp32\n");
    ModelServer::Options options;
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    stub_ = v1::Classifier::NewStub(channel);
    v2_ = inference::GRPCInferenceService::NewStub(channel);
  }

  v1::ClassifyResponse Classify(const std::string& model, v1::OutputMode output) {
    v1::ClassifyRequest request;
    request.set_model(model);
    request.set_output(output);
    request.mutable_features()->Add(reference_.inputs.begin(), reference_.inputs.end());
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    const grpc::Status status = stub_->Classify(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static std::vector<float> Scores(const v1::ClassifyResponse& response) {
    std::vector<float> scores;
    for (const v1::RowResult& row : response.results()) {
      scores.insert(scores.end(), row.scores().begin(), row.scores().end());
    }
    return scores;
  }

  testing::ReferenceCase reference_;
  testing::TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> v2_;
};

TEST_F(PrecisionApiTest, MetadataSaysThePrecision) {
  for (const auto& [model, precision] :
       std::vector<std::pair<std::string, v1::Precision>>{{"species", v1::PRECISION_FP32},
                                                          {"species_int8", v1::PRECISION_INT8}}) {
    v1::GetModelMetadataRequest request;
    request.set_model(model);
    v1::GetModelMetadataResponse metadata;
    grpc::ClientContext context;
    const grpc::Status status = stub_->GetModelMetadata(&context, request, &metadata);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(metadata.precision(), precision) << model;
    const testing::HttpReply reply =
        testing::HttpCall(server_->http_port(), "GET", "/v1/models/" + model + "/metadata");
    ASSERT_EQ(reply.status, 200) << reply.body;
    EXPECT_EQ(json::parse(reply.body)["metadata"]["seqserve"]["precision"],
              v1::Precision_Name(precision))
        << reply.body;
  }
}

// A quantized file serves in INT8 unless its config names another
// precision, with the ONNX operator specs' bits (ONNX Runtime's row by row).
TEST_F(PrecisionApiTest, AQuantizedFileServesAsStoredUnlessItsConfigSaysOtherwise) {
  std::ifstream file(testing::ReferenceDir() + "/quantized/dynamic_per_channel/reference.json");
  ASSERT_TRUE(file);
  const json reference = json::parse(file);
  v1::ClassifyRequest request;
  request.set_model("quantized");
  request.set_output(v1::OUTPUT_MODE_LOGITS);
  for (const auto& row : reference["inputs"]) {
    for (double v : row) request.add_features(static_cast<float>(v));
  }
  for (const auto& [model, precision] : std::vector<std::pair<std::string, v1::Precision>>{
           {"quantized", v1::PRECISION_INT8}, {"quantized_fp32", v1::PRECISION_FP32}}) {
    v1::GetModelMetadataRequest metadata_request;
    metadata_request.set_model(model);
    v1::GetModelMetadataResponse metadata;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->GetModelMetadata(&context, metadata_request, &metadata).ok());
    EXPECT_EQ(metadata.precision(), precision) << model;
    request.set_model(model);
    v1::ClassifyResponse response;
    grpc::ClientContext classify_context;
    const grpc::Status status = stub_->Classify(&classify_context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    const std::vector<float> scores = Scores(response);
    // INT8: the spec's bits. FP32: the stored weights' values in float32,
    // within the quantization's error of the float model's answers.
    const bool int8 = precision == v1::PRECISION_INT8;
    std::vector<float> want;
    for (const auto& row : reference[int8 ? "output" : "float_output"]) {
      for (double v : row) want.push_back(static_cast<float>(v));
    }
    ASSERT_EQ(scores.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      if (int8) {
        EXPECT_EQ(std::memcmp(&scores[i], &want[i], sizeof(float)), 0) << model << " " << i;
      } else {
        EXPECT_NEAR(scores[i], want[i], 0.02) << model << " " << i;
      }
    }
  }
}

TEST_F(PrecisionApiTest, Int8KeepsTheClassAndStaysCloseToPyTorch) {
  const v1::ClassifyResponse fp32 = Classify("species", v1::OUTPUT_MODE_SOFTMAX);
  const v1::ClassifyResponse int8 = Classify("species_int8", v1::OUTPUT_MODE_SOFTMAX);
  ASSERT_EQ(static_cast<size_t>(int8.results_size()), reference_.rows);
  EXPECT_EQ(testing::FirstMismatch(Scores(fp32), reference_.softmax), -1);
  const std::vector<float> scores = Scores(int8);
  EXPECT_NE(testing::FirstMismatch(scores, reference_.softmax), -1);  // quantized
  double largest = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    largest = std::max(largest, std::fabs(static_cast<double>(scores[i]) - reference_.softmax[i]));
  }
  EXPECT_LT(largest, 0.05) << "largest probability difference";
  for (size_t r = 0; r < reference_.rows; ++r) {
    const auto begin = reference_.softmax.begin() + r * reference_.output_width;
    const auto pytorch_class =
        std::max_element(begin, begin + reference_.output_width) - begin;
    EXPECT_EQ(int8.results(static_cast<int>(r)).predicted_index(), pytorch_class) << "row " << r;
  }
}

TEST_F(PrecisionApiTest, EveryProtocolGivesTheInt8ModelsBits) {
  const std::vector<float> grpc_scores =
      Scores(Classify("species_int8", v1::OUTPUT_MODE_SOFTMAX));
  // Open Inference Protocol over gRPC: its default output is the softmax.
  inference::ModelInferRequest request;
  request.set_model_name("species_int8");
  auto* input = request.add_inputs();
  input->set_name("features");
  input->set_datatype("FP32");
  input->add_shape(static_cast<int64_t>(reference_.rows));
  input->add_shape(static_cast<int64_t>(reference_.input_width));
  input->mutable_contents()->mutable_fp32_contents()->Add(reference_.inputs.begin(),
                                                          reference_.inputs.end());
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  const grpc::Status status = v2_->ModelInfer(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 1);
  const auto& v2_values = response.outputs(0).contents().fp32_contents();
  ASSERT_EQ(static_cast<size_t>(v2_values.size()), grpc_scores.size());
  EXPECT_EQ(std::memcmp(v2_values.data(), grpc_scores.data(), grpc_scores.size() * sizeof(float)),
            0);
  // seqserve's REST body: the rows' features in one list.
  const json rest_body = {{"features", reference_.inputs}, {"output", "softmax"}};
  const testing::HttpReply reply = testing::HttpCall(
      server_->http_port(), "POST", "/v1/models/species_int8:classify", rest_body.dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  v1::ClassifyResponse over_http;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(reply.body, &over_http).ok())
      << reply.body;
  const std::vector<float> rest_scores = Scores(over_http);
  EXPECT_EQ(rest_scores, grpc_scores);
}

// Explanations differentiate float32 weights: an INT8 model's are refused,
// saying how to have the float32 model's.
TEST_F(PrecisionApiTest, ExplainingAnInt8ModelIsRefused) {
  v1::ExplainRequest request;
  request.set_model("species_int8");
  request.mutable_features()->Add(reference_.inputs.begin(),
                                  reference_.inputs.begin() + reference_.input_width);
  v1::ExplainResponse response;
  grpc::ClientContext context;
  const grpc::Status status = stub_->Explain(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("runs in int8"));
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--precision fp32"));
  request.set_model("species");
  grpc::ClientContext fp32_context;
  EXPECT_TRUE(stub_->Explain(&fp32_context, request, &response).ok());
}

}  // namespace
}  // namespace seqserve
