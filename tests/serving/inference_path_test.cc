// The protocol-neutral inference path through a real server: the observer
// sees every call once at each end with its code, the authenticator turns
// callers away before any model lookup, the serving state holds a drain that
// begins during the first load, and a shutdown's grace bounds a deep queue.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "serving/serving_state.h"
#include "tests/server/held_slot.h"
#include "tests/support/local_server.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TestRepository;

// Records every call it is told of.
class RecordingObserver : public RequestObserver {
 public:
  void OnStart(const CallRecord& call) override {
    absl::MutexLock lock(&mu_);
    starts_.push_back(call);
  }
  void OnEnd(const CallRecord& call) override {
    absl::MutexLock lock(&mu_);
    ends_.push_back(call);
  }
  std::vector<CallRecord> starts() {
    absl::MutexLock lock(&mu_);
    return starts_;
  }
  std::vector<CallRecord> ends() {
    absl::MutexLock lock(&mu_);
    return ends_;
  }

 private:
  absl::Mutex mu_;
  std::vector<CallRecord> starts_ ABSL_GUARDED_BY(mu_);
  std::vector<CallRecord> ends_ ABSL_GUARDED_BY(mu_);
};

// Lets in callers with the bearer token "let-me-in".
class TokenAuthenticator : public Authenticator {
 public:
  absl::Status Check(const CallerCredentials& caller) const override {
    if (caller.bearer_token.empty()) return absl::UnauthenticatedError("no bearer token");
    if (caller.bearer_token != "let-me-in") {
      return absl::PermissionDeniedError("this token may not call");
    }
    return absl::OkStatus();
  }
};

class InferencePathTest : public ::testing::Test {
 protected:
  void Start(ModelServer::Options options) {
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Classifier::NewStub(channel_);
  }

  grpc::Status Classify(const std::string& model, std::vector<float> features, uint32_t rows,
                        const std::string& token = "") {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    v1::ClassifyRequest request;
    request.set_model(model);
    request.mutable_features()->Add(features.begin(), features.end());
    request.set_rows(rows);
    v1::ClassifyResponse response;
    return stub_->Classify(&context, request, &response);
  }

  TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

TEST_F(InferencePathTest, TheObserverSeesEachCallOnceAtEachEndWithItsCode) {
  repository_.AddReferenceVersion("species", 1, "species");
  RecordingObserver observer;
  ModelServer::Options options;
  options.max_request_rows = 2;
  options.observer = &observer;
  Start(options);

  EXPECT_TRUE(Classify("species", {4, 0, 1}, 1).ok());
  EXPECT_EQ(Classify("unicorn", {4, 0, 1}, 1).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Classify("species", {4, 0}, 1).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Classify("species", std::vector<float>(9, 1.0f), 3).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  {  // a body that does not parse
    grpc::GenericStub generic(channel_);
    grpc::ClientContext context;
    grpc::Slice slice(std::string("\xff\xff\xff", 3));
    grpc::ByteBuffer request(&slice, 1), response;
    absl::Notification done;
    grpc::Status status;
    generic.UnaryCall(&context, "/seqserve.v1.Classifier/Classify", grpc::StubOptions(),
                      &request, &response, [&](grpc::Status s) {
                        status = std::move(s);
                        done.Notify();
                      });
    done.WaitForNotification();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    v1::ListModelsResponse response;
    EXPECT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &response).ok());
  }
  {
    grpc::ClientContext context;
    v1::GetModelMetadataRequest request;
    request.set_model("unicorn");
    v1::GetModelMetadataResponse response;
    EXPECT_EQ(stub_->GetModelMetadata(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }

  const auto starts = observer.starts();
  const auto ends = observer.ends();
  ASSERT_EQ(starts.size(), 7u);
  ASSERT_EQ(ends.size(), 7u);
  std::vector<absl::StatusCode> codes;
  std::vector<std::string> methods;
  for (const CallRecord& end : ends) {
    codes.push_back(end.code);
    methods.push_back(end.method);
    EXPECT_EQ(end.protocol, "grpc");
  }
  EXPECT_THAT(codes, ElementsAre(absl::StatusCode::kOk, absl::StatusCode::kNotFound,
                                 absl::StatusCode::kInvalidArgument,
                                 absl::StatusCode::kResourceExhausted,
                                 absl::StatusCode::kInvalidArgument, absl::StatusCode::kOk,
                                 absl::StatusCode::kNotFound));
  EXPECT_THAT(methods, ElementsAre("Classify", "Classify", "Classify", "Classify", "Classify",
                                   "ListModels", "GetModelMetadata"));
  // The call that ran knows its model, version, rows and pass.
  EXPECT_EQ(ends[0].model, "species");
  EXPECT_EQ(ends[0].version, 1);
  EXPECT_EQ(ends[0].rows, 1u);
  EXPECT_EQ(ends[0].batch_rows, 1u);
  EXPECT_GT(ends[0].duration, absl::ZeroDuration());
  EXPECT_EQ(ends[1].model, "unicorn");
  EXPECT_EQ(ends[1].version, 0);
  EXPECT_EQ(server_->calls_in_flight(), 0);
}

TEST_F(InferencePathTest, TheAuthenticatorTurnsCallersAwayBeforeAnyLookup) {
  repository_.AddReferenceVersion("species", 1, "species");
  TokenAuthenticator authenticator;
  RecordingObserver observer;
  ModelServer::Options options;
  options.authenticator = &authenticator;
  options.observer = &observer;
  Start(options);
  // An unknown model is not even looked up: the caller learns nothing.
  auto status = Classify("unicorn", {4, 0, 1}, 1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("no bearer token"));
  EXPECT_EQ(Classify("unicorn", {4, 0, 1}, 1, "wrong").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Classify("unicorn", {4, 0, 1}, 1, "let-me-in").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Classify("species", {4, 0, 1}, 1, "let-me-in").ok());
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  EXPECT_EQ(stub_->ListModels(&context, v1::ListModelsRequest(), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(response.models_size(), 0);
  EXPECT_EQ(server_->inference_stats().requests, 1u);  // only the admitted call ran
}

TEST_F(InferencePathTest, ModelReadinessSaysWhyAModelCannotAnswer) {
  repository_.AddReferenceVersion("species", 1, "species");
  repository_.WriteFile("broken/1/model.onnx", "not onnx");
  Start({});
  InferenceService& inference = server_->inference();
  EXPECT_TRUE(inference.ModelReady("species", 0).ok());
  EXPECT_TRUE(inference.ModelReady("species", 1).ok());
  EXPECT_EQ(inference.ModelReady("species", 2).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inference.ModelReady("unicorn", 0).code(), absl::StatusCode::kNotFound);
  const absl::Status broken = inference.ModelReady("broken", 0);
  EXPECT_EQ(broken.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(broken.message()), HasSubstr("not an ONNX model"));
}

// A text model big enough that parsing it takes a while.
std::string SlowModel() {
  constexpr int kHidden = 400000;
  std::string text = "input_width: 3\nlayers { linear { in_features: 3 out_features: ";
  absl::StrAppend(&text, kHidden, " weight: [");
  for (int i = 0; i < 3 * kHidden; ++i) absl::StrAppend(&text, i ? ",0.001" : "0.001");
  absl::StrAppend(&text, "] } }\nlayers { linear { in_features: ", kHidden,
                  " out_features: 1 weight: [");
  for (int i = 0; i < kHidden; ++i) absl::StrAppend(&text, i ? ",0.001" : "0.001");
  absl::StrAppend(&text, "] } }\nhead: HEAD_SIGMOID\n");
  return text;
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(grpc::Channel* channel) {
  auto health = grpc::health::v1::Health::NewStub(
      std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_TRUE(health->Check(&context, {}, &response).ok());
  return response.status();
}

// A drain that begins while the first load runs (SIGTERM at start-up)
// holds: the load's end neither turns health SERVING nor starts polling.
TEST_F(InferencePathTest, ADrainDuringTheFirstLoadHolds) {
  repository_.WriteFile("slow/1/model.textproto", SlowModel());
  ModelServer::Options options;
  options.address = "127.0.0.1:0";
  options.model_repository = repository_.root();
  options.poll_interval = absl::Milliseconds(20);
  auto server = ModelServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_EQ((*server)->state().phase(), ServingState::Phase::kLoading)
      << "the first load ended before the drain: make the model slower";
  (*server)->StartDraining();
  (*server)->WaitUntilReady();
  EXPECT_EQ((*server)->state().phase(), ServingState::Phase::kDraining);
  EXPECT_FALSE((*server)->state().ready());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(Health(channel.get()), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  // No poller: a new model is not picked up.
  repository_.AddReferenceVersion("species", 1, "species");
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ((*server)->models().Snapshot()->models.count("species"), 0u);
  EXPECT_EQ(Health(channel.get()), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

// The grace period bounds a shutdown: a deep queue is answered
// UNAVAILABLE (retryable elsewhere) without running once it ends, instead
// of being computed first. The only inference slot is held throughout, so
// nothing queued could run even on a fast machine.
TEST_F(InferencePathTest, TheShutdownGraceBoundsADeepQueue) {
  repository_.AddReferenceVersion("species", 1, "species");
  ModelServer::Options options;
  options.inference.threads = 1;
  Start(options);
  auto species = server_->models().Find("species", 0);
  ASSERT_TRUE(species.ok());
  testing::HeldSlot slot(server_->runner(), *species);
  const std::vector<float> row = {4, 0, 1};
  constexpr int kCalls = 300;
  struct Call {
    grpc::ClientContext context;
    v1::ClassifyRequest request;
    v1::ClassifyResponse response;
    grpc::Status status;
    absl::Notification done;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<Call>();
    call->request.set_model("species");
    call->request.mutable_features()->Add(row.begin(), row.end());
    call->request.set_rows(1);
    Call* raw = call.get();
    stub_->async()->Classify(&raw->context, &raw->request, &raw->response,
                             [raw](grpc::Status status) {
                               raw->status = std::move(status);
                               raw->done.Notify();
                             });
    calls.push_back(std::move(call));
  }
  for (int i = 0; i < 1000 && server_->calls_in_flight() < kCalls; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(server_->calls_in_flight(), kCalls);
  const auto before = server_->inference_stats();
  server_->Shutdown(absl::Milliseconds(100));  // returns with the slot still held
  slot.Release();
  const auto after = server_->inference_stats();
  EXPECT_EQ(after.passes, before.passes);  // the holder's pass was counted before
  EXPECT_EQ(after.cancelled - before.cancelled, static_cast<uint64_t>(kCalls));
  for (auto& call : calls) {
    ASSERT_TRUE(call->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    // Which of the two comes first is a race between gRPC's cancellation
    // and the runner's; either way nothing ran.
    EXPECT_TRUE(call->status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                call->status.error_code() == grpc::StatusCode::CANCELLED)
        << call->status.error_code() << ": " << call->status.error_message();
  }
  EXPECT_EQ(server_->state().phase(), ServingState::Phase::kStopped);
}

TEST(ServingStateTest, ReadinessFollowsPhaseAndModels) {
  std::vector<bool> published;
  ServingState state([&](bool ready) { published.push_back(ready); });
  EXPECT_FALSE(state.ready());
  state.SetHasModels(true);  // still loading
  EXPECT_FALSE(state.ready());
  bool started = false;
  EXPECT_TRUE(state.FinishLoading([&] { started = true; }));
  EXPECT_TRUE(started);
  EXPECT_TRUE(state.ready());
  state.SetHasModels(false);
  EXPECT_FALSE(state.ready());
  state.SetHasModels(true);
  EXPECT_TRUE(state.StartDraining());
  EXPECT_FALSE(state.StartDraining());
  state.SetHasModels(true);
  EXPECT_FALSE(state.ready());
  state.Stop();
  EXPECT_EQ(state.phase(), ServingState::Phase::kStopped);
  EXPECT_THAT(published, ElementsAre(false, true, false, true, false));
}

TEST(ServingStateTest, ADrainBeforeTheLoadEndsIsKept) {
  ServingState state(nullptr);
  state.SetHasModels(true);
  EXPECT_TRUE(state.StartDraining());
  bool started = false;
  EXPECT_FALSE(state.FinishLoading([&] { started = true; }));
  EXPECT_FALSE(started);
  EXPECT_EQ(state.phase(), ServingState::Phase::kDraining);
  EXPECT_FALSE(state.ready());
}

}  // namespace
}  // namespace seqserve
