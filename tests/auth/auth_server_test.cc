// The tokens file and the TLS certificate on a real server: a certificate
// replaced by an expired one is refused by both ports (the old one keeps
// serving new connections), a good one reaches both, and /metrics reports
// the certificate in force and the tokens file's state in a form promtool
// accepts.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "auth/tls_files.h"
#include "auth/token_authenticator.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/model_server.h"
#include "tests/auth/log_capture.h"
#include "tests/support/local_server.h"
#include "tests/support/server_process.h"
#include "tests/support/test_certificates.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::LogCapture;
using testing::PemFiles;
using testing::ReadWholeFile;
using testing::ReplaceFile;
using testing::TestCertificates;

absl::Time WholeSeconds(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }

// The value of the series `name` (with its labels, if any) in an exposition
// text; NaN when it is not there.
double SeriesValue(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, name + " ")) {
      double value = 0;
      if (absl::SimpleAtod(line, &value)) return value;
    }
  }
  return std::nan("");
}

class AuthServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = certs_.MakeCa("auth-ca");
    next_ca_ = certs_.MakeCa("auth-next-ca");
    first_not_after_ = WholeSeconds(absl::Now() + absl::Hours(24 * 10));
    first_ = certs_.MakeLeafValid("first", ca_, WholeSeconds(absl::Now() - absl::Hours(1)),
                                  first_not_after_);
    served_ = {certs_.Path("served.pem"), certs_.Path("served.key")};
    ReplaceFile(served_.cert, ReadWholeFile(first_.cert));
    ReplaceFile(served_.key, ReadWholeFile(first_.key));
    tokens_file_ = certs_.Path("tokens.txt");
    ReplaceFile(tokens_file_, "ops:ops-token\n");
    repository_.AddReferenceVersion("species", 1, "species");
    repository_.WriteReferenceConfig("species", "species");
  }
  void TearDown() override {
    server_.reset();  // before the log capture goes: its threads log
    log_.reset();
  }

  void Start() {
    // Short refresh: the test waits on what the watchers log, not a sleep.
    const TlsFiles tls{served_.cert, served_.key, "", absl::Milliseconds(100)};
    auto tokens = TokenAuthenticator::Start({tokens_file_, absl::ZeroDuration()});
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = std::move(*tokens);
    log_ = std::make_unique<LogCapture>();
    ModelServer::Options options;
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    options.authenticator = tokens_.get();
    auto credentials = GrpcServerCredentials(tls);
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    options.credentials = *credentials;
    options.http.tls = tls;
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // A health check on a new connection that trusts only `ca`.
  grpc::Status GrpcHealth(const PemFiles& ca) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadWholeFile(ca.cert);
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // no connection shared
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                             grpc::SslCredentials(ssl), arguments);
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    return stub->Check(&context, request, &response);
  }

  // curl on the HTTPS port trusting only `ca`: the body, then the status.
  std::string Https(const PemFiles& ca, const std::string& path) {
    return testing::RunCommand(
               absl::StrCat("curl -sS --max-time 10 -w '\\n%{http_code}' --cacert ", ca.cert,
                            " -H 'Authorization: Bearer ops-token' https://127.0.0.1:",
                            server_->http_port(), path, " 2>&1"))
        .output;
  }

  std::string Metrics(const PemFiles& ca) {
    const std::string reply = Https(ca, "/metrics");
    EXPECT_TRUE(absl::EndsWith(reply, "\n200")) << reply;
    return reply;
  }

  void Serve(const PemFiles& files) {
    ReplaceFile(served_.key, ReadWholeFile(files.key));
    ReplaceFile(served_.cert, ReadWholeFile(files.cert));
  }

  TestCertificates certs_;
  PemFiles ca_, next_ca_, first_, served_;
  absl::Time first_not_after_;
  std::string tokens_file_;
  testing::TestRepository repository_;
  std::unique_ptr<TokenAuthenticator> tokens_;
  std::unique_ptr<LogCapture> log_;
  std::unique_ptr<ModelServer> server_;
};

