// Model control through the API, on a real server: Triton's model repository
// extension over HTTP and gRPC, seqserve.v1's ModelRepositoryService over
// gRPC and REST, the refusal under poll control, and admin tokens.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "auth/token_authenticator.h"
#include "frontends/v2/model_repository_extension.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "seqserve/v1/repository.grpc.pb.h"
#include "server/model_server.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/test_certificates.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::HttpCall;
using testing::HttpReply;
using testing::TestRepository;

constexpr char kCallerToken[] = "caller-secret-token-1";
constexpr char kAdminToken[] = "admin-secret-token-1";

std::string Bearer(const char* token) {
  return absl::StrCat("Authorization: Bearer ", token, "\r\n");
}

class ModelControlApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"species", "mammal"}) {
      repository_.AddReferenceVersion(name, 1, name);
      repository_.WriteReferenceConfig(name, name);
    }
  }

  // Explicit control with only species loaded, unless `options` says else.
  void Start(ModelServer::Options options = Explicit()) {
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->http_port();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  static ModelServer::Options Explicit() {
    ModelServer::Options options;
    options.model_control = ModelControlMode::kExplicit;
    options.load_models = {"species"};
    return options;
  }

  // The index as Triton's HTTP endpoint answers it: name -> entry.
  std::map<std::string, nlohmann::json> V2Index(const std::string& body = "") {
    const HttpReply reply = HttpCall(port_, "POST", "/v2/repository/index", body);
    EXPECT_EQ(reply.status, 200) << reply.body;
    std::map<std::string, nlohmann::json> by_name;
    for (const auto& entry : nlohmann::json::parse(reply.body, nullptr, false)) {
      by_name[entry["name"]] = entry;
    }
    return by_name;
  }

  // An HTTP classification of one row by model `name`: its status.
  int Classify(const std::string& name, const std::string& headers = "") {
    return HttpCall(port_, "POST", absl::StrCat("/v1/models/", name, ":classify"),
                    R"({"features": [4, 0, 1]})", headers)
        .status;
  }

  static std::unique_ptr<grpc::ClientContext> Context(const char* token = nullptr) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (token != nullptr) context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    return context;
  }

  TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ModelControlApiTest, TritonsHttpEndpointsIndexLoadAndUnloadAsItsProtocolSays) {
  Start();
  auto index = V2Index();
  ASSERT_EQ(index.size(), 2u);
  EXPECT_EQ(index["species"], nlohmann::json({{"name", "species"}, {"version", "1"},
                                              {"state", "READY"}, {"reason", ""}}));
  // A model not loaded: no version, unavailable, as Triton lists it.
  EXPECT_EQ(index["mammal"], nlohmann::json({{"name", "mammal"}, {"state", "UNAVAILABLE"},
                                             {"reason", "unloaded"}}));
  EXPECT_EQ(V2Index(R"({"ready": true})").count("mammal"), 0u);
  EXPECT_EQ(Classify("mammal"), 404);

  // A load answers 200 with no body once the model serves.
  HttpReply reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.body, "");
  EXPECT_EQ(V2Index()["mammal"]["state"], "READY");
  EXPECT_EQ(Classify("mammal"), 200);
  EXPECT_EQ(HttpCall(port_, "GET", "/v2/models/mammal/ready").status, 200);

  reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/unload",
                   R"({"parameters": {"unload_dependents": false}})");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(Classify("mammal"), 404);
  EXPECT_EQ(V2Index()["mammal"]["state"], "UNAVAILABLE");

  // Errors in the protocol's shape: {"error": "..."}.
  reply = HttpCall(port_, "POST", "/v2/repository/models/absent/load");
  EXPECT_EQ(reply.status, 404);
  EXPECT_EQ(nlohmann::json::parse(reply.body),
            nlohmann::json({{"error", "model 'absent' is not in the repository"}}));
  reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load",
                   R"({"parameters": {"file:1/model.onnx": "AAAA"}})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("parameter 'file:1/model.onnx' is not supported"));
  reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/unload",
                   R"({"parameters": {"cascade": true}})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("an unload takes only \\\"unload_dependents\\\""));
  // A config is bounded before its JSON is parsed.
  reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load",
                   nlohmann::json({{"parameters",
                                    {{"config", std::string(kMaxLoadConfigBytes + 1, ' ')}}}})
                       .dump());
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("parameter \\\"config\\\" is over 65536 bytes"));
  reply = HttpCall(port_, "POST", "/v2/repository/index", R"({"ready": "yes"})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("\\\"ready\\\" must be a boolean"));
  reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load", "[1,");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("not a JSON object"));
}

