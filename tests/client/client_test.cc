// The client library against in-process servers (and, for the async
// lifetime test, seqserve in its own process): results, every error code,
// deadlines, the retry policy, routing past a dead server, round-robin
// spreading and async call lifetime.
#include "client/seqserve_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/model_server.h"
#include "tests/support/reference_data.h"
#include "tests/support/server_process.h"
#include "tests/server/held_slot.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ServerProcess;
using testing::TestRepository;

// One in-process server whose species model carries version `version`, so
// a response tells which server answered.
struct Backend {
  explicit Backend(int64_t version = 1, int inference_threads = 0) {
    repository.AddReferenceVersion("species", version, "species");
    repository.WriteReferenceConfig("species", "species");
    repository.AddReferenceVersion("mammal", 1, "mammal");
    repository.WriteReferenceConfig("mammal", "mammal");
    ModelServer::Options options;
    options.address = "127.0.0.1:0";
    options.model_repository = repository.root();
    options.poll_interval = absl::ZeroDuration();
    options.max_request_rows = 100;
    options.inference.threads = inference_threads;
    auto started = ModelServer::Start(options);
    EXPECT_TRUE(started.ok()) << started.status();
    server = std::move(*started);
    server->WaitUntilReady();
  }
  std::string target() const { return absl::StrCat("127.0.0.1:", server->port()); }

  TestRepository repository;
  std::unique_ptr<ModelServer> server;
};

// A loopback port that refuses connections for as long as this object
// lives: a socket bound to it that never listens. Holding the socket keeps
// the port from the tests that run beside this one (ctest -j); a port that
// was bound and closed could be taken by another server in between. The
// socket sets neither SO_REUSEADDR nor SO_REUSEPORT, so no other socket,
// gRPC's included, can bind the port while it is held.
class DeadPort {
 public:
  DeadPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "cannot hold a loopback port: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(address.sin_port);
  }
  ~DeadPort() {
    if (fd_ >= 0) close(fd_);
  }
  DeadPort(const DeadPort&) = delete;
  DeadPort& operator=(const DeadPort&) = delete;

  int port() const { return port_; }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A stand-in Classifier that refuses its first `failures` Classify calls
// with `code`, then answers; it counts the attempts that reach it and the
// retry header gRPC puts on each.
class FlakyClassifier final : public v1::Classifier::Service {
 public:
  FlakyClassifier(int failures, grpc::StatusCode code) : failures_(failures), code_(code) {}

  grpc::Status Classify(grpc::ServerContext* context, const v1::ClassifyRequest* request,
                        v1::ClassifyResponse* response) override {
    const auto previous = context->client_metadata().find("grpc-previous-rpc-attempts");
    absl::MutexLock lock(&mu_);
    ++attempts_;
    previous_attempts_.push_back(previous == context->client_metadata().end()
                                     ? "none"
                                     : std::string(previous->second.data(),
                                                   previous->second.size()));
    if (attempts_ <= failures_) {
      return grpc::Status(code_, absl::StrCat("attempt ", attempts_, " refused"));
    }
    response->set_model(request->model());
    return grpc::Status::OK;
  }

  int attempts() {
    absl::MutexLock lock(&mu_);
    return attempts_;
  }
  // The grpc-previous-rpc-attempts header of each attempt ("none" if absent).
  std::vector<std::string> previous_attempts() {
    absl::MutexLock lock(&mu_);
    return previous_attempts_;
  }

 private:
  const int failures_;
  const grpc::StatusCode code_;
  absl::Mutex mu_;
  int attempts_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> previous_attempts_ ABSL_GUARDED_BY(mu_);
};

struct FlakyServer {
  FlakyServer(int failures, grpc::StatusCode code) : service(failures, code) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    EXPECT_TRUE(server != nullptr && port > 0);
  }
  ~FlakyServer() { server->Shutdown(); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port); }

  FlakyClassifier service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

std::unique_ptr<Client> Connect(const std::string& target, ClientOptions options = {}) {
  auto client = Client::Create(target, options);
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(*client);
}

