// A model shipped with its preprocessing (standardize, min_max with clip,
// one_hot with an `other` slot, a missing default) on a real server: named,
// unscaled, categorical rows on gRPC, seqserve's REST body, TF Serving's
// REST bodies and v2's inputs named by feature (gRPC typed and raw, REST)
// answer with exactly the bits the same layers give for rows
// prepared by hand in float32; refusals name the row and feature.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
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

// Seven inputs: weight, height, species as cat, dog, bird or other, age.
constexpr char kLayers[] = R"pb(
  input_width: 7
  layers {
    linear {
      in_features: 7
      out_features: 3
      weight: [ 0.31, -0.7, 0.25, -0.4, 0.9, 0.05, 0.013,
                -0.22, 0.45, 0.6, 0.11, -0.35, 0.7, -0.021,
                0.5, 0.15, -0.3, 0.8, 0.2, -0.6, 0.032 ]
      bias: [ 0.1, -0.2, 0.05 ]
    }
  }
  head: HEAD_SOFTMAX
)pb";

constexpr char kPreprocessing[] = R"pb(
  feature_names: [ "weight", "height", "species", "age" ]
  preprocessing { feature: "weight" standardize { mean: 21.5 std: 7.25 } }
  preprocessing {
    feature: "height"
    clip { min: 10 max: 90 }
    min_max { min: 10 max: 90 low: -1 high: 1 }
  }
  preprocessing {
    feature: "species"
    one_hot { categories: [ "cat", "dog", "bird" ] unknown: UNKNOWN_OTHER }
  }
  preprocessing { feature: "age" missing_value: 4 }
)pb";

struct Pet {
  float weight, height;
  std::string species;
  float age;  // NaN: left out
};

// The model's seven inputs for `pet`, each step in float32 as the config
// says.
std::vector<float> Prepared(const Pet& pet) {
  volatile float centred = pet.weight - 21.5f;
  const float weight = centred / 7.25f;
  volatile float height = std::min(std::max(pet.height, 10.0f), 90.0f);
  volatile float shifted = height - 10.0f;
  volatile float unit = shifted / 80.0f;
  volatile float scaled = unit * 2.0f;
  const float min_max = scaled + -1.0f;
  std::vector<float> row = {weight, min_max, 0, 0, 0, 0, std::isnan(pet.age) ? 4.0f : pet.age};
  const std::vector<std::string> categories = {"cat", "dog", "bird"};
  const auto found = std::find(categories.begin(), categories.end(), pet.species);
  row[2 + (found - categories.begin())] = 1.0f;
  return row;
}

uint32_t Bits(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

using Rows = std::vector<std::vector<float>>;

void ExpectSameFloats(const json& got, const Rows& want, const std::string& what) {
  ASSERT_TRUE(got.is_array()) << what << ": " << got.dump();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t r = 0; r < want.size(); ++r) {
    ASSERT_EQ(got[r].size(), want[r].size()) << what << " row " << r;
    for (size_t c = 0; c < want[r].size(); ++c) {
      EXPECT_EQ(Bits(static_cast<float>(got[r][c].get<double>())), Bits(want[r][c]))
          << what << " row " << r << " column " << c;
    }
  }
}

class PreprocessingApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository_.WriteFile("pets/1/model.textproto", kLayers);
    repository_.WriteFile("pets/config.textproto",
                          std::string(kPreprocessing) + "labels: ['indoor', 'outdoor', 'farm']\n");
    repository_.WriteFile("pets_prepared/1/model.textproto", kLayers);
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

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return v2_->ModelInfer(&context, request, response);
  }

  // A v2 request sending each feature as an input of its own, in the
  // request's order: species as text, height as FP64, weight and age as
  // FP32 (NaN: missing); typed contents, or raw as Triton's clients send.
  static inference::ModelInferRequest NamedInputs(const std::vector<Pet>& pets, bool raw) {
    inference::ModelInferRequest request;
    request.set_model_name("pets");
    const int64_t rows = static_cast<int64_t>(pets.size());
    auto add = [&](const char* name, const char* datatype, bool column_shape) {
      auto* input = request.add_inputs();
      input->set_name(name);
      input->set_datatype(datatype);
      input->add_shape(rows);
      if (column_shape) input->add_shape(1);
      return input;
    };
    auto* species = add("species", "BYTES", false);
    auto* height = add("height", "FP64", true);
    auto* weight = add("weight", "FP32", false);
    auto* age = add("age", "FP32", true);
    std::string species_raw, height_raw, weight_raw, age_raw;
    auto append = [](std::string* bytes, const auto& value) {
      bytes->append(reinterpret_cast<const char*>(&value), sizeof value);
    };
    for (const Pet& pet : pets) {
      if (raw) {
        append(&species_raw, static_cast<uint32_t>(pet.species.size()));
        species_raw += pet.species;
        append(&height_raw, static_cast<double>(pet.height));
        append(&weight_raw, pet.weight);
        append(&age_raw, pet.age);
      } else {
        species->mutable_contents()->add_bytes_contents(pet.species);
        height->mutable_contents()->add_fp64_contents(pet.height);
        weight->mutable_contents()->add_fp32_contents(pet.weight);
        age->mutable_contents()->add_fp32_contents(pet.age);
      }
    }
    if (raw) {
      for (std::string* bytes : {&species_raw, &height_raw, &weight_raw, &age_raw}) {
        request.add_raw_input_contents(*bytes);
      }
    }
    return request;
  }

  static Rows V2Scores(const inference::ModelInferResponse& response, size_t rows) {
    Rows scores(rows);
    if (response.outputs_size() != 1) return {};
    const auto& output = response.outputs(0);
    std::vector<float> values;
    if (response.raw_output_contents_size() == 1) {
      const std::string& bytes = response.raw_output_contents(0);
      values.resize(bytes.size() / sizeof(float));
      std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
    } else {
      values.assign(output.contents().fp32_contents().begin(),
                    output.contents().fp32_contents().end());
    }
    const size_t width = rows == 0 ? 0 : values.size() / rows;
    for (size_t r = 0; r < rows; ++r) {
      scores[r].assign(values.begin() + r * width, values.begin() + (r + 1) * width);
    }
    return scores;
  }

  grpc::Status Classify(const v1::ClassifyRequest& request, v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Classify(&context, request, response);
  }

  // What the layers answer for the pets prepared by hand.
  Rows Want(const std::vector<Pet>& pets) {
    v1::ClassifyRequest request;
    request.set_model("pets_prepared");
    for (const Pet& pet : pets) {
      for (float v : Prepared(pet)) request.add_features(v);
    }
    request.set_rows(static_cast<uint32_t>(pets.size()));
    v1::ClassifyResponse response;
    const grpc::Status status = Classify(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    Rows scores;
    for (const auto& result : response.results()) {
      scores.emplace_back(result.scores().begin(), result.scores().end());
    }
    return scores;
  }

  // A gRPC request naming its columns in its own order: species, age
  // (left out when every pet's is NaN), height, weight.
  static v1::ClassifyRequest NamedRequest(const std::vector<Pet>& pets) {
    v1::ClassifyRequest request;
    request.set_model("pets");
    for (const char* column : {"species", "age", "height", "weight"}) request.add_columns(column);
    for (const Pet& pet : pets) {
      for (float v : {std::nanf(""), pet.age, pet.height, pet.weight}) request.add_features(v);
      for (const std::string& text : {pet.species, std::string(), std::string(), std::string()}) {
        request.add_categories(text);
      }
    }
    request.set_rows(static_cast<uint32_t>(pets.size()));
    return request;
  }

  json Post(const std::string& path, const json& body, int want_status = 200) {
    const HttpReply reply = HttpCall(server_->http_port(), "POST", path, body.dump());
    EXPECT_EQ(reply.status, want_status) << path << " " << body.dump() << ": " << reply.body;
    return json::parse(reply.body, nullptr, false);
  }

  testing::TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> v2_;
};

const std::vector<Pet> kPets = {
    {4.2f, 25, "cat", 3},      {30.5f, 60, "dog", std::nanf("")},
    {0.3f, 5, "bird", 1},      {12, 140, "ferret", 2},
    {21.5f, 50, "dog", 11.5f},
};

