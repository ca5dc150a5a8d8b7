// The gRPC edge on a real server: who may call each method (walked from
// the services the server itself lists, so a method without an entry in
// frontends/grpc/grpc_methods.cc fails here), a deadline already passed on
// arrival (raw HTTP/2 frames with "grpc-timeout: 1n"), and what callers
// see while the server shuts down.
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <regex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "auth/token_authenticator.h"
#include "frontends/grpc/classifier_service.h"
#include "frontends/grpc/grpc_methods.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "inference/v2/grpc_predict_v2.pb.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "tests/server/held_slot.h"
#include "tests/support/local_server.h"
#include "tests/support/server_process.h"
#include "tests/support/test_certificates.h"

namespace seqserve {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "edge-secret-token-1";

// One mammal row for the species model.
v1::ClassifyRequest SpeciesRequest() {
  v1::ClassifyRequest request;
  request.set_model("species");
  for (float x : {4.0f, 0.0f, 1.0f}) request.add_features(x);
  request.set_rows(1);
  return request;
}

class GrpcEdgeTest : public ::testing::Test {
 protected:
  void Start(ModelServer::Options options) {
    options.model_repository = SEQSERVE_MODELS_DIR;
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(Target(), grpc::InsecureChannelCredentials());
  }

  std::string Target() const { return absl::StrCat("127.0.0.1:", server_->port()); }

  testing::TestCertificates dir_;  // a fresh directory for the tokens file
  std::unique_ptr<ModelServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// The full names of the services the server lists over reflection.
std::vector<std::string> ListedServices(const std::shared_ptr<grpc::Channel>& channel,
                                        const std::string& authorization) {
  auto stub = grpc::reflection::v1::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", authorization);
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  std::vector<std::string> names;
  grpc::reflection::v1::ServerReflectionResponse response;
  while (stream->Read(&response)) {
    for (const auto& service : response.list_services_response().service()) {
      names.push_back(service.name());
    }
  }
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  return names;
}

struct Outcome {
  bool answered = false;  // a response message came back
  grpc::Status status;
};

// Calls `path` with one empty message (valid for every proto3 request), or
// with none when `send_message` is false, unary or streaming alike, and
// `authorization` unless empty; a stream that answers once is then
// cancelled (health's Watch never ends on its own).
Outcome CallOnce(const std::shared_ptr<grpc::Channel>& channel, const std::string& path,
                 const std::string& authorization, bool send_message = true) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  auto call = stub.PrepareCall(&context, path, &queue);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&] { EXPECT_TRUE(queue.Next(&tag, &ok)); };
  call->StartCall(&tag);
  step();
  if (send_message) {
    grpc::ByteBuffer empty(nullptr, 0);
    call->Write(empty, &tag);
    step();
  }
  if (ok || !send_message) {
    call->WritesDone(&tag);
    step();
  }
  Outcome outcome;
  grpc::ByteBuffer reply;
  call->Read(&reply, &tag);
  step();
  outcome.answered = ok;
  if (outcome.answered) context.TryCancel();
  call->Finish(&outcome.status, &tag);
  step();
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  return outcome;
}

