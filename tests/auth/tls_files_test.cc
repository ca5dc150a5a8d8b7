#include "auth/tls_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "tests/auth/log_capture.h"
#include "tests/support/test_certificates.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;
using testing::LogCapture;
using testing::PemFiles;
using testing::TestCertificates;

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = certs_.MakeCa("files-ca");
    server_ = certs_.MakeLeaf("files-server", ca_);
    other_ = certs_.MakeLeaf("files-other", ca_);
  }
  TestCertificates certs_;
  PemFiles ca_, server_, other_;
};

TEST_F(TlsFilesTest, AMatchingPairAndACaFileAreAccepted) {
  auto material = ReadTlsFiles({server_.cert, server_.key, ca_.cert});
  ASSERT_TRUE(material.ok()) << material.status();
  EXPECT_THAT(material->cert_chain, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(material->client_ca, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_TRUE(GrpcServerCredentials({server_.cert, server_.key, ""}).ok());
}

TEST_F(TlsFilesTest, AKeyOfAnotherCertificateIsRefusedNamingTheFiles) {
  auto status = ReadTlsFiles({server_.cert, other_.key, ""}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr(other_.key));
  EXPECT_THAT(std::string(status.message()), HasSubstr("does not belong"));
  EXPECT_EQ(GrpcServerCredentials({server_.cert, other_.key, ""}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TlsFilesTest, MissingOrNonPemFilesAreRefusedByName) {
  const std::string missing = certs_.Path("missing.pem");
  auto no_cert = ReadTlsFiles({missing, server_.key, ""}).status();
  EXPECT_EQ(no_cert.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(no_cert.message()), HasSubstr("cannot read TLS certificate file"));
  EXPECT_THAT(std::string(no_cert.message()), HasSubstr(missing));
  // A key where the certificate should be, and a certificate as the key.
  auto swapped = ReadTlsFiles({server_.key, server_.cert, ""}).status();
  EXPECT_THAT(std::string(swapped.message()), HasSubstr("holds no PEM certificate"));
  auto key_is_cert = ReadTlsFiles({server_.cert, server_.cert, ""}).status();
  EXPECT_THAT(std::string(key_is_cert.message()), HasSubstr("holds no PEM private key"));
  auto bad_ca = ReadTlsFiles({server_.cert, server_.key, server_.key}).status();
  EXPECT_THAT(std::string(bad_ca.message()), HasSubstr("TLS client CA file"));
  EXPECT_THAT(std::string(bad_ca.message()), HasSubstr(server_.key));
}

TEST_F(TlsFilesTest, TheStampChangesWhenAFileIsReplaced) {
  const TlsFiles files{server_.cert, server_.key, ""};
  const std::string before = TlsFilesStamp(files);
  EXPECT_EQ(before, TlsFilesStamp(files));
  testing::ReplaceFile(server_.cert, testing::ReadWholeFile(server_.cert));
  EXPECT_NE(before, TlsFilesStamp(files));
}

// Whole seconds, as a certificate's dates are.
absl::Time Seconds(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }

TEST_F(TlsFilesTest, AnExpiredCertificateIsRefusedNamingTheFileAndItsDates) {
  const PemFiles expired =
      certs_.MakeLeafValid("expired", ca_, absl::FromUnixSeconds(1577836800),  // 2020-01-01
                           absl::FromUnixSeconds(1609459200));  // 2021-01-01
  const absl::Status status = ReadTlsFiles({expired.cert, expired.key, ""}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("TLS certificate file " + expired.cert));
  EXPECT_THAT(message, HasSubstr("has expired"));
  EXPECT_THAT(message, HasSubstr("notBefore 2020-01-01 00:00:00 UTC"));
  EXPECT_THAT(message, HasSubstr("notAfter 2021-01-01 00:00:00 UTC"));
  // The gRPC port's start-up check is the same one.
  const absl::Status grpc = GrpcServerCredentials({expired.cert, expired.key, ""}).status();
  EXPECT_EQ(grpc.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(grpc.message()), HasSubstr("has expired"));
  EXPECT_EQ(TlsCertificateExpiry(expired.cert), std::nullopt);
}

TEST_F(TlsFilesTest, ACertificateNotValidYetIsRefusedNamingTheFileAndItsDates) {
  const absl::Time from = Seconds(absl::Now() + absl::Hours(24));
  const absl::Time to = from + absl::Hours(24 * 30);
  const PemFiles early = certs_.MakeLeafValid("early", ca_, from, to);
  const absl::Status status = ReadTlsFiles({early.cert, early.key, ""}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("TLS certificate file " + early.cert));
  EXPECT_THAT(message, HasSubstr("not valid yet"));
  const auto utc = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
  };
  EXPECT_THAT(message, HasSubstr("notBefore " + utc(from)));
  EXPECT_THAT(message, HasSubstr("notAfter " + utc(to)));

  // Up to kTlsClockSkew early is taken: a clock a little behind the
  // issuer's does not refuse a certificate issued a moment ago.
  const TlsFiles files{early.cert, early.key, ""};
  EXPECT_TRUE(ReadTlsFiles(files, from - kTlsClockSkew + absl::Seconds(1)).ok());
  EXPECT_FALSE(ReadTlsFiles(files, from - kTlsClockSkew - absl::Seconds(1)).ok());
  // Past its notAfter, expired.
  EXPECT_TRUE(ReadTlsFiles(files, to).ok());
  EXPECT_THAT(std::string(ReadTlsFiles(files, to + absl::Seconds(1)).status().message()),
              HasSubstr("has expired"));
}

TEST_F(TlsFilesTest, ACertificateExpiringWithinAWeekIsServedWithOneWarning) {
  const absl::Time now = absl::Now();
  const absl::Time to = Seconds(now + absl::Hours(3 * 24));
  const PemFiles soon = certs_.MakeLeafValid("soon", ca_, Seconds(now - absl::Hours(1)), to);
  LogCapture log;
  auto material = ReadTlsFiles({soon.cert, soon.key, ""});
  ASSERT_TRUE(material.ok()) << material.status();
  EXPECT_EQ(material->not_after, to);
  EXPECT_EQ(TlsCertificateExpiry(soon.cert), to);
  // Both ports read the files at start: the same certificate warns once.
  ASSERT_TRUE(GrpcServerCredentials({soon.cert, soon.key, ""}).ok());
  const std::vector<std::string> warnings = log.Lines("warning TLS certificate file " + soon.cert);
  ASSERT_THAT(warnings, SizeIs(1)) << log.text();
  EXPECT_THAT(warnings[0], HasSubstr("expires in 71h"));
  EXPECT_THAT(warnings[0],
              HasSubstr("notAfter " + absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", to,
                                                       absl::UTCTimeZone())));

  // A certificate good for longer, in the same file, replaces it without a
  // warning; one expiring soon again warns again.
  const absl::Time later = Seconds(now + absl::Hours(30 * 24));
  const PemFiles lasting = certs_.MakeLeafValid("lasting", ca_, Seconds(now), later);
  testing::ReplaceFile(soon.cert, testing::ReadWholeFile(lasting.cert));
  testing::ReplaceFile(soon.key, testing::ReadWholeFile(lasting.key));
  ASSERT_TRUE(ReadTlsFiles({soon.cert, soon.key, ""}).ok());
  EXPECT_EQ(TlsCertificateExpiry(soon.cert), later);
  EXPECT_THAT(log.Lines("warning TLS certificate file " + soon.cert), SizeIs(1));
  ASSERT_TRUE(ReadTlsFiles({soon.cert, soon.key, ""}, later - absl::Hours(24)).ok());
  EXPECT_THAT(log.Lines("warning TLS certificate file " + soon.cert), SizeIs(1));
}

TEST_F(TlsFilesTest, ARefusedCertificateLeavesTheExpiryOfTheOneInForce) {
  auto material = ReadTlsFiles({server_.cert, server_.key, ""});
  ASSERT_TRUE(material.ok()) << material.status();
  const std::optional<absl::Time> in_force = TlsCertificateExpiry(server_.cert);
  ASSERT_TRUE(in_force.has_value());
  EXPECT_EQ(*in_force, material->not_after);
  const PemFiles expired = certs_.MakeLeafValid("expired-next", ca_, absl::FromUnixSeconds(1),
                                                absl::FromUnixSeconds(86400));
  testing::ReplaceFile(server_.cert, testing::ReadWholeFile(expired.cert));
  testing::ReplaceFile(server_.key, testing::ReadWholeFile(expired.key));
  EXPECT_FALSE(ReadTlsFiles({server_.cert, server_.key, ""}).ok());
  EXPECT_EQ(TlsCertificateExpiry(server_.cert), in_force);
}

}  // namespace
}  // namespace seqserve
