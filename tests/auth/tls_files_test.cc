#include "auth/tls_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/test_certificates.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
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

}  // namespace
}  // namespace seqserve
