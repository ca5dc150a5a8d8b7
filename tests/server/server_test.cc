// The server end to end: a real ModelServer on a free port, a real channel,
// the generated stubs. Every RPC, every output mode against PyTorch's
// numbers, every error code, health, reflection, hot reload under load and
// graceful shutdown with calls in flight.
#include "server/model_server.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/file_util.h"
#include "core/onnx_loader.h"
#include "serving/output_mode.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "tests/server/held_slot.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/reference_data.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::TestRepository;

constexpr const char* kReferenceModels[] = {
    "mammal", "species", "deep_tanh_leaky_elu", "multilabel_logits",
    "extreme_logits", "opset17_binary_softmax"};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kReferenceModels) {
      repository_.AddReferenceVersion(name, 1, name);
      repository_.WriteReferenceConfig(name, name);
    }
  }

  void StartServer(absl::Duration poll = absl::ZeroDuration(),
                   int max_message_bytes = 4 * 1024 * 1024, int inference_threads = 0,
                   uint64_t max_buffered_request_bytes =
                       ModelServer::Options{}.max_buffered_request_bytes) {
    ModelServer::Options options;
    options.max_buffered_request_bytes = max_buffered_request_bytes;
    options.inference.threads = inference_threads;
    options.address = "127.0.0.1:0";
    options.model_repository = repository_.root();
    options.poll_interval = poll;
    options.max_request_rows = 1000;
    options.max_message_bytes = max_message_bytes;
    auto server = ModelServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    server_->WaitUntilReady();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Classifier::NewStub(channel_);
  }

  grpc::Status Classify(const v1::ClassifyRequest& request,
                        v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Classify(&context, request, response);
  }

  static v1::ClassifyRequest Request(const std::string& model,
                                     const std::vector<float>& features,
                                     uint32_t rows) {
    v1::ClassifyRequest request;
    request.set_model(model);
    request.mutable_features()->Add(features.begin(), features.end());
    request.set_rows(rows);
    return request;
  }

  void ExpectError(const v1::ClassifyRequest& request, grpc::StatusCode code,
                   const std::string& fragment) {
    v1::ClassifyResponse response;
    const grpc::Status status = Classify(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(fragment));
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health(
      const std::string& service = "") {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = health->Check(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

TEST_F(ServerTest, EveryOutputModeMatchesPyTorch) {
  StartServer();
  for (const char* name : kReferenceModels) {
    auto reference = testing::LoadReference(name);
    ASSERT_TRUE(reference.ok()) << reference.status();
    const std::pair<v1::OutputMode, const std::vector<float>*> modes[] = {
        {v1::OUTPUT_MODE_DEFAULT, &reference->output},
        {v1::OUTPUT_MODE_LOGITS, &reference->logits},
        {v1::OUTPUT_MODE_SIGMOID, &reference->sigmoid},
        {v1::OUTPUT_MODE_SOFTMAX, &reference->softmax}};
    for (const auto& [mode, expected] : modes) {
      if (mode == v1::OUTPUT_MODE_SOFTMAX && reference->output_width == 1) continue;
      auto request = Request(name, reference->inputs, reference->rows);
      request.set_output(mode);
      v1::ClassifyResponse response;
      const grpc::Status status = Classify(request, &response);
      ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
      EXPECT_EQ(response.model(), name);
      EXPECT_EQ(response.version(), 1);
      ASSERT_EQ(response.results_size(), static_cast<int>(reference->rows));
      std::vector<float> scores;
      for (const auto& row : response.results()) {
        scores.insert(scores.end(), row.scores().begin(), row.scores().end());
      }
      EXPECT_EQ(testing::FirstMismatch(scores, *expected), -1)
          << name << " mode " << v1::OutputMode_Name(mode);
    }
  }
}

TEST_F(ServerTest, BatchedAnswersEqualUnbatchedOnesUnderConcurrency) {
  // One inference thread and eight callers: requests queue and get stacked
  // into shared forward passes. Every row's scores must have the bits of
  // that row sent alone to the model in this process, whatever calls shared
  // its pass, in every output mode.
  StartServer(absl::ZeroDuration(), 4 * 1024 * 1024, /*inference_threads=*/1);
  auto reference = testing::LoadReference("deep_tanh_leaky_elu");
  ASSERT_TRUE(reference.ok());
  auto local = LoadOnnxModel(reference->onnx_path);
  ASSERT_TRUE(local.ok());
  const size_t in = reference->input_width;
  const v1::OutputMode modes[] = {v1::OUTPUT_MODE_LOGITS, v1::OUTPUT_MODE_SIGMOID,
                                  v1::OUTPUT_MODE_SOFTMAX, v1::OUTPUT_MODE_LOG_SOFTMAX,
                                  v1::OUTPUT_MODE_DEFAULT};
  std::atomic<int> mismatches{0}, failures{0};
  std::atomic<size_t> rows_checked{0};
  std::string first_mismatch;
  absl::Mutex mu;
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::uniform_real_distribution<float> uniform(-3.0f, 3.0f);
      for (int i = 0; i < 60; ++i) {
        const uint32_t rows = 1 + rng() % 12;
        std::vector<float> features(rows * in);
        for (float& v : features) v = uniform(rng);
        auto request = Request("deep_tanh_leaky_elu", features, rows);
        request.set_output(modes[rng() % std::size(modes)]);
        v1::ClassifyResponse response;
        if (!Classify(request, &response).ok() || response.results_size() != static_cast<int>(rows)) {
          ++failures;
          continue;
        }
        const Head head = request.output() == v1::OUTPUT_MODE_DEFAULT
                              ? Head::kSoftmax
                              : *HeadForOutputMode(request.output());
        for (uint32_t r = 0; r < rows; ++r) {
          auto alone = (*local)->Predict(absl::MakeConstSpan(features).subspan(r * in, in), 1,
                                         head);
          const auto& got = response.results(r).scores();
          if (!alone.ok() || got.size() != static_cast<int>(alone->size()) ||
              std::memcmp(got.data(), alone->data(), alone->size() * sizeof(float)) != 0) {
            absl::MutexLock lock(&mu);
            if (mismatches++ == 0 && alone.ok() && !got.empty()) {
              first_mismatch = absl::StrCat(v1::OutputMode_Name(request.output()), " row ", r,
                                            " of ", rows, ": ", absl::StrFormat("%.9g", got[0]),
                                            "... alone ",
                                            absl::StrFormat("%.9g", (*alone)[0]), "...");
            }
          }
          ++rows_checked;
        }
      }
    });
  }
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(mismatches, 0) << first_mismatch;
  const auto stats = server_->inference_stats();
  EXPECT_GE(stats.requests, 480u);
  EXPECT_EQ(stats.rows, rows_checked.load());
  // Passes that stacked several calls: without them this checks nothing.
  // (Measured: about 230 passes for the 480 calls.)
  EXPECT_LE(stats.passes * 4, stats.requests * 3)
      << stats.passes << " passes for " << stats.requests << " calls: too few were stacked";
}

