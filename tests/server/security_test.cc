// TLS, mutual TLS, bearer tokens, certificate rotation and connection
// limits, end to end: real handshakes with certificates made by openssl at
// test time, a real server on free ports, the C++ client, seqclient, curl.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/seqserve_client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "auth/tls_files.h"
#include "auth/token_authenticator.h"
#include "server/model_server.h"
#include "tests/server/held_slot.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/server_process.h"
#include "tests/support/test_certificates.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::PemFiles;
using testing::TestCertificates;

const std::vector<float> kMammal = {4, 0, 1};

// Lets every caller in and remembers what the transport said about them.
class RecordingAuthenticator : public Authenticator {
 public:
  absl::Status Check(const CallerCredentials& caller) const override {
    absl::MutexLock lock(&mu_);
    subjects_.push_back(caller.client_certificate_subject);
    peers_.insert(caller.peer);
    return absl::OkStatus();
  }
  std::vector<std::string> subjects() const {
    absl::MutexLock lock(&mu_);
    return subjects_;
  }
  std::set<std::string> peers() const {
    absl::MutexLock lock(&mu_);
    return peers_;
  }
  size_t calls() const {
    absl::MutexLock lock(&mu_);
    return subjects_.size();
  }

 private:
  mutable absl::Mutex mu_;
  mutable std::vector<std::string> subjects_ ABSL_GUARDED_BY(mu_);
  mutable std::set<std::string> peers_ ABSL_GUARDED_BY(mu_);
};

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = certs_.MakeCa("seqserve-test-ca");
    other_ca_ = certs_.MakeCa("another-ca");
    server_cert_ = certs_.MakeLeaf("server", ca_);
    client_cert_ = certs_.MakeLeaf("client-one", ca_);
    stranger_cert_ = certs_.MakeLeaf("stranger", other_ca_);
  }

  // Starts a server on the sample models; TLS with `tls` unless null.
  void Start(ModelServer::Options options, const TlsFiles* tls) {
    options.model_repository = SEQSERVE_MODELS_DIR;
    options.poll_interval = absl::ZeroDuration();
    if (tls != nullptr) {
      auto credentials = GrpcServerCredentials(*tls);
      ASSERT_TRUE(credentials.ok()) << credentials.status();
      options.credentials = *credentials;
      options.http.tls = *tls;
    }
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::string Target() const { return absl::StrCat("127.0.0.1:", server_->port()); }

  std::unique_ptr<Client> Connect(ClientOptions options) {
    options.deadline = absl::Seconds(5);
    options.max_attempts = 1;
    auto client = Client::Create(Target(), options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  ClientOptions Trusting(const PemFiles& ca) {
    ClientOptions options;
    options.tls_ca_file = ca.cert;
    return options;
  }

  absl::Status ClassifyWith(ClientOptions options) {
    std::unique_ptr<Client> client = Connect(std::move(options));
    if (client == nullptr) return absl::InternalError("no client");
    return client->Classify("species", kMammal, 1).status();
  }

  // curl against the HTTP port; returns what it printed, the HTTP status
  // last ("...\n200"), or its error.
  std::string Curl(const std::string& arguments, const std::string& path) {
    const testing::CommandResult result = testing::RunCommand(absl::StrCat(
        "curl -sS --max-time 10 -w '\\n%{http_code}' ", arguments, " https://127.0.0.1:",
        server_->http_port(), path, " 2>&1"));
    return result.output;
  }

  TestCertificates certs_;
  PemFiles ca_, other_ca_, server_cert_, client_cert_, stranger_cert_;
  std::unique_ptr<ModelServer> server_;
};

TEST_F(SecurityTest, TlsAnswersOnlyClientsThatTrustItsCa) {
  const TlsFiles tls{server_cert_.cert, server_cert_.key, "", absl::Seconds(60)};
  Start({}, &tls);
  auto answered = Connect(Trusting(ca_))->Classify("species", kMammal, 1);
  ASSERT_TRUE(answered.ok()) << answered.status();
  EXPECT_EQ(answered->rows[0].predicted_label, "mammal");

  const absl::Status plaintext = ClassifyWith(ClientOptions{});
  EXPECT_EQ(plaintext.code(), absl::StatusCode::kUnavailable) << plaintext;
  const absl::Status other_ca = ClassifyWith(Trusting(other_ca_));
  EXPECT_EQ(other_ca.code(), absl::StatusCode::kUnavailable) << other_ca;
  // A name the certificate does not hold is refused too.
  ClientOptions wrong_name = Trusting(ca_);
  wrong_name.tls_server_name = "not-this-server.example";
  EXPECT_EQ(ClassifyWith(wrong_name).code(), absl::StatusCode::kUnavailable);
}

TEST_F(SecurityTest, TheHttpPortSpeaksTlsWithTheSameFiles) {
  const TlsFiles tls{server_cert_.cert, server_cert_.key, "", absl::Seconds(60)};
  Start({}, &tls);
  EXPECT_THAT(Curl("--cacert " + ca_.cert, "/healthz"), HasSubstr("ok\n\n200"));
  EXPECT_THAT(Curl("--cacert " + ca_.cert + " -d '{\"features\":[4,0,1],\"rows\":1}'",
                   "/v1/models/species:classify"),
              HasSubstr("\"predicted_label\":\"mammal\""));
  EXPECT_THAT(Curl("--cacert " + other_ca_.cert, "/healthz"), Not(HasSubstr("200")));
  // Plain HTTP on the TLS port gets no HTTP answer.
  testing::HttpReply plain = testing::HttpCall(server_->http_port(), "GET", "/healthz");
  EXPECT_EQ(plain.status, 0);
}

TEST_F(SecurityTest, MutualTlsRefusesClientsWithoutACertificateOfItsCas) {
  RecordingAuthenticator recorder;
  ModelServer::Options options;
  options.authenticator = &recorder;
  const TlsFiles tls{server_cert_.cert, server_cert_.key, ca_.cert, absl::Seconds(60)};
  Start(options, &tls);

  EXPECT_EQ(ClassifyWith(Trusting(ca_)).code(), absl::StatusCode::kUnavailable);
  ClientOptions stranger = Trusting(ca_);
  stranger.tls_cert_file = stranger_cert_.cert;
  stranger.tls_key_file = stranger_cert_.key;
  EXPECT_EQ(ClassifyWith(stranger).code(), absl::StatusCode::kUnavailable);
  // Refused in the handshake: no call reached the server.
  EXPECT_EQ(recorder.calls(), 0u);

  ClientOptions known = Trusting(ca_);
  known.tls_cert_file = client_cert_.cert;
  known.tls_key_file = client_cert_.key;
  const absl::Status status = ClassifyWith(known);
  EXPECT_TRUE(status.ok()) << status;
  ASSERT_EQ(recorder.calls(), 1u);
  EXPECT_THAT(recorder.subjects()[0], HasSubstr("CN=client-one"));

  // The HTTP port: no certificate or a stranger's is 401, the right one works.
  const std::string trust = "--cacert " + ca_.cert;
  std::string no_cert = Curl(trust, "/v1/models");
  EXPECT_THAT(no_cert, HasSubstr("client certificate"));
  EXPECT_THAT(no_cert, HasSubstr("\n401"));
  EXPECT_THAT(Curl(trust + " --cert " + stranger_cert_.cert + " --key " + stranger_cert_.key,
                   "/v1/models"),
              HasSubstr("\n401"));
  EXPECT_THAT(Curl(trust + " --cert " + client_cert_.cert + " --key " + client_cert_.key,
                   "/v1/models"),
              HasSubstr("\"name\":\"species\""));
  EXPECT_THAT(recorder.subjects().back(), HasSubstr("CN=client-one"));
}

TEST_F(SecurityTest, TokensGuardEveryServiceButHealth) {
  const std::string tokens = certs_.Path("tokens.txt");
  testing::ReplaceFile(tokens, "# callers\nalice:alice-secret-1\nbob:bob-secret-2\n");
  auto authenticator = TokenAuthenticator::Start({tokens, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  ModelServer::Options options;
  options.authenticator = authenticator->get();
  const TlsFiles tls{server_cert_.cert, server_cert_.key, "", absl::Seconds(60)};
  Start(options, &tls);

  ClientOptions none = Trusting(ca_);
  const absl::Status missing = ClassifyWith(none);
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("requires a bearer token"));
  ClientOptions wrong = Trusting(ca_);
  wrong.bearer_token = "alice-secret-2";
  const absl::Status refused = ClassifyWith(wrong);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("not accepted"));
  EXPECT_THAT(std::string(refused.message()), Not(HasSubstr("alice-secret")));
  ClientOptions bob = Trusting(ca_);
  bob.bearer_token = "bob-secret-2";
  EXPECT_TRUE(ClassifyWith(bob).ok());
  EXPECT_EQ(Connect(none)->ListModels().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Connect(none)->GetModelMetadata("species").status().code(),
            absl::StatusCode::kUnauthenticated);

  // Health stays open for probes that cannot send headers.
  auto health = Connect(none)->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);

  // Revoked by editing the file: refused from the next check on.
  testing::ReplaceFile(tokens, "alice:alice-secret-1\n");
  ASSERT_TRUE((*authenticator)->Refresh());
  const absl::Status revoked = ClassifyWith(bob);
  EXPECT_EQ(revoked.code(), absl::StatusCode::kUnauthenticated);
  ClientOptions alice = Trusting(ca_);
  alice.bearer_token = "alice-secret-1";
  EXPECT_TRUE(ClassifyWith(alice).ok());

  // REST and metrics need the token; /healthz and /readyz do not.
  const std::string trust = "--cacert " + ca_.cert;
  const std::string header = " -H 'Authorization: Bearer alice-secret-1'";
  EXPECT_THAT(Curl(trust, "/v1/models"), HasSubstr("\n401"));
  EXPECT_THAT(Curl(trust + " -H 'Authorization: Bearer bob-secret-2'", "/v1/models"),
              HasSubstr("not accepted"));
  EXPECT_THAT(Curl(trust + header, "/v1/models"), HasSubstr("\"name\":\"species\""));
  EXPECT_THAT(Curl(trust, "/metrics"), HasSubstr("\n401"));
  EXPECT_THAT(Curl(trust + header, "/metrics"), HasSubstr("seqserve_requests_total"));
  EXPECT_THAT(Curl(trust, "/openapi.json"), HasSubstr("\n401"));
  EXPECT_THAT(Curl(trust + header, "/openapi.json"), HasSubstr("\"openapi\""));
  // The console page itself holds no data; it asks for the token.
  EXPECT_THAT(Curl(trust, "/"), HasSubstr("\n200"));
  EXPECT_THAT(Curl(trust, "/healthz"), HasSubstr("\n200"));
  EXPECT_THAT(Curl(trust, "/readyz"), HasSubstr("\n200"));
  EXPECT_THAT(Curl(trust + " -d '{\"features\":[4,0,1],\"rows\":1}'",
                   "/v1/models/species:classify"),
              HasSubstr("\n401"));
  EXPECT_THAT(Curl(trust + header + " -d '{\"features\":[4,0,1],\"rows\":1}'",
                   "/v1/models/species:classify"),
              HasSubstr("mammal"));
}

// One list_services question over reflection `Stub`; the stream's status.
template <typename Reflection>
grpc::Status AskReflection(const std::shared_ptr<grpc::Channel>& channel,
                           const std::string& token, int* services) {
  auto stub = Reflection::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->ServerReflectionInfo(&context);
  typename Reflection::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  typename Reflection::ServerReflectionResponse response;
  *services = 0;
  while (stream->Read(&response)) *services += response.list_services_response().service_size();
  return stream->Finish();
}

struct V1 {
  using ServerReflection = grpc::reflection::v1::ServerReflection;
  using ServerReflectionRequest = grpc::reflection::v1::ServerReflectionRequest;
  using ServerReflectionResponse = grpc::reflection::v1::ServerReflectionResponse;
};
struct V1Alpha {
  using ServerReflection = grpc::reflection::v1alpha::ServerReflection;
  using ServerReflectionRequest = grpc::reflection::v1alpha::ServerReflectionRequest;
  using ServerReflectionResponse = grpc::reflection::v1alpha::ServerReflectionResponse;
};

TEST_F(SecurityTest, BothReflectionVersionsNeedATokenWhenTokensAreSet) {
  const std::string tokens = certs_.Path("reflection-tokens.txt");
  testing::ReplaceFile(tokens, "tools:reflect-token\n");
  auto authenticator = TokenAuthenticator::Start({tokens, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  ModelServer::Options options;
  options.authenticator = authenticator->get();
  Start(options, nullptr);  // tokens work over plaintext too
  auto channel = grpc::CreateChannel(Target(), grpc::InsecureChannelCredentials());
  int services = 0;
  grpc::Status v1 = AskReflection<V1>(channel, "", &services);
  EXPECT_EQ(v1.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(services, 0);
  grpc::Status v1alpha = AskReflection<V1Alpha>(channel, "wrong", &services);
  EXPECT_EQ(v1alpha.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(v1alpha.error_message(), HasSubstr("not accepted"));
  EXPECT_EQ(services, 0);

  EXPECT_TRUE(AskReflection<V1>(channel, "reflect-token", &services).ok());
  // seqserve.v1's two, the Open Inference Protocol, health, reflection x2
  EXPECT_EQ(services, 6);
  EXPECT_TRUE(AskReflection<V1Alpha>(channel, "reflect-token", &services).ok());
  // seqserve.v1's two, the Open Inference Protocol, health, reflection x2
  EXPECT_EQ(services, 6);
}

TEST_F(SecurityTest, AReplacedCertificateReachesNewConnectionsWhileOldOnesKeepWorking) {
  // The served files are copies the test replaces.
  const PemFiles served{certs_.Path("served.pem"), certs_.Path("served.key")};
  testing::ReplaceFile(served.cert, testing::ReadWholeFile(server_cert_.cert));
  testing::ReplaceFile(served.key, testing::ReadWholeFile(server_cert_.key));
  const PemFiles next = certs_.MakeLeaf("server-next", other_ca_);
  const TlsFiles tls{served.cert, served.key, "", absl::Seconds(1)};
  Start({}, &tls);

  // A load of calls on a connection made before the change.
  std::unique_ptr<Client> old_client = Connect(Trusting(ca_));
  ASSERT_TRUE(old_client->Classify("species", kMammal, 1).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failures{0};
  std::vector<std::thread> load;
  for (int i = 0; i < 4; ++i) {
    load.emplace_back([&] {
      while (!stop) {
        if (!old_client->Classify("species", kMammal, 1).ok()) ++failures;
        ++calls;
      }
    });
  }

  const absl::Time replaced = absl::Now();
  testing::ReplaceFile(served.key, testing::ReadWholeFile(next.key));
  testing::ReplaceFile(served.cert, testing::ReadWholeFile(next.cert));
  // New connections get the new certificate within the refresh period
  // (one second; the watcher and the handshake get two more).
  absl::Status fresh = absl::UnknownError("not tried");
  while (absl::Now() - replaced < absl::Seconds(3) && !fresh.ok()) {
    fresh = ClassifyWith(Trusting(other_ca_));
    if (!fresh.ok()) absl::SleepFor(absl::Milliseconds(100));
  }
  const absl::Duration took = absl::Now() - replaced;
  EXPECT_TRUE(fresh.ok()) << fresh << " after " << took;
  EXPECT_EQ(ClassifyWith(Trusting(ca_)).code(), absl::StatusCode::kUnavailable);
  std::string https;
  for (int i = 0; i < 30 && !absl::StrContains(https, "\n200"); ++i) {
    https = Curl("--cacert " + other_ca_.cert, "/healthz");
    if (!absl::StrContains(https, "\n200")) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(https, HasSubstr("ok\n\n200"));
  EXPECT_THAT(Curl("--cacert " + ca_.cert, "/healthz"), Not(HasSubstr("\n200")));

  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  for (std::thread& t : load) t.join();
  EXPECT_GT(calls.load(), 50);
  EXPECT_EQ(failures.load(), 0) << "of " << calls.load() << " calls on the old connection";
}

TEST_F(SecurityTest, AnHttpsCallInFlightFinishesOnTheListenerThatARotationReplaced) {
  const PemFiles served{certs_.Path("http-served.pem"), certs_.Path("http-served.key")};
  testing::ReplaceFile(served.cert, testing::ReadWholeFile(server_cert_.cert));
  testing::ReplaceFile(served.key, testing::ReadWholeFile(server_cert_.key));
  const PemFiles next = certs_.MakeLeaf("http-next", other_ca_);
  ModelServer::Options options;
  options.inference.threads = 1;
  const TlsFiles tls{served.cert, served.key, "", absl::Seconds(1)};
  Start(options, &tls);
  auto species = server_->models().Find("species", 0);
  ASSERT_TRUE(species.ok());
  // The only inference slot is held: the call waits, its connection open.
  auto held = std::make_unique<testing::HeldSlot>(server_->runner(), *species);
  std::string in_flight;
  std::thread call([&] {
    in_flight = Curl("--cacert " + ca_.cert + " -d '{\"features\":[4,0,1],\"rows\":1}'",
                     "/v1/models/species:classify");
  });
  absl::SleepFor(absl::Milliseconds(300));
  testing::ReplaceFile(served.key, testing::ReadWholeFile(next.key));
  testing::ReplaceFile(served.cert, testing::ReadWholeFile(next.cert));
  std::string fresh;
  for (int i = 0; i < 40 && !absl::StrContains(fresh, "\n200"); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    fresh = Curl("--cacert " + other_ca_.cert, "/healthz");
  }
  EXPECT_THAT(fresh, HasSubstr("ok\n\n200"));
  held->Release();
  call.join();
  EXPECT_THAT(in_flight, HasSubstr("\"predicted_label\":\"mammal\""));
  EXPECT_THAT(in_flight, HasSubstr("\n200"));
}

TEST_F(SecurityTest, ConnectionsOlderThanTheirMaximumAgeAreReplacedWithoutFailedCalls) {
  RecordingAuthenticator recorder;
  ModelServer::Options options;
  options.authenticator = &recorder;
  options.max_connection_age = absl::Milliseconds(500);
  options.max_connection_age_grace = absl::Seconds(1);
  Start(options, nullptr);
  std::unique_ptr<Client> client = Connect({});
  int failures = 0;
  const absl::Time end = absl::Now() + absl::Seconds(2);
  int calls = 0;
  while (absl::Now() < end) {
    if (!client->Classify("species", kMammal, 1).ok()) ++failures;
    ++calls;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(failures, 0) << "of " << calls;
  // Each connection has its own client port: the client reconnected.
  EXPECT_GE(recorder.peers().size(), 2u);
}

TEST_F(SecurityTest, AnIdleConnectionIsClosedAndTheNextCallMakesANewOne) {
  RecordingAuthenticator recorder;
  ModelServer::Options options;
  options.authenticator = &recorder;
  options.max_connection_idle = absl::Milliseconds(300);
  Start(options, nullptr);
  // The client as shipped: round_robin reconnects as soon as the server
  // closes, so every 300 ms there is a fresh connection that the server
  // closes again; a call sent at that moment meets the close with
  // UNAVAILABLE before any handler ran, and the retry policy sends it again.
  ClientOptions shipped;
  shipped.deadline = absl::Seconds(5);
  auto client = Client::Create(Target(), shipped);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Classify("species", kMammal, 1).ok());
  ASSERT_TRUE((*client)->Classify("species", kMammal, 1).ok());
  EXPECT_EQ(recorder.peers().size(), 1u);  // calls in a row share it
  for (int i = 0; i < 6; ++i) {
    // Idle past a close each time, landing at a different point of the
    // server's 300 ms idle checks.
    absl::SleepFor(absl::Milliseconds(350 + 60 * i));
    const absl::Status after_idle = (*client)->Classify("species", kMammal, 1).status();
    ASSERT_TRUE(after_idle.ok()) << "call " << i << " after idling: " << after_idle;
  }
  EXPECT_GE(recorder.peers().size(), 2u);
}

TEST_F(SecurityTest, MaxConcurrentStreamsHoldsFurtherCallsOfAConnectionBack) {
  RecordingAuthenticator recorder;
  ModelServer::Options options;
  options.authenticator = &recorder;
  options.max_concurrent_streams = 1;
  options.inference.threads = 1;
  Start(options, nullptr);
  auto served = server_->models().Find("species", 0);
  ASSERT_TRUE(served.ok());
  auto held = std::make_unique<testing::HeldSlot>(server_->runner(), *served);
  std::unique_ptr<Client> client = Connect({});
  std::atomic<int> ok{0};
  absl::Notification both;
  std::atomic<int> done{0};
  v1::ClassifyRequest request;
  request.set_model("species");
  request.set_rows(1);
  for (float f : kMammal) request.add_features(f);
  for (int i = 0; i < 2; ++i) {
    client->ClassifyAsync(request, [&](absl::StatusOr<v1::ClassifyResponse> response) {
      if (response.ok()) ++ok;
      if (++done == 2) both.Notify();
    });
  }
  absl::SleepFor(absl::Milliseconds(500));
  // One stream waits for the held pass; the other was never opened.
  EXPECT_EQ(recorder.calls(), 1u);
  held->Release();
  ASSERT_TRUE(both.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(ok.load(), 2);
  EXPECT_EQ(recorder.calls(), 2u);
}

// The server binary: start-up checks and logs.
class SecurityProcessTest : public SecurityTest {};

TEST_F(SecurityProcessTest, AKeyThatDoesNotFitOrCannotBeReadStopsTheStartNamingTheFile) {
  const PemFiles stranger = stranger_cert_;
  testing::CommandResult mismatched = testing::RunCommand(absl::StrCat(
      SEQSERVE_PATH, " --port=0 --http_port=-1 --model_repository=", SEQSERVE_MODELS_DIR,
      " --tls_cert_file=", server_cert_.cert, " --tls_key_file=", stranger.key, " 2>&1"));
  EXPECT_EQ(mismatched.exit_code, 1) << mismatched.output;
  EXPECT_THAT(mismatched.output, HasSubstr(stranger.key));
  EXPECT_THAT(mismatched.output, HasSubstr("does not belong to the certificate"));

  const std::string missing = certs_.Path("no-such.key");
  testing::CommandResult unreadable = testing::RunCommand(absl::StrCat(
      SEQSERVE_PATH, " --port=0 --http_port=-1 --model_repository=", SEQSERVE_MODELS_DIR,
      " --tls_cert_file=", server_cert_.cert, " --tls_key_file=", missing, " 2>&1"));
  EXPECT_EQ(unreadable.exit_code, 1) << unreadable.output;
  EXPECT_THAT(unreadable.output, HasSubstr("cannot read TLS key file " + missing));

  testing::CommandResult half = testing::RunCommand(absl::StrCat(
      SEQSERVE_PATH, " --port=0 --model_repository=", SEQSERVE_MODELS_DIR,
      " --tls_cert_file=", server_cert_.cert, " 2>&1"));
  EXPECT_EQ(half.exit_code, 2) << half.output;
  EXPECT_THAT(half.output, HasSubstr("go together"));

  testing::CommandResult refresh = testing::RunCommand(absl::StrCat(
      SEQSERVE_PATH, " --port=0 --model_repository=", SEQSERVE_MODELS_DIR,
      " --tls_refresh_seconds=0 --max_connection_age_seconds=-1 2>&1"));
  EXPECT_EQ(refresh.exit_code, 2) << refresh.output;
  EXPECT_THAT(refresh.output, HasSubstr("--tls_refresh_seconds=0 is out of range"));
  EXPECT_THAT(refresh.output, HasSubstr("--max_connection_age_seconds=-1 is out of range"));

  testing::CommandResult no_tokens = testing::RunCommand(absl::StrCat(
      SEQSERVE_PATH, " --port=0 --model_repository=", SEQSERVE_MODELS_DIR,
      " --auth_tokens_file=", certs_.Path("no-tokens.txt"), " 2>&1"));
  EXPECT_EQ(no_tokens.exit_code, 1) << no_tokens.output;
  EXPECT_THAT(no_tokens.output, HasSubstr("no-tokens.txt"));
}

TEST_F(SecurityProcessTest, SeqclientSpeaksTlsAndSendsTheTokenFromItsEnvironment) {
  const std::string tokens = certs_.Path("cli-tokens.txt");
  testing::ReplaceFile(tokens, "cli:cli-secret-token\nspare-secret-token\n");
  testing::ServerProcess server(
      SEQSERVE_PATH,
      {"--model_repository=" SEQSERVE_MODELS_DIR, "--tls_cert_file=" + server_cert_.cert,
       "--tls_key_file=" + server_cert_.key, "--auth_tokens_file=" + tokens,
       "--log_level=trace", "--access_log=-"},
      grpc::SslCredentials(grpc::SslCredentialsOptions{
          testing::ReadWholeFile(ca_.cert), "", ""}));
  ASSERT_TRUE(server.ready()) << server.output();
  const std::string seqclient =
      absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(), " --tls_ca_file=", ca_.cert);

  testing::CommandResult classified = testing::RunCommand(absl::StrCat(
      "SEQSERVE_TOKEN=cli-secret-token ", seqclient, " classify --model species 4,0,1 2>&1"));
  EXPECT_EQ(classified.exit_code, 0) << classified.output;
  EXPECT_THAT(classified.output, HasSubstr("mammal"));
  testing::CommandResult flag = testing::RunCommand(
      absl::StrCat(seqclient, " --token=spare-secret-token models 2>&1"));
  EXPECT_EQ(flag.exit_code, 0) << flag.output;
  testing::CommandResult no_token =
      testing::RunCommand(absl::StrCat(seqclient, " classify --model species 4,0,1 2>&1"));
  EXPECT_NE(no_token.exit_code, 0);
  EXPECT_THAT(no_token.output, HasSubstr("UNAUTHENTICATED"));
  testing::CommandResult wrong = testing::RunCommand(absl::StrCat(
      "SEQSERVE_TOKEN=cli-wrong-token ", seqclient, " classify --model species 4,0,1 2>&1"));
  EXPECT_THAT(wrong.output, HasSubstr("UNAUTHENTICATED"));
  testing::CommandResult health = testing::RunCommand(absl::StrCat(seqclient, " health 2>&1"));
  EXPECT_EQ(health.exit_code, 0) << health.output;
  testing::CommandResult other_ca = testing::RunCommand(absl::StrCat(
      SEQCLIENT_PATH, " --target=", server.target(), " --tls_ca_file=", other_ca_.cert,
      " --deadline_ms=3000 health 2>&1"));
  EXPECT_NE(other_ca.exit_code, 0);
  EXPECT_THAT(other_ca.output, HasSubstr("UNAVAILABLE"));
  testing::CommandResult bad_ca_file = testing::RunCommand(absl::StrCat(
      SEQCLIENT_PATH, " --target=", server.target(), " --tls_ca_file=", certs_.Path("nope.pem"),
      " health 2>&1"));
  EXPECT_NE(bad_ca_file.exit_code, 0);
  EXPECT_THAT(bad_ca_file.output, HasSubstr("cannot read TLS CA file"));

  // Revoking through the file, then the whole log at trace level.
  testing::ReplaceFile(tokens, "cli:cli-secret-token\n");
  EXPECT_EQ(server.Stop(SIGTERM), 0);
  EXPECT_THAT(server.output(), HasSubstr("UNAUTHENTICATED"));  // failures were logged
  EXPECT_THAT(server.output(), HasSubstr("\"caller\":\"cli\""));
  for (const char* secret : {"cli-secret-token", "spare-secret-token", "cli-wrong-token"}) {
    EXPECT_THAT(server.output(), Not(HasSubstr(secret)));
  }
}

// A plaintext call to a TLS port, or one without the client certificate a
// mutual-TLS server requires, sees its connection closed at once: seqclient
// says it is likely the handshake and names the flags that make one.
TEST_F(SecurityProcessTest, SeqclientNamesTheTlsFlagsWhenTheHandshakeFails) {
  testing::ServerProcess server(
      SEQSERVE_PATH,
      {"--model_repository=" SEQSERVE_MODELS_DIR, "--tls_cert_file=" + server_cert_.cert,
       "--tls_key_file=" + server_cert_.key, "--tls_client_ca_file=" + ca_.cert},
      grpc::SslCredentials(grpc::SslCredentialsOptions{testing::ReadWholeFile(ca_.cert),
                                                       testing::ReadWholeFile(client_cert_.key),
                                                       testing::ReadWholeFile(client_cert_.cert)}));
  ASSERT_TRUE(server.ready()) << server.output();
  const std::string seqclient =
      absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(), " --deadline_ms=3000");

  testing::CommandResult plaintext =
      testing::RunCommand(absl::StrCat(seqclient, " health 2>&1"));
  EXPECT_EQ(plaintext.exit_code, 1) << plaintext.output;
  EXPECT_THAT(plaintext.output, HasSubstr("likely a failed TLS handshake"));
  EXPECT_THAT(plaintext.output, HasSubstr("give --tls_ca_file"));
  EXPECT_THAT(plaintext.output, HasSubstr("--tls_cert_file with --tls_key_file"));
  EXPECT_THAT(plaintext.output, Not(HasSubstr("is seqserve running there?")));

  testing::CommandResult no_certificate = testing::RunCommand(
      absl::StrCat(seqclient, " --tls_ca_file=", ca_.cert, " health 2>&1"));
  EXPECT_EQ(no_certificate.exit_code, 1) << no_certificate.output;
  EXPECT_THAT(no_certificate.output, HasSubstr("likely a failed TLS handshake"));
  EXPECT_THAT(no_certificate.output, HasSubstr("without a client certificate"));
  EXPECT_THAT(no_certificate.output, HasSubstr("give --tls_cert_file and --tls_key_file"));

  testing::CommandResult other_ca = testing::RunCommand(
      absl::StrCat(seqclient, " --tls_ca_file=", other_ca_.cert, " health 2>&1"));
  EXPECT_EQ(other_ca.exit_code, 1) << other_ca.output;
  EXPECT_THAT(other_ca.output, HasSubstr("TLS handshake with " + server.target() + " failed"));
  EXPECT_THAT(other_ca.output, HasSubstr("not signed by a CA of --tls_ca_file"));

  testing::CommandResult known = testing::RunCommand(absl::StrCat(
      seqclient, " --tls_ca_file=", ca_.cert, " --tls_cert_file=", client_cert_.cert,
      " --tls_key_file=", client_cert_.key, " health 2>&1"));
  EXPECT_EQ(known.exit_code, 0) << known.output;
}

TEST_F(SecurityProcessTest, TheTraceLogNeverShowsATokenOverPlaintextEither) {
  const std::string tokens = certs_.Path("log-tokens.txt");
  testing::ReplaceFile(tokens, "ops:log-secret-token-1\n");
  testing::ServerProcess server(
      SEQSERVE_PATH, {"--model_repository=" SEQSERVE_MODELS_DIR, "--auth_tokens_file=" + tokens,
                      "--auth_tokens_refresh_seconds=0.1", "--log_level=trace"});
  ASSERT_TRUE(server.ready()) << server.output();
  testing::HttpReply ok = testing::HttpCall(server.http_port(), "GET", "/v1/models", "",
                                            "Authorization: Bearer log-secret-token-1\r\n");
  EXPECT_EQ(ok.status, 200) << ok.body;
  testing::HttpReply wrong = testing::HttpCall(server.http_port(), "GET", "/v1/models", "",
                                               "Authorization: Bearer log-wrong-token-2\r\n");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.headers["www-authenticate"], "Bearer");
  // A replacement with a broken line is refused by line number, not text.
  testing::ReplaceFile(tokens, "ops:log-secret-token-1\nbroken: log-new token-3\n");
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!absl::StrContains(server.output(), "line 2:") && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
    server.CollectOutput();
  }
  testing::CommandResult grpc_wrong = testing::RunCommand(absl::StrCat(
      SEQCLIENT_PATH, " --target=", server.target(),
      " --token=log-wrong-token-4 models 2>&1"));
  EXPECT_THAT(grpc_wrong.output, HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(server.Stop(SIGTERM), 0);
  EXPECT_THAT(server.output(), HasSubstr("line 2: a token must not contain spaces"));
  for (const char* secret :
       {"log-secret-token-1", "log-wrong-token-2", "log-new", "token-3", "log-wrong-token-4"}) {
    EXPECT_THAT(server.output(), Not(HasSubstr(secret)));
  }
}

}  // namespace
}  // namespace seqserve