TEST_F(PreprocessingApiTest, EveryProtocolAnswersWhatTheLayersGiveForRowsPreparedByHand) {
  const Rows want = Want(kPets);
  ASSERT_EQ(want.size(), kPets.size());

  v1::ClassifyResponse response;
  const grpc::Status status = Classify(NamedRequest(kPets), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), static_cast<int>(kPets.size()));
  for (size_t r = 0; r < kPets.size(); ++r) {
    for (size_t c = 0; c < want[r].size(); ++c) {
      EXPECT_EQ(Bits(response.results(r).scores(c)), Bits(want[r][c])) << "gRPC row " << r;
    }
  }

  // seqserve's REST body is the request message's JSON form.
  std::string request_json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(NamedRequest(kPets), &request_json).ok());
  json seqserve_body = json::parse(request_json);
  const json classified = Post("/v1/models/pets:classify", seqserve_body);
  json seqserve_scores = json::array();
  for (const auto& result : classified["results"]) seqserve_scores.push_back(result["scores"]);
  ExpectSameFloats(seqserve_scores, want, "seqserve REST");

  // TF Serving's row and column forms: a null age takes its default.
  json instances = json::array();
  json columns = {{"weight", json::array()}, {"height", json::array()},
                  {"species", json::array()}, {"age", json::array()}};
  for (const Pet& pet : kPets) {
    instances.push_back({{"species", pet.species},
                         {"height", pet.height},
                         {"weight", pet.weight},
                         {"age", std::isnan(pet.age) ? json(nullptr) : json(pet.age)}});
    columns["weight"].push_back(pet.weight);
    columns["height"].push_back(pet.height);
    columns["species"].push_back(pet.species);
    columns["age"].push_back(std::isnan(pet.age) ? json(nullptr) : json(pet.age));
  }
  ExpectSameFloats(Post("/v1/models/pets:predict", {{"instances", instances}})["predictions"],
                   want, "TF Serving instances");
  ExpectSameFloats(Post("/v1/models/pets:predict", {{"inputs", columns}})["outputs"], want,
                   "TF Serving inputs");
  // Every row leaving age out.
  ExpectSameFloats(
      Post("/v1/models/pets:predict",
           {{"instances", {{{"species", "dog"}, {"height", 60}, {"weight", 30.5f}}}}})["predictions"],
      {want[1]}, "TF Serving instances without age");
}