TEST(Client, ClassifiesWithTypedResults) {
  Backend backend;
  auto client = Connect(backend.target());
  ClassifyOptions options;
  options.top_k = 2;
  const std::vector<float> rows = {4, 0, 1, 2, 1, 0};
  auto result = client->Classify("species", rows, 2, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model, "species");
  EXPECT_EQ(result->version, 1);
  EXPECT_EQ(result->output, v1::OUTPUT_MODE_SOFTMAX);
  ASSERT_EQ(result->rows.size(), 2u);
  EXPECT_EQ(result->rows[0].predicted_label, "mammal");
  EXPECT_EQ(result->rows[1].predicted_label, "bird");
  ASSERT_EQ(result->rows[0].top_k.size(), 2u);
  EXPECT_EQ(result->rows[0].top_k[0].label, "mammal");

  auto reference = testing::LoadReference("species");
  ASSERT_TRUE(reference.ok());
  options = {};
  options.output = v1::OUTPUT_MODE_LOGITS;
  auto logits = client->Classify("species", reference->inputs, reference->rows, options);
  ASSERT_TRUE(logits.ok()) << logits.status();
  std::vector<float> flat;
  for (const auto& row : logits->rows) flat.insert(flat.end(), row.scores.begin(), row.scores.end());
  EXPECT_EQ(testing::FirstMismatch(flat, reference->logits), -1);
}

TEST(Client, MetadataListAndHealth) {
  Backend backend;
  auto client = Connect(backend.target());
  auto metadata = client->GetModelMetadata("species");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->input_width, 3u);
  EXPECT_THAT(metadata->labels, ElementsAre("bird", "mammal", "reptile"));
  EXPECT_EQ(metadata->default_output, v1::OUTPUT_MODE_SOFTMAX);
  ASSERT_EQ(metadata->versions.size(), 1u);
  EXPECT_EQ(metadata->versions[0].state, v1::MODEL_STATE_AVAILABLE);

  auto models = client->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  std::vector<std::string> names;
  for (const auto& model : *models) names.push_back(model.name);
  EXPECT_THAT(names, ElementsAre("mammal", "species"));

  auto health = client->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);
  backend.server->StartDraining();
  EXPECT_EQ(*client->Health(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST(Client, ErrorsCarryTheServersCodeAndMessage) {
  Backend backend;
  auto client = Connect(backend.target());
  const std::vector<float> row = {4, 0, 1};
  auto unknown = client->Classify("unicorn", row, 1);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("'unicorn' is not served"));
  auto wide = client->Classify("species", {4, 0, 1, 1}, 1);
  EXPECT_EQ(wide.status().code(), absl::StatusCode::kInvalidArgument);
  auto many = client->Classify("species", std::vector<float>(303), 101);
  EXPECT_EQ(many.status().code(), absl::StatusCode::kResourceExhausted);
  ClassifyOptions softmax;
  softmax.output = v1::OUTPUT_MODE_SOFTMAX;
  EXPECT_EQ(client->Classify("mammal", row, 1, softmax).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->GetModelMetadata("unicorn").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Client, AnUnreachableServerIsUnavailable) {
  ClientOptions options;
  options.deadline = absl::Seconds(5);
  DeadPort dead;
  auto client = Connect(dead.target(), options);
  auto result = client->Health();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
}

// What the tests with a DeadPort rely on: the held port refuses connections,
// and no server, though gRPC binds with SO_REUSEPORT, can take it meanwhile.
TEST(Client, ADeadPortRefusesConnectionsAndCannotBeTaken) {
  DeadPort dead;
  ASSERT_GT(dead.port(), 0);
  const int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(probe, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(dead.port()));
  const int connected = connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  const int error = errno;
  close(probe);
  EXPECT_EQ(connected, -1);
  EXPECT_EQ(error, ECONNREFUSED) << std::strerror(error);

  grpc::ServerBuilder builder;
  int bound_port = -1;
  builder.AddListeningPort(dead.target(), grpc::InsecureServerCredentials(), &bound_port);
  auto server = builder.BuildAndStart();
  EXPECT_EQ(server, nullptr) << "a server took the held port " << bound_port;
  if (server != nullptr) server->Shutdown();
}

TEST(Client, DeadlinesAreEnforced) {
  // The only inference slot is held, so the call waits past its deadline
  // however fast the machine answers (a 1 µs deadline could lose the race
  // to a loopback answer: gRPC keeps deadlines to the millisecond).
  Backend backend(1, /*inference_threads=*/1);
  auto served = backend.server->models().Find("species", 0);
  ASSERT_TRUE(served.ok());
  testing::HeldSlot slot(backend.server->runner(), *served);
  ClientOptions options;
  options.deadline = absl::Milliseconds(50);
  auto client = Connect(backend.target(), options);
  const std::vector<float> rows(3 * 100, 1.0f);
  auto result = client->Classify("species", rows, 100);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

// One server, so no load balancing can hide a failed attempt: only the
// retry policy can turn the refusals into an answer.
ClientOptions OneServerOptions(int max_attempts) {
  ClientOptions options;
  options.round_robin = false;
  options.max_attempts = max_attempts;
  return options;
}

TEST(Client, UnavailableIsRetriedUpToMaxAttempts) {
  FlakyServer server(2, grpc::StatusCode::UNAVAILABLE);
  auto client = Connect(server.target(), OneServerOptions(3));
  auto result = client->Classify("species", {4, 0, 1}, 1);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model, "species");
  EXPECT_EQ(server.service.attempts(), 3);
  EXPECT_THAT(server.service.previous_attempts(), ElementsAre("none", "1", "2"));
}

TEST(Client, RetriesStopAtMaxAttempts) {
  FlakyServer server(10, grpc::StatusCode::UNAVAILABLE);
  auto client = Connect(server.target(), OneServerOptions(3));
  auto result = client->Classify("species", {4, 0, 1}, 1);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("attempt 3 refused"));
  EXPECT_EQ(server.service.attempts(), 3);
}

TEST(Client, OneAttemptMeansNoRetry) {
  FlakyServer server(2, grpc::StatusCode::UNAVAILABLE);
  auto client = Connect(server.target(), OneServerOptions(1));
  auto result = client->Classify("species", {4, 0, 1}, 1);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("attempt 1 refused"));
  EXPECT_EQ(server.service.attempts(), 1);
}