TEST_F(ModelControlApiTest, ALoadsConfigParameterStandsInForTheFileUntilTheNextLoad) {
  Start();
  // seqserve's ModelConfig in JSON: other labels for mammal's two classes.
  const std::string config = R"({"labels": ["no", "yes"]})";
  HttpReply reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load",
                             nlohmann::json({{"parameters", {{"config", config}}}}).dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  reply = HttpCall(port_, "POST", "/v1/models/mammal:classify", R"({"features": [4, 0, 1]})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_THAT(reply.body, HasSubstr("\"predicted_label\":\"yes\""));
  // A config that is not one: refused, naming the parameter, and the one
  // before still serves.
  reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load",
                   R"({"parameters": {"config": "{\"labelz\": []}"}})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("parameter \\\"config\\\" is not a seqserve.v1.ModelConfig"));
  reply = HttpCall(port_, "POST", "/v1/models/mammal:classify", R"({"features": [4, 0, 1]})");
  EXPECT_THAT(reply.body, HasSubstr("\"predicted_label\":\"yes\""));
  // A load without one goes back to the file's config and its labels.
  ASSERT_EQ(HttpCall(port_, "POST", "/v2/repository/models/mammal/load").status, 200);
  reply = HttpCall(port_, "POST", "/v1/models/mammal:classify", R"({"features": [4, 0, 1]})");
  EXPECT_THAT(reply.body, HasSubstr("\"predicted_label\":\"mammal\""));
}