TEST_F(ServerTest, ClassifyAnswersWithLabelsAndTopK) {
  StartServer();
  auto request = Request("species", {4, 0, 1, 2, 1, 0, 0, 1, 0}, 3);
  request.set_top_k(3);
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify(request, &response).ok());
  EXPECT_EQ(response.output(), v1::OUTPUT_MODE_SOFTMAX);
  ASSERT_EQ(response.results_size(), 3);
  EXPECT_EQ(response.results(0).predicted_label(), "mammal");
  EXPECT_EQ(response.results(1).predicted_label(), "bird");
  EXPECT_EQ(response.results(2).predicted_label(), "reptile");
  EXPECT_EQ(response.results(2).top_k_size(), 3);
  EXPECT_EQ(response.results(2).top_k(0).label(), "reptile");

  v1::ClassifyResponse binary;
  ASSERT_TRUE(Classify(Request("mammal", {4, 0, 1, 2, 1, 0}, 2), &binary).ok());
  EXPECT_EQ(binary.output(), v1::OUTPUT_MODE_SIGMOID);
  EXPECT_EQ(binary.results(0).predicted_label(), "mammal");
  EXPECT_EQ(binary.results(1).predicted_label(), "not mammal");
}

TEST_F(ServerTest, BadRequestsGetTheRightCodes) {
  StartServer();
  ExpectError(Request("unicorn", {1, 2, 3}, 1), grpc::StatusCode::NOT_FOUND,
              "model 'unicorn' is not served");
  auto versioned = Request("species", {1, 2, 3}, 1);
  versioned.set_version(9);
  ExpectError(versioned, grpc::StatusCode::NOT_FOUND, "has no version 9");
  ExpectError(Request("species", {1, 2, 3, 4}, 1), grpc::StatusCode::INVALID_ARGUMENT,
              "takes 3 features per row");
  ExpectError(Request("species", {}, 0), grpc::StatusCode::INVALID_ARGUMENT,
              "empty batch");
  ExpectError(Request("species", {1, std::nanf(""), 3}, 1),
              grpc::StatusCode::INVALID_ARGUMENT, "NaN or Inf");
  auto top = Request("species", {1, 2, 3}, 1);
  top.set_top_k(5);
  ExpectError(top, grpc::StatusCode::INVALID_ARGUMENT, "top_k 5");
  auto softmax = Request("mammal", {1, 2, 3}, 1);
  softmax.set_output(v1::OUTPUT_MODE_SOFTMAX);
  ExpectError(softmax, grpc::StatusCode::INVALID_ARGUMENT, "ask for sigmoid");
  auto mode = Request("species", {1, 2, 3}, 1);
  mode.set_output(static_cast<v1::OutputMode>(42));
  ExpectError(mode, grpc::StatusCode::INVALID_ARGUMENT, "unknown output mode 42");
  ExpectError(Request("species", std::vector<float>(3 * 1001, 1.0f), 1001),
              grpc::StatusCode::RESOURCE_EXHAUSTED, "over the limit of 1000 rows");
}