TEST_F(GrpcEdgeTest, EveryMethodAdmitsCallersAsTheMethodTableSays) {
  const std::string tokens = dir_.Path("tokens.txt");
  testing::ReplaceFile(tokens, absl::StrCat("edge:", kToken, "\n"));
  auto authenticator = TokenAuthenticator::Start({tokens, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  ModelServer::Options options;
  options.authenticator = authenticator->get();
  Start(options);

  const std::string right = absl::StrCat("Bearer ", kToken);
  const std::vector<std::string> services = ListedServices(channel_, right);
  ASSERT_EQ(services.size(), 6u);
  std::vector<std::string> walked;
  for (const std::string& service_name : services) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service_name);
    ASSERT_NE(service, nullptr) << service_name;
    for (int i = 0; i < service->method_count(); ++i) {
      const std::string method = service->method(i)->name();
      walked.push_back(absl::StrCat(service_name, "/", method));
      SCOPED_TRACE(walked.back());
      const GrpcMethod& entry = FindGrpcMethod(service_name, method);
      ASSERT_EQ(entry.service, service_name) << "no entry in the gRPC method table";
      const std::string path = absl::StrCat("/", service_name, "/", method);
      const Outcome none = CallOnce(channel_, path, "");
      const Outcome wrong = CallOnce(channel_, path, "Bearer edge-secret-token-2");
      const Outcome lower = CallOnce(channel_, path, absl::StrCat("bearer ", kToken));
      const Outcome upper = CallOnce(channel_, path, right);
      if (entry.access == Access::kOpen) {
        // A probe answers anyone, with its answer (its request is empty).
        EXPECT_TRUE(none.answered) << none.status.error_message();
        EXPECT_TRUE(wrong.answered) << wrong.status.error_message();
      } else {
        EXPECT_FALSE(none.answered);
        EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
        EXPECT_FALSE(wrong.answered);
        EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
      }
      // The scheme is matched without regard to case (RFC 7235).
      EXPECT_NE(lower.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << lower.status.error_message();
      EXPECT_NE(upper.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << upper.status.error_message();
    }
  }
  // And the table names nothing the server does not serve.
  for (const GrpcMethod& method : GrpcMethods()) {
    EXPECT_THAT(walked, Contains(absl::StrCat(method.service, "/", method.name)));
  }
  EXPECT_EQ(FindGrpcMethod("inference.GRPCInferenceService", "ServerMetadata").access,
            Access::kToken);
}

// A unary call whose stream ends without its message is refused, not run
// as an empty request, by every method of ours (gRPC's health service does
// the same); open and token methods alike, with the right token.
TEST_F(GrpcEdgeTest, AUnaryCallWithoutItsMessageIsRefused) {
  Start({});
  for (const GrpcMethod& method : GrpcMethods()) {
    const std::string service = method.service;
    if (service.rfind("grpc.", 0) == 0) continue;  // gRPC's own services
    const std::string path = absl::StrCat("/", service, "/", method.name);
    SCOPED_TRACE(path);
    const Outcome outcome = CallOnce(channel_, path, "", /*send_message=*/false);
    EXPECT_FALSE(outcome.answered);
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(outcome.status.error_message(), HasSubstr("a unary call sends exactly one"));
  }
}

// tests/support/raw_h2_call.py: a unary call with any grpc-timeout, which
// gRPC's own clients round.
constexpr char kRawH2Client[] = SEQSERVE_TEST_DATA_DIR "/../support/raw_h2_call.py";

class GrpcDeadlineTest : public GrpcEdgeTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(testing::RunCommand("/usr/bin/python3 -c 'print(1)'").exit_code, 0);
    Start({});
  }

  // What each of `tries` calls of `path` with `timeout` ("-": none) got.
  std::vector<std::string> RawCalls(const std::string& path, const std::string& timeout,
                                    const std::string& payload, int tries) {
    const testing::CommandResult result = testing::RunCommand(absl::StrCat(
        "/usr/bin/python3 ", kRawH2Client, " 127.0.0.1 ", server_->port(), " ", path, " ", timeout,
        " ", absl::BytesToHexString(payload), " ", tries, " 2>&1"));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  }

  void ExpectExpiredWithoutRunning(const std::string& path, const std::string& payload) {
    // The script and payload are right: without a timeout the call runs.
    const InferenceRunner::Stats before = server_->inference_stats();
    EXPECT_THAT(RawCalls(path, "-", payload, 1), ::testing::ElementsAre("0"));
    const InferenceRunner::Stats control = server_->inference_stats();
    EXPECT_EQ(control.requests, before.requests + 1);

    EXPECT_THAT(RawCalls(path, "1n", payload, 5), ::testing::Each("4"));
    const InferenceRunner::Stats after = server_->inference_stats();
    EXPECT_EQ(after.passes, control.passes);
    EXPECT_EQ(after.requests, control.requests);
    EXPECT_EQ(after.expired, control.expired);  // never queued either
  }
};

TEST_F(GrpcDeadlineTest, ClassifyWithADeadlinePassedOnArrivalDoesNotRun) {
  ExpectExpiredWithoutRunning("/seqserve.v1.Classifier/Classify",
                              SpeciesRequest().SerializeAsString());
}

TEST_F(GrpcDeadlineTest, V2ModelInferWithADeadlinePassedOnArrivalDoesNotRun) {
  auto species = server_->models().Find("species", 0);
  ASSERT_TRUE(species.ok()) << species.status();
  inference::ModelInferRequest request;
  request.set_model_name("species");
  auto* input = request.add_inputs();
  input->set_name((*species)->model->tensor_names().input);
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(3);
  for (float x : {4.0f, 0.0f, 1.0f}) input->mutable_contents()->add_fp32_contents(x);
  ExpectExpiredWithoutRunning("/inference.GRPCInferenceService/ModelInfer",
                              request.SerializeAsString());
}