TEST(Client, OnlyUnavailableIsRetried) {
  FlakyServer server(2, grpc::StatusCode::INVALID_ARGUMENT);
  auto client = Connect(server.target(), OneServerOptions(3));
  auto result = client->Classify("species", {4, 0, 1}, 1);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.service.attempts(), 1);
}

// round_robin only picks connected backends, so this holds with retries off:
// it shows the balancer routing around a dead address, not the retry policy
// (the tests above cover that).
TEST(Client, RoundRobinRoutesAroundADeadServer) {
  Backend live;
  ClientOptions options;
  options.max_attempts = 1;
  DeadPort dead;
  auto client = Connect(absl::StrCat(dead.target(), ",", live.target()), options);
  const std::vector<float> row = {4, 0, 1};
  for (int i = 0; i < 20; ++i) {
    auto result = client->Classify("species", row, 1);
    ASSERT_TRUE(result.ok()) << "call " << i << ": " << result.status();
  }
}

TEST(Client, RoundRobinSpreadsCallsOverThreeServers) {
  Backend first(1), second(2), third(3);
  auto client = Connect(absl::StrCat(first.target(), ",", second.target(), ",",
                                     third.target()));
  // Warm up until all three backends have answered (round_robin connects
  // to them in the background), then count who answers.
  const std::vector<float> row = {4, 0, 1};
  std::map<int64_t, int> answers;
  for (int i = 0; i < 2000 && answers.size() < 3; ++i) {
    auto result = client->Classify("species", row, 1);
    ASSERT_TRUE(result.ok()) << result.status();
    ++answers[result->version];
  }
  answers.clear();
  for (int i = 0; i < 300; ++i) {
    auto result = client->Classify("species", row, 1);
    ASSERT_TRUE(result.ok()) << result.status();
    ++answers[result->version];
  }
  ASSERT_EQ(answers.size(), 3u) << "not every server answered";
  for (const auto& [version, count] : answers) {
    EXPECT_GE(count, 60) << "server with version " << version;
  }
}