TEST_F(PreprocessingApiTest, OpenInferenceTakesTheFeaturesAsInputsByName) {
  const Rows want = Want(kPets);
  ASSERT_EQ(want.size(), kPets.size());
  for (bool raw : {false, true}) {
    inference::ModelInferResponse response;
    const grpc::Status status = Infer(NamedInputs(kPets, raw), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    const Rows got = V2Scores(response, kPets.size());
    ASSERT_EQ(got.size(), want.size());
    for (size_t r = 0; r < want.size(); ++r) {
      ASSERT_EQ(got[r].size(), want[r].size()) << (raw ? "raw" : "typed") << " row " << r;
      for (size_t c = 0; c < want[r].size(); ++c) {
        EXPECT_EQ(Bits(got[r][c]), Bits(want[r][c])) << (raw ? "raw" : "typed") << " row " << r;
      }
    }
  }

  // REST: JSON has no NaN, so age is left out and every row takes its default.
  std::vector<Pet> without_age = kPets;
  json species = json::array(), height = json::array(), weight = json::array();
  for (Pet& pet : without_age) {
    pet.age = std::nanf("");
    species.push_back(pet.species);
    height.push_back(pet.height);
    weight.push_back(pet.weight);
  }
  const json body = {{"inputs",
                      {{{"name", "weight"}, {"datatype", "FP32"}, {"shape", {5}}, {"data", weight}},
                       {{"name", "species"}, {"datatype", "BYTES"}, {"shape", {5, 1}},
                        {"data", species}},
                       {{"name", "height"}, {"datatype", "FP32"}, {"shape", {5}},
                        {"data", height}}}}};
  const json answer = Post("/v2/models/pets/infer", body);
  Rows rest(kPets.size());
  const json& data = answer["outputs"][0]["data"];
  ASSERT_EQ(data.size(), 15u) << answer.dump();
  for (size_t i = 0; i < data.size(); ++i) rest[i / 3].push_back(data[i].get<float>());
  const Rows rest_want = Want(without_age);
  for (size_t r = 0; r < rest.size(); ++r) {
    for (size_t c = 0; c < 3; ++c) {
      EXPECT_EQ(Bits(rest[r][c]), Bits(rest_want[r][c])) << "REST row " << r;
    }
  }

  // The metadata lists the features as inputs, the categorical one as text.
  const HttpReply reply = HttpCall(server_->http_port(), "GET", "/v2/models/pets");
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json inputs = json::parse(reply.body)["inputs"];
  EXPECT_EQ(inputs.dump(),
            json({{{"name", "weight"}, {"datatype", "FP32"}, {"shape", {-1}}},
                  {{"name", "height"}, {"datatype", "FP32"}, {"shape", {-1}}},
                  {{"name", "species"}, {"datatype", "BYTES"}, {"shape", {-1}}},
                  {{"name", "age"}, {"datatype", "FP32"}, {"shape", {-1}}}})
                .dump());
}

TEST_F(PreprocessingApiTest, OpenInferenceRefusesFeaturesThatDoNotFit) {
  auto refused = [&](inference::ModelInferRequest request, const std::string& message) {
    inference::ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  };
  const std::vector<Pet> two = {kPets[0], kPets[1]};
  inference::ModelInferRequest request = NamedInputs(two, false);
  request.mutable_inputs(2)->set_shape(0, 3);
  refused(request, "input 'weight' has 3 rows; input 'species' has 2");

  request = NamedInputs(two, false);
  request.mutable_inputs(1)->set_shape(1, 2);
  refused(request, "input 'height' has shape [2, 2]; a feature sent by name is [rows]");

  request = NamedInputs(two, true);
  request.mutable_raw_input_contents(0)->pop_back();  // the last text one byte short
  refused(request, "input 'species' element 1 claims 3 bytes; 2 remain");

  request = NamedInputs(two, true);
  request.mutable_raw_input_contents(0)->append("xy");  // bytes past the last text
  refused(request, "the raw contents of input 'species' are not 2 length-prefixed strings");

  request = NamedInputs(two, true);
  request.mutable_raw_input_contents()->RemoveLast();
  refused(request, "raw_input_contents has 3 entries for 4 inputs");

  request = NamedInputs(two, false);
  request.mutable_inputs(2)->set_name("mass");
  refused(request, "model 'pets' has no feature 'mass'; its features are weight, height, "
                   "species, age");

  request = NamedInputs(two, false);
  request.mutable_inputs(2)->mutable_contents()->add_fp32_contents(1);
  refused(request, "input 'weight' has 3 values in fp32_contents; its shape needs 2");

  request = NamedInputs(two, false);
  request.mutable_inputs(0)->mutable_contents()->set_bytes_contents(1, "");
  refused(request, "feature 'species'");  // missing, with no default

  request = NamedInputs(two, false);
  (*request.mutable_parameters())["explain"].set_bool_param(true);
  refused(request, "an explanation takes the tensor of whole rows");
}

// Metadata shows the features a call sends, how each is prepared and what
// the model's first layer reads; over gRPC and in the REST metadata.
TEST_F(PreprocessingApiTest, MetadataShowsThePreprocessing) {
  v1::GetModelMetadataRequest request;
  request.set_model("pets");
  v1::GetModelMetadataResponse metadata;
  grpc::ClientContext context;
  const grpc::Status status = stub_->GetModelMetadata(&context, request, &metadata);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(metadata.input_width(), 4u);
  EXPECT_EQ(metadata.model_input_width(), 7u);
  ASSERT_EQ(metadata.preprocessing_size(), 4);
  EXPECT_EQ(metadata.preprocessing(2).feature(), "species");
  EXPECT_EQ(metadata.preprocessing(2).one_hot().categories_size(), 3);
  EXPECT_EQ(metadata.preprocessing(3).missing_value(), 4.0f);

  const HttpReply reply = HttpCall(server_->http_port(), "GET", "/v1/models/pets/metadata");
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json own = json::parse(reply.body)["metadata"]["seqserve"];
  EXPECT_EQ(own["model_input_width"], 7);
  EXPECT_EQ(own["preprocessing"][0]["standardize"]["std"], 7.25);
  EXPECT_EQ(own["preprocessing"][2]["one_hot"]["unknown"], "UNKNOWN_OTHER");
}

TEST_F(PreprocessingApiTest, RefusalsNameTheRowAndFeature) {
  v1::ClassifyRequest request = NamedRequest({{4, 25, "cat", 3}});
  request.clear_columns();
  for (const char* column : {"species", "age", "height", "weight", "colour"}) {
    request.add_columns(column);
  }
  request.add_features(0);
  request.add_categories("brown");
  v1::ClassifyResponse response;
  grpc::Status status = Classify(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("model 'pets' has no feature 'colour'"));

  request = NamedRequest({{4, 25, "cat", 3}});
  request.mutable_categories()->RemoveLast();
  status = Classify(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("categories"));

  // Weight has no default; height's text is no number.
  const json missing = Post("/v1/models/pets:predict",
                            {{"instances", {{{"species", "cat"}, {"height", 30}, {"age", 2}}}}},
                            400);
  EXPECT_THAT(missing["error"].get<std::string>(), HasSubstr("feature 'weight'"));
  const json text = Post(
      "/v1/models/pets:predict",
      {{"instances",
        {{{"species", "cat"}, {"height", 30}, {"weight", 3}},
         {{"species", "dog"}, {"height", "tall"}, {"weight", 3}}}}},
      400);
  EXPECT_THAT(text["error"].get<std::string>(),
              HasSubstr("row 1 feature 'height' is a number, got 'tall'"));
  const json empty = Post(
      "/v1/models/pets:predict",
      {{"instances", {{{"species", ""}, {"height", 30}, {"weight", 3}}}}}, 400);
  EXPECT_THAT(empty["error"].get<std::string>(), HasSubstr("species"));
}

}  // namespace
}  // namespace seqserve