// Clients, each on a connection of its own, that call Classify again as
// soon as they are answered, until each has been told UNAVAILABLE three
// times; what they were told, counted by code.
class LoopingClients {
 public:
  static constexpr int kUnavailableToStop = 3;

  LoopingClients(const std::string& target, int clients) : told_(clients) {
    for (int i = 0; i < clients; ++i) threads_.emplace_back([this, target, i] { Loop(target, i); });
  }
  ~LoopingClients() { Join(); }

  void Join() {
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  int count(grpc::StatusCode code) const {
    absl::MutexLock lock(&mu_);
    auto it = seen_.find(code);
    return it == seen_.end() ? 0 : it->second;
  }
  std::map<grpc::StatusCode, int> seen() const {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  // What client `i` was told, in order, a letter a call: o OK, s
  // UNAVAILABLE from a handler of a server shutting down, r UNAVAILABLE
  // from gRPC (no server to connect to), c CANCELLED, x anything else.
  // Read after Join().
  const std::string& told(int i) const { return told_[i]; }

 private:
  void Loop(const std::string& target, int i) {
    grpc::ChannelArguments arguments;
    arguments.SetInt("seqserve-test-client", i);  // no channel shared with the others
    auto stub = v1::Classifier::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), arguments));
    const v1::ClassifyRequest request = SpeciesRequest();
    for (int unavailable = 0; unavailable < kUnavailableToStop;) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      v1::ClassifyResponse response;
      const grpc::Status status = stub->Classify(&context, request, &response);
      const grpc::StatusCode code = status.error_code();
      told_[i].push_back(Letter(status));
      if (code == grpc::StatusCode::UNAVAILABLE) ++unavailable;
      absl::MutexLock lock(&mu_);
      ++seen_[code];
    }
  }

  mutable absl::Mutex mu_;
  std::map<grpc::StatusCode, int> seen_ ABSL_GUARDED_BY(mu_);
  static char Letter(const grpc::Status& status) {
    switch (status.error_code()) {
      case grpc::StatusCode::OK: return 'o';
      case grpc::StatusCode::CANCELLED: return 'c';
      case grpc::StatusCode::UNAVAILABLE:
        return absl::StrContains(status.error_message(), "shutting down") ? 's' : 'r';
      default: return 'x';
    }
  }

  std::vector<std::string> told_;  // each written by its own client only
  std::vector<std::thread> threads_;
};

std::string Counts(const std::map<grpc::StatusCode, int>& seen) {
  std::string out;
  for (const auto& [code, count] : seen) absl::StrAppend(&out, " code ", code, ": ", count);
  return out;
}