TEST_F(AuthServerTest, AnExpiredReplacementIsRefusedByBothPortsAndTheOldCertificateServes) {
  Start();
  ASSERT_TRUE(GrpcHealth(ca_).ok());
  EXPECT_EQ(SeriesValue(Metrics(ca_), "seqserve_tls_certificate_expiry_timestamp_seconds"),
            absl::ToUnixSeconds(first_not_after_));

  const PemFiles expired = certs_.MakeLeafValid(
      "expired", next_ca_, absl::FromUnixSeconds(1577836800), absl::FromUnixSeconds(1609459200));
  Serve(expired);
  const std::string refused =
      "TLS certificate file " + served_.cert + ": the certificate has expired (notBefore "
      "2020-01-01 00:00:00 UTC, notAfter 2021-01-01 00:00:00 UTC";
  ASSERT_TRUE(log_->WaitFor("error gRPC port: " + refused, absl::Seconds(10))) << log_->text();
  ASSERT_TRUE(log_->WaitFor("error HTTP port: " + refused, absl::Seconds(10))) << log_->text();

  // New connections still get the first certificate, on both ports. gRPC's
  // own watcher looks at what it is given every second: new connections
  // are watched over three of its looks, each must get the first one.
  const absl::Time watched = absl::Now() + absl::Seconds(3);
  int connections = 0;
  while (absl::Now() < watched) {
    const grpc::Status grpc = GrpcHealth(ca_);
    ASSERT_TRUE(grpc.ok()) << grpc.error_message() << " after " << connections;
    ++connections;
  }
  EXPECT_FALSE(GrpcHealth(next_ca_).ok());
  EXPECT_THAT(Https(ca_, "/healthz"), HasSubstr("\n200"));
  EXPECT_EQ(SeriesValue(Metrics(ca_), "seqserve_tls_certificate_expiry_timestamp_seconds"),
            absl::ToUnixSeconds(first_not_after_));

  // A good certificate after it reaches both ports, and the metric.
  const absl::Time next_not_after = WholeSeconds(absl::Now() + absl::Hours(24 * 20));
  const PemFiles next =
      certs_.MakeLeafValid("next", next_ca_, WholeSeconds(absl::Now()), next_not_after);
  Serve(next);
  ASSERT_TRUE(log_->WaitFor("info gRPC port: TLS files changed", absl::Seconds(10)));
  ASSERT_TRUE(log_->WaitFor("info HTTP port: TLS files changed", absl::Seconds(10)));
  // gRPC's own watcher reads the checked copy within a second.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  grpc::Status fresh = GrpcHealth(next_ca_);
  while (!fresh.ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
    fresh = GrpcHealth(next_ca_);
  }
  EXPECT_TRUE(fresh.ok()) << fresh.error_message();
  EXPECT_EQ(SeriesValue(Metrics(next_ca_), "seqserve_tls_certificate_expiry_timestamp_seconds"),
            absl::ToUnixSeconds(next_not_after));
}

TEST_F(AuthServerTest, TheMetricsFollowTheTokensFileAndPassPromtool) {
  Start();
  std::string text = Metrics(ca_);
  EXPECT_EQ(SeriesValue(text, "seqserve_auth_tokens_file_valid"), 1);
  EXPECT_EQ(SeriesValue(text, "seqserve_auth_tokens_reload_failures_total"), 0);

  ReplaceFile(tokens_file_, "ops:ops-token\nbroken: two words\n");
  EXPECT_FALSE(tokens_->Refresh());
  text = Metrics(ca_);  // the token in force still works
  EXPECT_EQ(SeriesValue(text, "seqserve_auth_tokens_file_valid"), 0);
  EXPECT_EQ(SeriesValue(text, "seqserve_auth_tokens_reload_failures_total"), 1);
  EXPECT_EQ(SeriesValue(text, "seqserve_tls_certificate_expiry_timestamp_seconds"),
            absl::ToUnixSeconds(first_not_after_));

  // promtool (Debian's prometheus package) checks format and naming.
  const std::string file = certs_.Path("metrics.txt");
  std::ofstream(file) << text.substr(0, text.rfind('\n'));  // without curl's status line
  const testing::CommandResult check = testing::RunCommand("promtool check metrics < " + file +
                                                           " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << "promtool warned";

  // Emptied, the file revokes every token: /metrics too is refused.
  ReplaceFile(tokens_file_, "# everyone revoked\n");
  EXPECT_TRUE(tokens_->Refresh());
  EXPECT_THAT(Https(ca_, "/metrics"), HasSubstr("\n401"));
  EXPECT_TRUE(GrpcHealth(ca_).ok());  // health stays open
}

}  // namespace
}  // namespace seqserve