TEST_F(ModelControlApiTest, TritonsGrpcMethodsIndexLoadAndUnload) {
  Start();
  auto stub = inference::GRPCInferenceService::NewStub(channel_);
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(stub->RepositoryIndex(Context().get(), {}, &index).ok());
  ASSERT_EQ(index.models_size(), 2);
  EXPECT_EQ(index.models(0).name(), "mammal");
  EXPECT_EQ(index.models(0).version(), "");
  EXPECT_EQ(index.models(0).state(), "UNAVAILABLE");
  EXPECT_EQ(index.models(1).name(), "species");
  EXPECT_EQ(index.models(1).state(), "READY");

  inference::RepositoryModelLoadRequest load;
  load.set_model_name("mammal");
  inference::RepositoryModelLoadResponse loaded;
  grpc::Status status = stub->RepositoryModelLoad(Context().get(), load, &loaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  inference::ModelReadyRequest ready_request;
  ready_request.set_name("mammal");
  inference::ModelReadyResponse ready;
  ASSERT_TRUE(stub->ModelReady(Context().get(), ready_request, &ready).ok());
  EXPECT_TRUE(ready.ready());

  (*load.mutable_parameters())["config"].set_bool_param(true);
  status = stub->RepositoryModelLoad(Context().get(), load, &loaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("parameter \"config\" must be a string"));

  inference::RepositoryModelUnloadRequest unload;
  unload.set_model_name("mammal");
  inference::RepositoryModelUnloadResponse unloaded;
  ASSERT_TRUE(stub->RepositoryModelUnload(Context().get(), unload, &unloaded).ok());
  ASSERT_TRUE(stub->ModelReady(Context().get(), ready_request, &ready).ok());
  EXPECT_FALSE(ready.ready());
  status = stub->RepositoryModelUnload(Context().get(), unload, &unloaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "model 'mammal' is not loaded");
}

TEST_F(ModelControlApiTest, AFailedLoadLeavesTheServingVersionAndSaysWhy) {
  Start();
  auto stub = v1::ModelRepositoryService::NewStub(channel_);
  // A new version that is no model: the load fails, version 1 serves on.
  repository_.WriteFile("species/2/model.onnx", "not a model");
  v1::LoadModelRequest load;
  load.set_model("species");
  v1::LoadModelResponse loaded;
  grpc::Status status = stub->LoadModel(Context().get(), load, &loaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("model 'species' failed to load"));
  EXPECT_THAT(status.error_message(), HasSubstr("still serving version 1"));
  EXPECT_EQ(Classify("species"), 200);
  HttpReply reply = HttpCall(port_, "POST", "/v2/repository/models/species/load");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("still serving version 1"));

  // Mended, the same call loads it (the highest version serves) and
  // answers with the versions.
  repository_.Remove("species/2/model.onnx");
  repository_.AddReferenceVersion("species", 2, "species");
  status = stub->LoadModel(Context().get(), load, &loaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(loaded.status().versions_size(), 1);
  EXPECT_EQ(loaded.status().versions(0).version(), 2);
  EXPECT_EQ(loaded.status().versions(0).state(), v1::MODEL_STATE_AVAILABLE);

  v1::RepositoryIndexRequest ready_only;
  ready_only.set_ready(true);
  v1::RepositoryIndexResponse index;
  ASSERT_TRUE(stub->RepositoryIndex(Context().get(), ready_only, &index).ok());
  ASSERT_EQ(index.entries_size(), 1);
  EXPECT_EQ(index.entries(0).model(), "species");
  EXPECT_EQ(index.entries(0).version(), 2);
}

TEST_F(ModelControlApiTest, SeqservesRestRoutesLoadWithAConfigAndUnload) {
  Start();
  HttpReply reply = HttpCall(port_, "POST", "/v1/models/mammal:load",
                             R"({"config": {"labels": ["no", "yes"]}})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto loaded = nlohmann::json::parse(reply.body);
  EXPECT_EQ(loaded["status"]["name"], "mammal");
  EXPECT_EQ(loaded["status"]["versions"][0]["state"], "MODEL_STATE_AVAILABLE");
  reply = HttpCall(port_, "POST", "/v1/repository/index", "");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(nlohmann::json::parse(reply.body)["entries"].size(), 2u);
  reply = HttpCall(port_, "POST", "/v1/models/mammal:unload", R"({"model": "species"})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("the body names model 'species' but the path names 'mammal'"));
  reply = HttpCall(port_, "POST", "/v1/models/mammal:unload");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.body, "{}");
  EXPECT_EQ(Classify("mammal"), 404);
}

TEST_F(ModelControlApiTest, PollingServersRefuseControlCallsNamingTheFlag) {
  ModelServer::Options options;  // poll, the default
  Start(options);
  const std::string why =
      "needs --model_control_mode=explicit; this server runs with --model_control_mode=poll";
  HttpReply reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr(why));
  reply = HttpCall(port_, "POST", "/v1/models/mammal:unload");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("FAILED_PRECONDITION"));
  inference::RepositoryModelUnloadRequest unload;
  unload.set_model_name("mammal");
  inference::RepositoryModelUnloadResponse unloaded;
  const grpc::Status status = inference::GRPCInferenceService::NewStub(channel_)
                                  ->RepositoryModelUnload(Context().get(), unload, &unloaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr(why));
  // Reading the index is no control: it answers in every mode.
  EXPECT_EQ(V2Index()["mammal"]["state"], "READY");
  EXPECT_EQ(Classify("mammal"), 200);
}