TEST_F(GrpcEdgeTest, CallsQueuedWhenTheGracePeriodEndsAreAnsweredUnavailableNeverCancelled) {
  ModelServer::Options options;
  options.inference.threads = 1;
  Start(options);
  auto species = server_->models().Find("species", 0);
  ASSERT_TRUE(species.ok()) << species.status();
  // The only slot stays held: every call queues, and is still queued when
  // the grace period ends.
  testing::HeldSlot slot(server_->runner(), *species);
  constexpr int kClients = 4;
  LoopingClients clients(Target(), kClients);
  for (int i = 0; i < 3000 && server_->calls_in_flight() < kClients; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(server_->calls_in_flight(), kClients);
  server_->Shutdown(absl::Milliseconds(300));
  clients.Join();
  slot.Release();
  // The queued call, then new calls on a closed port.
  EXPECT_EQ(clients.count(grpc::StatusCode::UNAVAILABLE),
            LoopingClients::kUnavailableToStop * kClients)
      << Counts(clients.seen());
  EXPECT_EQ(clients.seen().size(), 1u) << Counts(clients.seen());
}

// Callers kept sending, each as soon as answered, while the server shuts
// down with nothing queued: they get answers, then UNAVAILABLE. What
// remains is gRPC 1.51's own: it cancels a call whose stream arrives
// between the start of its Shutdown and the client reading the GOAWAY (the
// call never reaches a handler, and no API sends GOAWAY first). Such a
// CANCELLED can only come at that moment: after a client's last answer and
// before its first UNAVAILABLE.
TEST_F(GrpcEdgeTest, CallersSendingWhileTheServerStopsSeeAnswersThenUnavailable) {
  Start({});
  constexpr int kClients = 4, kAnswered = 20 * kClients;
  LoopingClients clients(Target(), kClients);
  for (int i = 0; i < 3000 && clients.count(grpc::StatusCode::OK) < kAnswered; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  server_->Shutdown(absl::Seconds(5));
  clients.Join();
  const std::map<grpc::StatusCode, int> seen = clients.seen();
  std::cout << "statuses while stopping:" << Counts(seen) << "\n";
  EXPECT_GE(clients.count(grpc::StatusCode::OK), kAnswered);
  EXPECT_EQ(clients.count(grpc::StatusCode::UNAVAILABLE),
            LoopingClients::kUnavailableToStop * kClients);
  for (int i = 0; i < kClients; ++i) {
    // Answers; then, at the moment the port closes, UNAVAILABLE from our
    // handlers or CANCELLED from gRPC; then no server.
    EXPECT_TRUE(std::regex_match(clients.told(i), std::regex("o+[sc]*r*")))
        << "client " << i << " was told " << clients.told(i);
  }
}

// Counts the calls the inference path accounted, by code.
class CodeCounter : public RequestObserver {
 public:
  void OnStart(const CallRecord&) override {}
  void OnEnd(const CallRecord& call) override {
    absl::MutexLock lock(&mu_);
    ++codes_[call.code];
  }
  int count(absl::StatusCode code) const {
    absl::MutexLock lock(&mu_);
    auto it = codes_.find(code);
    return it == codes_.end() ? 0 : it->second;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<absl::StatusCode, int> codes_ ABSL_GUARDED_BY(mu_);
};

// The skeleton on its own: once the server is closing, a call is answered
// UNAVAILABLE (retried by retry policies) before it is admitted or its
// bytes are parsed, and accounted like any refused call.
TEST(GrpcUnarySkeletonTest, AClosingServerAnswersUnavailableBeforeAdmittingOrParsing) {
  ModelManager models(SEQSERVE_MODELS_DIR);
  models.Refresh();
  InferenceRunner runner(InferenceRunner::Options{});
  CodeCounter counter;
  InferenceService::Options inference_options;
  inference_options.observer = &counter;
  InferenceService inference(&models, &runner, inference_options);
  const std::string tokens = testing::TestCertificates().Path("tokens.txt");
  testing::ReplaceFile(tokens, absl::StrCat("edge:", kToken, "\n"));
  auto authenticator = TokenAuthenticator::Start({tokens, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  EdgeGuard guard(authenticator->get());
  std::atomic<bool> closing{false};
  GrpcEdge edge;
  edge.guard = &guard;
  edge.refuse = [&](const CallInfo& call, absl::Status status) {
    return inference.Refuse(call, std::move(status));
  };
  edge.closing = [&] { return closing.load(); };
  ClassifierService service(&inference, edge);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  const std::string token = absl::StrCat("Bearer ", kToken);

  auto classify = [&](const std::string& authorization) {
    auto stub = v1::Classifier::NewStub(channel);
    grpc::ClientContext context;
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    v1::ClassifyResponse response;
    return stub->Classify(&context, SpeciesRequest(), &response).error_code();
  };
  EXPECT_EQ(classify(token), grpc::StatusCode::OK);
  EXPECT_EQ(classify(""), grpc::StatusCode::UNAUTHENTICATED);
  // Bytes that are no ClassifyRequest: INVALID_ARGUMENT while open.
  const std::string path = "/seqserve.v1.Classifier/Classify";
  grpc::ByteBuffer garbage;
  {
    grpc::Slice slice(std::string("\xff\xff\xff"));
    garbage = grpc::ByteBuffer(&slice, 1);
  }
  auto raw = [&](const std::string& authorization) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext context;
    context.AddMetadata("authorization", authorization);
    grpc::ByteBuffer reply;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, path, grpc::StubOptions(), &garbage, &reply,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status.error_code();
  };
  EXPECT_EQ(raw(token), grpc::StatusCode::INVALID_ARGUMENT);

  closing = true;
  const int refused_before = counter.count(absl::StatusCode::kUnavailable);
  EXPECT_EQ(classify(token), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(classify(""), grpc::StatusCode::UNAVAILABLE);  // before admission
  EXPECT_EQ(raw(token), grpc::StatusCode::UNAVAILABLE);  // before parsing
  EXPECT_EQ(counter.count(absl::StatusCode::kUnavailable), refused_before + 3);
  server->Shutdown();
}

}  // namespace
}  // namespace seqserve