TEST_F(ServerTest, AMessageOverTheSizeLimitIsResourceExhausted) {
  StartServer(absl::ZeroDuration(), 64 * 1024);
  ExpectError(Request("species", std::vector<float>(3 * 9000, 1.0f), 9000),
              grpc::StatusCode::RESOURCE_EXHAUSTED, "");
  v1::ClassifyResponse response;
  EXPECT_TRUE(Classify(Request("species", {4, 0, 1}, 1), &response).ok());
}

// A valid call padded with an unknown field of `bytes` bytes, which the
// server parses past.
v1::ClassifyRequest PaddedRequest(size_t bytes) {
  v1::ClassifyRequest request;
  request.set_model("species");
  for (float value : {4.0f, 0.0f, 1.0f}) request.add_features(value);
  request.set_rows(1);
  request.GetReflection()->MutableUnknownFields(&request)->AddLengthDelimited(
      1000, std::string(bytes, 'x'));
  return request;
}

TEST_F(ServerTest, AMessageFarPastTheBufferedBytesLimitIsRefusedAndTheServerGoesOn) {
  StartServer(absl::ZeroDuration(), 16 << 20, 0, /*max_buffered_request_bytes=*/1 << 20);
  v1::ClassifyResponse response;
  const grpc::Status status = Classify(PaddedRequest(8 << 20), &response);
  // gRPC's transport resets the call or, under more pressure, closes the
  // connection; either is retryable, neither is an answer.
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              status.error_code() == grpc::StatusCode::UNAVAILABLE)
      << status.error_code() << ": " << status.error_message();
  // The server goes on answering small calls, on a new connection too
  // (retried a while: gRPC frees the refused call's memory asynchronously).
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                 grpc::InsecureChannelCredentials());
  stub_ = v1::Classifier::NewStub(channel_);
  grpc::Status small;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  do {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    small = stub_->Classify(&context, Request("species", {4, 0, 1}, 1), &response);
  } while (!small.ok() && absl::Now() < give_up);
  ASSERT_TRUE(small.ok()) << small.error_message();
  EXPECT_EQ(response.results(0).predicted_label(), "mammal");
}