TEST_F(ModelControlApiTest, AdminTokensAloneLoadAndUnload) {
  testing::TestCertificates dir;
  testing::ReplaceFile(dir.Path("tokens.txt"), absl::StrCat("caller:", kCallerToken, "\n"));
  testing::ReplaceFile(dir.Path("admins.txt"), absl::StrCat("ops:", kAdminToken, "\n"));
  auto tokens = TokenAuthenticator::Start({dir.Path("tokens.txt"), absl::ZeroDuration()});
  auto admins = TokenAuthenticator::Start({dir.Path("admins.txt"), absl::ZeroDuration()});
  ASSERT_TRUE(tokens.ok() && admins.ok());
  ModelServer::Options options = Explicit();
  options.authenticator = tokens->get();
  options.admin_authenticator = admins->get();
  options.access_log = dir.Path("access.log");
  Start(options);

  // No token: 401; a caller's token: 403, saying what is needed.
  HttpReply reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load");
  EXPECT_EQ(reply.status, 401);
  reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/load", "", Bearer(kCallerToken));
  EXPECT_EQ(reply.status, 403);
  EXPECT_THAT(reply.body, HasSubstr("needs a token of --admin_tokens_file"));
  reply = HttpCall(port_, "POST", "/v1/models/mammal:load", "", Bearer(kCallerToken));
  EXPECT_EQ(reply.status, 403);
  v1::LoadModelRequest load;
  load.set_model("mammal");
  v1::LoadModelResponse loaded;
  auto stub = v1::ModelRepositoryService::NewStub(channel_);
  grpc::Status status = stub->LoadModel(Context(kCallerToken).get(), load, &loaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Classify("mammal", Bearer(kCallerToken)), 404);

  // The index is for callers; an admin's token does everything.
  EXPECT_EQ(HttpCall(port_, "POST", "/v2/repository/index", "", Bearer(kCallerToken)).status,
            200);
  status = stub->LoadModel(Context(kAdminToken).get(), load, &loaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Classify("mammal", Bearer(kCallerToken)), 200);
  EXPECT_EQ(Classify("mammal", Bearer(kAdminToken)), 200);
  reply = HttpCall(port_, "POST", "/v2/repository/models/mammal/unload", "", Bearer(kAdminToken));
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(Classify("mammal", Bearer(kCallerToken)), 404);

  // The access log names who changed what: the admin, and the refused caller.
  server_->Shutdown(absl::Seconds(5));
  std::ifstream log_file(dir.Path("access.log"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(log_file, line);) lines.push_back(line);
  // A line holding both pieces.
  const auto logged = [&lines](const std::string& one, const std::string& other) {
    for (const std::string& line : lines) {
      if (absl::StrContains(line, one) && absl::StrContains(line, other)) return true;
    }
    return false;
  };
  EXPECT_TRUE(logged(R"("caller":"ops")", R"("method":"LoadModel")"));
  EXPECT_TRUE(logged(R"("caller":"ops")", R"("method":"RepositoryModelUnload")"));
  EXPECT_TRUE(logged(R"("code":"PERMISSION_DENIED")", R"("method":"LoadModel")"));
  for (const std::string& line : lines) EXPECT_THAT(line, Not(HasSubstr(kAdminToken)));
}

// With caller tokens and no admin tokens, nobody may load or unload.
TEST_F(ModelControlApiTest, WithoutAdminTokensNoTokenLoads) {
  testing::TestCertificates dir;
  testing::ReplaceFile(dir.Path("tokens.txt"), absl::StrCat("caller:", kCallerToken, "\n"));
  auto tokens = TokenAuthenticator::Start({dir.Path("tokens.txt"), absl::ZeroDuration()});
  ASSERT_TRUE(tokens.ok());
  ModelServer::Options options = Explicit();
  options.authenticator = tokens->get();
  Start(options);
  HttpReply reply = HttpCall(port_, "POST", "/v1/models/mammal:load", "", Bearer(kCallerToken));
  EXPECT_EQ(reply.status, 403);
  EXPECT_THAT(reply.body, HasSubstr("needs a token of --admin_tokens_file (this server has none)"));
  EXPECT_EQ(HttpCall(port_, "POST", "/v1/models/mammal:load").status, 401);
  EXPECT_EQ(HttpCall(port_, "POST", "/v1/repository/index", "", Bearer(kCallerToken)).status,
            200);
}

}  // namespace
}  // namespace seqserve