TEST(Client, AsyncCallsComplete) {
  Backend backend;
  auto client = Connect(backend.target());
  v1::ClassifyRequest request;
  request.set_model("species");
  request.add_features(4);
  request.add_features(0);
  request.add_features(1);
  request.set_rows(1);
  absl::Notification done;
  absl::StatusOr<v1::ClassifyResponse> answer;
  client->ClassifyAsync(request, [&](absl::StatusOr<v1::ClassifyResponse> response) {
    answer = std::move(response);
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->results(0).predicted_label(), "mammal");

  absl::Notification health_done;
  absl::Status health_status = absl::UnknownError("not called");
  client->HealthAsync([&](absl::Status status) {
    health_status = status;
    health_done.Notify();
  });
  ASSERT_TRUE(health_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(health_status.ok()) << health_status;
}

v1::ClassifyRequest SpeciesRequest() {
  v1::ClassifyRequest request;
  request.set_model("species");
  request.add_features(4);
  request.add_features(0);
  request.add_features(1);
  request.set_rows(1);
  return request;
}

// Counts down the `done` callbacks of a batch of asynchronous calls.
class AsyncBatch {
 public:
  explicit AsyncBatch(int calls) : left_(calls) {}

  void Done(const absl::Status& status) {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      if (!status.ok() && first_error_.ok()) first_error_ = status;
      last = --left_ == 0;
    }
    // Outside the lock: the waiter may destroy this batch as soon as it wakes.
    if (last) all_done_.Notify();
  }
  bool Wait() { return all_done_.WaitForNotificationWithTimeout(absl::Seconds(20)); }
  absl::Status first_error() {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }

 private:
  absl::Mutex mu_;
  int left_ ABSL_GUARDED_BY(mu_);
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
  absl::Notification all_done_;
};

// The pattern of grpc/grpc#37858: a caller destroys its Client the moment
// the last `done` returns. Before the call state was released ahead of
// `done`, the channel's last reference could die on gRPC's callback thread
// and abort the process about once in a thousand rounds. The server runs in
// its own process so that this Client's channel is the only gRPC user here,
// as in a real client program.
TEST(Client, AClientCanBeDestroyedAsSoonAsItsLastAsyncCallIsDone) {
  ServerProcess server(SEQSERVE_PATH,
                       {"--model_repository=" SEQSERVE_MODELS_DIR, "--poll_seconds=0"});
  ASSERT_TRUE(server.ready()) << server.output();
  const v1::ClassifyRequest request = SpeciesRequest();
  constexpr int kRounds = 2000;
  constexpr int kCallsPerRound = 8;
  for (int round = 0; round < kRounds; ++round) {
    auto client = Connect(server.target());
    AsyncBatch batch(kCallsPerRound);
    for (int i = 0; i < kCallsPerRound; ++i) {
      if (i % 2 == 0) {
        client->ClassifyAsync(request, [&batch](absl::StatusOr<v1::ClassifyResponse> r) {
          batch.Done(r.status());
        });
      } else {
        client->HealthAsync([&batch](absl::Status status) { batch.Done(status); });
      }
    }
    ASSERT_TRUE(batch.Wait()) << "round " << round;
    client.reset();
    ASSERT_TRUE(batch.first_error().ok()) << "round " << round << ": " << batch.first_error();
  }
}

TEST(Client, DestroyingAClientWaitsForItsAsyncCalls) {
  Backend backend;
  const v1::ClassifyRequest request = SpeciesRequest();
  constexpr int kCalls = 32;
  AsyncBatch batch(kCalls);
  auto client = Connect(backend.target());
  for (int i = 0; i < kCalls; ++i) {
    client->ClassifyAsync(request, [&batch](absl::StatusOr<v1::ClassifyResponse> r) {
      batch.Done(r.status());
    });
  }
  client.reset();  // with the calls in flight: they finish, not cancelled
  ASSERT_TRUE(batch.Wait());
  EXPECT_TRUE(batch.first_error().ok()) << batch.first_error();
}

TEST(Client, TargetsResolve) {
  EXPECT_EQ(*ResolveTarget("127.0.0.1:8500"), "ipv4:127.0.0.1:8500");
  EXPECT_EQ(*ResolveTarget("127.0.0.1:1, 127.0.0.1:2"), "ipv4:127.0.0.1:1,127.0.0.1:2");
  EXPECT_EQ(*ResolveTarget("dns:///seqserve-headless:8500"), "dns:///seqserve-headless:8500");
  EXPECT_EQ(*ResolveTarget("[::1]:8500"), "ipv6:[::1]:8500");
  EXPECT_THAT(std::string(ResolveTarget("127.0.0.1:1,[::1]:2").status().message()),
              HasSubstr("mixes IPv4 and IPv6"));
  EXPECT_EQ(ResolveTarget(" , ").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveTarget("no-port").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveTarget("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveTarget("host.invalid:1").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace seqserve