TEST_F(ServerTest, WithoutTheBufferedBytesLimitTheSameMessageIsAnswered) {
  StartServer(absl::ZeroDuration(), 16 << 20, 0, /*max_buffered_request_bytes=*/0);
  v1::ClassifyResponse response;
  const grpc::Status status = Classify(PaddedRequest(8 << 20), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.results(0).predicted_label(), "mammal");
}

TEST_F(ServerTest, AModelWithNoLoadableVersionIsUnavailable) {
  repository_.WriteFile("broken/1/model.onnx", "not onnx");
  StartServer();
  ExpectError(Request("broken", {1}, 1), grpc::StatusCode::UNAVAILABLE,
              "has no loadable version");
}

TEST_F(ServerTest, AnAddressThatCannotBeBoundFailsToStart) {
  ModelServer::Options options;
  options.address = "256.0.0.1:0";
  options.model_repository = repository_.root();
  auto server = ModelServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("cannot listen on 256.0.0.1:0"));
}

TEST_F(ServerTest, APortInUseFailsToStart) {
  StartServer();
  ModelServer::Options options;
  options.address = absl::StrCat("127.0.0.1:", server_->port());
  options.model_repository = repository_.root();
  auto second = ModelServer::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", server_->port(),
                                     ": the port is in use by another process")));
}

// The server's own check: a call whose deadline passes while it waits for
// a forward pass is answered without running (the runner counts it).
TEST_F(ServerTest, ACallWhoseDeadlinePassesWhileQueuedIsNotRun) {
  StartServer(absl::ZeroDuration(), 4 * 1024 * 1024, /*inference_threads=*/1);
  // Hold the only slot with a pass whose callback waits.
  auto species = server_->models().Find("species", 0);
  ASSERT_TRUE(species.ok());
  testing::HeldSlot slot(server_->runner(), *species);
  const auto before = server_->inference_stats();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  v1::ClassifyResponse response;
  const grpc::Status status =
      stub_->Classify(&context, Request("species", {4, 0, 1}, 1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server's clock started when the call arrived, a little after the
  // client's: let its deadline pass too before the slot frees.
  absl::SleepFor(absl::Milliseconds(200));
  slot.Release();
  // The queued call is answered once the slot frees: poll for its count.
  for (int i = 0; i < 1000 && server_->inference_stats().expired == before.expired; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const auto after = server_->inference_stats();
  EXPECT_EQ(after.expired - before.expired, 1u);
  EXPECT_EQ(after.rows, before.rows);
}

TEST_F(ServerTest, RowsWhoseScoresOverflowAreInvalidNotNaN) {
  StartServer();
  ExpectError(Request("species", {4, 0, 1, -3e38f, 1, 1}, 2),
              grpc::StatusCode::INVALID_ARGUMENT, "row 1 gives scores that are not finite");
}

TEST_F(ServerTest, ClientTextInMessagesIsEscaped) {
  StartServer();
  ExpectError(Request(std::string("bad\0name\xe2\x80\xae", 11), {1, 2, 3}, 1),
              grpc::StatusCode::NOT_FOUND, "model 'bad\\x00name\\xe2\\x80\\xae' is not served");
  v1::ClassifyResponse response;
  const grpc::Status status = Classify(Request(std::string(5000, 'x'), {1, 2, 3}, 1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(status.error_message().size(), 200u);
}

// Bytes that are not the method's message: random bytes, a truncated
// message, invalid UTF-8 in a string field.
TEST_F(ServerTest, UnparseableRequestBodiesAreInvalidArgument) {
  StartServer();
  std::string valid = Request("species", {4, 0, 1}, 1).SerializeAsString();
  std::string bad_utf8;
  {
    v1::ClassifyRequest request = Request("species", {4, 0, 1}, 1);
    request.set_model("x");
    bad_utf8 = request.SerializeAsString();
    bad_utf8[bad_utf8.find('x')] = '\xff';
  }
  const struct {
    const char* method;
    std::string body;
  } cases[] = {
      {"/seqserve.v1.Classifier/Classify", "\xff\xff\xff\xff\x0f"},
      {"/seqserve.v1.Classifier/Classify", valid.substr(0, valid.size() - 3)},
      {"/seqserve.v1.Classifier/Classify", bad_utf8},
      {"/seqserve.v1.Classifier/GetModelMetadata", "\x0a\x10" "abc"},
      {"/seqserve.v1.Classifier/ListModels", "\xff"},
  };
  grpc::GenericStub generic(channel_);
  for (const auto& c : cases) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice slice(c.body);
    grpc::ByteBuffer request(&slice, 1), response;
    absl::Notification done;
    grpc::Status status;
    generic.UnaryCall(&context, c.method, grpc::StubOptions(), &request, &response,
                      [&](grpc::Status s) {
                        status = std::move(s);
                        done.Notify();
                      });
    done.WaitForNotification();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.method << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("request body is not a valid seqserve.v1."))
        << c.method;
  }
  // The server goes on answering.
  v1::ClassifyResponse response;
  EXPECT_TRUE(Classify(Request("species", {4, 0, 1}, 1), &response).ok());
}

TEST_F(ServerTest, AMissingRepositoryFailsToStart) {
  ModelServer::Options options;
  options.address = "127.0.0.1:0";
  options.model_repository = repository_.root() + "/no-such-dir";
  auto server = ModelServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("no-such-dir"));
}

TEST(ServerHealth, AnEmptyRepositoryIsNotServingUntilAModelLoads) {
  TestRepository repository;
  ModelServer::Options options;
  options.address = "127.0.0.1:0";
  options.model_repository = repository.root();
  options.poll_interval = absl::Milliseconds(50);
  auto server = ModelServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->WaitUntilReady();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  auto check = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    EXPECT_TRUE(health->Check(&context, request, &response).ok());
    return response.status();
  };
  using Status = grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(check(), Status::NOT_SERVING);
  repository.AddReferenceVersion("species", 1, "species");
  Status::ServingStatus status = Status::NOT_SERVING;
  for (int i = 0; i < 500 && status != Status::SERVING; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    status = check();
  }
  EXPECT_EQ(status, Status::SERVING);
  // A drain is for good: a later refresh does not bring SERVING back.
  (*server)->StartDraining();
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(check(), Status::NOT_SERVING);
}

TEST_F(ServerTest, MetadataDescribesTheModel) {
  repository_.WriteReferenceConfig("species", "species", "description: 'three kinds'");
  StartServer();
  grpc::ClientContext context;
  v1::GetModelMetadataRequest request;
  request.set_model("species");
  v1::GetModelMetadataResponse response;
  ASSERT_TRUE(stub_->GetModelMetadata(&context, request, &response).ok());
  EXPECT_EQ(response.version(), 1);
  EXPECT_EQ(response.description(), "three kinds");
  EXPECT_EQ(response.input_width(), 3u);
  EXPECT_EQ(response.output_width(), 3u);
  EXPECT_THAT(response.labels(), ::testing::ElementsAre("bird", "mammal", "reptile"));
  EXPECT_THAT(response.layers(),
              ::testing::ElementsAre("Linear(3, 16)", "ReLU", "Linear(16, 3)"));
  EXPECT_EQ(response.default_output(), v1::OUTPUT_MODE_SOFTMAX);
  EXPECT_EQ(response.parameter_count(), 115u);
  ASSERT_EQ(response.versions_size(), 1);
  EXPECT_EQ(response.versions(0).state(), v1::MODEL_STATE_AVAILABLE);

  grpc::ClientContext missing_context;
  request.set_model("unicorn");
  EXPECT_EQ(stub_->GetModelMetadata(&missing_context, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// What a version is served with: the config's values where it sets them,
// the server's elsewhere.
TEST_F(ServerTest, MetadataShowsTheEffectiveLimitsAndBatching) {
  repository_.WriteReferenceConfig(
      "species", "species",
      "max_request_rows: 10 batching { max_batch_rows: 8 max_queue_delay_micros: 250 }");
  StartServer();
  v1::GetModelMetadataRequest request;
  v1::GetModelMetadataResponse response;
  for (const char* model : {"species", "mammal"}) {
    grpc::ClientContext context;
    request.set_model(model);
    ASSERT_TRUE(stub_->GetModelMetadata(&context, request, &response).ok()) << model;
    const v1::ServingLimits& limits = response.limits();
    const bool configured = std::string(model) == "species";
    EXPECT_EQ(limits.max_request_rows(), configured ? 10u : 1000u) << model;
    EXPECT_EQ(limits.max_batch_rows(), configured ? 8u : 256u) << model;
    EXPECT_EQ(limits.max_queue_delay_micros(), configured ? 250u : 0u) << model;
    EXPECT_EQ(limits.max_queued_rows(), 65536u) << model;
    EXPECT_EQ(limits.max_request_memory_bytes(), uint64_t{256} << 20) << model;
  }
}

TEST_F(ServerTest, ListModelsShowsEveryModelAndFailures) {
  repository_.WriteFile("broken/1/model.onnx", "not onnx");
  StartServer();
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  ASSERT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &response).ok());
  std::map<std::string, v1::ModelStatus> models;
  for (const auto& model : response.models()) models[model.name()] = model;
  EXPECT_EQ(models.size(), std::size(kReferenceModels) + 1);
  ASSERT_EQ(models["species"].versions_size(), 1);
  EXPECT_EQ(models["species"].versions(0).state(), v1::MODEL_STATE_AVAILABLE);
  ASSERT_EQ(models["broken"].versions_size(), 1);
  EXPECT_EQ(models["broken"].versions(0).state(), v1::MODEL_STATE_FAILED);
  EXPECT_THAT(models["broken"].versions(0).error(), HasSubstr("not an ONNX model"));
}

TEST_F(ServerTest, HealthIsServingOnceLoadedAndNotServingWhenDraining) {
  StartServer();
  using Status = grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(Health(), Status::SERVING);
  EXPECT_EQ(Health("seqserve.v1.Classifier"), Status::SERVING);
  server_->StartDraining();
  EXPECT_EQ(Health(), Status::NOT_SERVING);
  EXPECT_EQ(Health("seqserve.v1.Classifier"), Status::NOT_SERVING);
  // Draining still answers calls.
  v1::ClassifyResponse response;
  EXPECT_TRUE(Classify(Request("species", {4, 0, 1}, 1), &response).ok());
}

// The drain on SIGTERM: it lasts while calls keep arriving (balancers
// still send), ends once none has arrived for the quiet period, and never
// outlasts its longest.
TEST_F(ServerTest, ADrainLastsWhileCallsArriveAndEndsWhenTheyStop) {
  StartServer();
  const absl::Duration quiet = absl::Seconds(1), calling = absl::Milliseconds(1500);
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  const absl::Time start = absl::Now();
  std::thread caller([&] {
    while (!stop && absl::Now() - start < calling) {
      v1::ClassifyResponse response;
      if (Classify(Request("species", {4, 0, 1}, 1), &response).ok()) ++answered;
    }
  });
  server_->Drain(absl::Seconds(20), quiet);
  const absl::Duration drained = absl::Now() - start;
  stop = true;
  caller.join();
  EXPECT_GT(answered, 0);
  EXPECT_GE(drained, calling);                          // calls kept it going
  EXPECT_LT(drained, calling + quiet + absl::Seconds(5));  // then it ended

  // Calls that never stop: the longest bounds it.
  stop = false;
  std::thread endless([&] {
    while (!stop) {
      v1::ClassifyResponse response;
      Classify(Request("species", {4, 0, 1}, 1), &response);
    }
  });
  const absl::Time again = absl::Now();
  server_->Drain(absl::Milliseconds(700), absl::Seconds(60));
  const absl::Duration bounded = absl::Now() - again;
  stop = true;
  endless.join();
  EXPECT_GE(bounded, absl::Milliseconds(700));
  EXPECT_LT(bounded, absl::Seconds(10));
}

TEST_F(ServerTest, ReflectionListsTheServices) {
  StartServer();
  // The reflection messages are in the generated pool through gRPC's
  // reflection library; build them dynamically and call the stream raw.
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* request_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
  const auto* response_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  ASSERT_NE(request_type, nullptr);
  ASSERT_NE(response_type, nullptr);
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<google::protobuf::Message> request(
      factory->GetPrototype(request_type)->New());
  request->GetReflection()->SetString(
      request.get(), request_type->FindFieldByName("list_services"), "*");
  std::string bytes = request->SerializeAsString();

  grpc::GenericStub generic(channel_);
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = generic.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  void* tag;
  bool ok;
  auto step = [&](int id) {
    EXPECT_TRUE(queue.Next(&tag, &ok));
    EXPECT_EQ(tag, reinterpret_cast<void*>(id));
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer outgoing(&slice, 1);
  call->Write(outgoing, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  grpc::ByteBuffer incoming;
  call->Read(&incoming, reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();

  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(incoming.Dump(&slices).ok());
  std::string received;
  for (const auto& s : slices) received.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<google::protobuf::Message> response(
      factory->GetPrototype(response_type)->New());
  ASSERT_TRUE(response->ParseFromString(received));
  const std::string text = response->DebugString();
  EXPECT_THAT(text, HasSubstr("seqserve.v1.Classifier"));
  EXPECT_THAT(text, HasSubstr("grpc.health.v1.Health"));
}

// A 3-in, 3-out text model whose logits are its bias: easy to tell apart.
std::string ConstantModel(float first) {
  return absl::StrCat(
      "input_width: 3\n"
      "layers { linear { in_features: 3 out_features: 3 weight: [0,0,0,0,0,0,0,0,0] "
      "bias: [", first, ", 0, 0] } }\n");
}

TEST_F(ServerTest, HotReloadUnderLoadFailsNoCall) {
  repository_.WriteFile("live/1/model.textproto", ConstantModel(1));
  StartServer(absl::Milliseconds(20));
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failures{0};
  std::atomic<int64_t> last_version{0};
  std::atomic<float> last_logit{0};
  std::string first_failure;
  std::thread client([&] {
    auto request = Request("live", {1, 2, 3}, 1);
    request.set_output(v1::OUTPUT_MODE_LOGITS);
    while (!stop) {
      v1::ClassifyResponse response;
      const grpc::Status status = Classify(request, &response);
      ++calls;
      if (!status.ok()) {
        if (failures++ == 0) first_failure = status.error_message();
        continue;
      }
      last_version = response.version();
      last_logit = response.results(0).scores(0);
    }
  });
  auto wait_for = [&](int64_t version, float logit) {
    for (int i = 0; i < 1000; ++i) {
      if (last_version == version && last_logit == logit) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  EXPECT_TRUE(wait_for(1, 1.0f));
  repository_.WriteFile("live/2/model.textproto", ConstantModel(2));  // new version
  EXPECT_TRUE(wait_for(2, 2.0f));
  repository_.WriteFile("live/2/model.textproto", ConstantModel(3));  // replaced file
  EXPECT_TRUE(wait_for(2, 3.0f));
  repository_.WriteFile("live/3/model.textproto", "garbage {");  // corrupt new version
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(wait_for(2, 3.0f));
  stop = true;
  client.join();
  EXPECT_EQ(failures, 0) << first_failure;
  EXPECT_GT(calls, 10);
}

// Today's exporter keeps weights in model.onnx.data: replacing that file
// alone, under load, serves the new weights without a failed call.
TEST_F(ServerTest, ReplacingOnlyTheDataFileUnderLoadFailsNoCall) {
  const std::string source = testing::ReferenceDir() + "/modern/species_o20_static/";
  auto graph = ReadFileToString(source + "model.onnx", 1 << 20);
  auto weights = ReadFileToString(source + "model.onnx.data", 1 << 20);
  ASSERT_TRUE(graph.ok() && weights.ok());
  repository_.WriteFile("modern/1/model.onnx", *graph);
  std::string data = *weights;
  repository_.WriteFile("modern/1/model.onnx.data", data);
  StartServer(absl::Milliseconds(20));
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failures{0};
  std::atomic<float> last_logit{0};
  std::string first_failure;
  std::thread client([&] {
    auto request = Request("modern", {4, 0, 1}, 1);
    request.set_output(v1::OUTPUT_MODE_LOGITS);
    while (!stop) {
      v1::ClassifyResponse response;
      const grpc::Status status = Classify(request, &response);
      ++calls;
      if (!status.ok()) {
        if (failures++ == 0) first_failure = status.error_message();
        continue;
      }
      last_logit = response.results(0).scores(2);
    }
  });
  auto wait_for = [&](auto done) {
    for (int i = 0; i < 1000 && !done(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  };
  ASSERT_TRUE(wait_for([&] { return calls > 5; }));
  const float before = last_logit;
  // The last bias (the third output's) grows by 1.5.
  float bias;
  std::memcpy(&bias, data.data() + data.size() - 4, 4);
  bias += 1.5f;
  std::memcpy(data.data() + data.size() - 4, &bias, 4);
  repository_.WriteFile("modern/1/model.onnx.data", data);
  EXPECT_TRUE(wait_for([&] { return std::abs(last_logit - (before + 1.5f)) < 1e-4f; }))
      << "before " << before << ", now " << last_logit;
  stop = true;
  client.join();
  EXPECT_EQ(failures, 0) << first_failure;
}

TEST_F(ServerTest, ARemovedModelStopsBeingServed) {
  StartServer(absl::Milliseconds(20));
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify(Request("mammal", {4, 0, 1}, 1), &response).ok());
  repository_.Remove("mammal");
  grpc::Status status;
  for (int i = 0; i < 500; ++i) {
    status = Classify(Request("mammal", {4, 0, 1}, 1), &response);
    if (!status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerTest, ShutdownLetsCallsInFlightFinish) {
  // The only inference slot is held until the shutdown has begun, so every
  // call is in flight then, however fast or slow the machine.
  StartServer(absl::ZeroDuration(), 4 * 1024 * 1024, /*inference_threads=*/1);
  auto species = server_->models().Find("species", 0);
  ASSERT_TRUE(species.ok());
  testing::HeldSlot slot(server_->runner(), *species);

  constexpr int kCalls = 4;
  std::vector<float> rows;
  for (int r = 0; r < 512; ++r) rows.insert(rows.end(), {4, 0, 1});
  const auto request = Request("species", rows, 512);
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::thread> clients;
  for (int i = 0; i < kCalls; ++i) {
    clients.emplace_back([&, i] {
      v1::ClassifyResponse response;
      grpc::ClientContext context;
      statuses[i] = stub_->Classify(&context, request, &response);
      if (statuses[i].ok() && response.results_size() != 512) {
        statuses[i] = grpc::Status(grpc::StatusCode::INTERNAL, "short answer");
      }
    });
  }
  for (int i = 0; i < 3000 && server_->calls_in_flight() < kCalls; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const int in_flight = server_->calls_in_flight();
  std::thread stopper([&] { server_->Shutdown(absl::Seconds(30)); });
  absl::SleepFor(absl::Milliseconds(100));  // the port is closing
  slot.Release();
  stopper.join();
  for (auto& client : clients) client.join();
  EXPECT_EQ(in_flight, kCalls);
  int ok = 0;
  for (const auto& status : statuses) {
    // A call either finished or, arriving after the port closed, was refused.
    if (status.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
          << status.error_message();
    }
  }
  // Every call the server had started finished with its answer.
  EXPECT_GE(ok, in_flight);
  // New calls are refused once the server is down.
  v1::ClassifyResponse response;
  EXPECT_EQ(Classify(Request("species", {4, 0, 1}, 1), &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace seqserve
