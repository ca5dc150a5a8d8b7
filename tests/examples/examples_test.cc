// The Python and Node.js examples against a live seqserve on the samples:
// the "any language" promise, checked with real gRPC stacks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/support/sample_server_fixture.h"
#include "tests/support/test_certificates.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;

class ExamplesTest : public testing::SampleServerTest {
 protected:
  static void ExpectSampleAnswers(const testing::CommandResult& result) {
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("species v1 (OUTPUT_MODE_SOFTMAX)"));
    EXPECT_THAT(result.output, HasSubstr("dog    -> mammal"));
    EXPECT_THAT(result.output, HasSubstr("eagle  -> bird"));
    EXPECT_THAT(result.output, HasSubstr("snake  -> reptile"));
    EXPECT_THAT(result.output, HasSubstr("mammal v1 (OUTPUT_MODE_SIGMOID)"));
    EXPECT_THAT(result.output, HasSubstr("eagle  -> not mammal"));
  }
};

TEST_F(ExamplesTest, PythonClientClassifiesTheSamples) {
  ExpectSampleAnswers(RunCommand(absl::StrCat(
      "/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/classify.py --target ",
      server_->target(), " --stubs " SEQSERVE_PYTHON_STUBS)));
}

TEST_F(ExamplesTest, NodeClientClassifiesTheSamples) {
  // scripts/test.sh installs the locked packages (npm ci) first.
  ExpectSampleAnswers(RunCommand(
      absl::StrCat("node " SEQSERVE_EXAMPLES_DIR "/node/classify.js ", server_->target())));
}

// Log-probabilities for the three-class model; the one-output model refuses
// them as it refuses softmax.
void ExpectLogSoftmaxAnswers(const testing::CommandResult& result) {
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("species v1 (OUTPUT_MODE_LOG_SOFTMAX)"));
  EXPECT_THAT(result.output, HasSubstr("dog    -> mammal"));
  EXPECT_THAT(result.output, HasSubstr("snake  -> reptile"));
  EXPECT_THAT(result.output, HasSubstr("model 'mammal' has one output; log_softmax over it is "
                                       "always 0, ask for sigmoid"));
}

TEST_F(ExamplesTest, PythonClientAsksForLogSoftmax) {
  const auto result = RunCommand(absl::StrCat(
      "/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/classify.py --target ",
      server_->target(), " --stubs " SEQSERVE_PYTHON_STUBS " --output log_softmax"));
  ExpectLogSoftmaxAnswers(result);
  EXPECT_THAT(result.output, HasSubstr("mammal: INVALID_ARGUMENT"));
}

TEST_F(ExamplesTest, NodeClientAsksForLogSoftmax) {
  const auto result = RunCommand(absl::StrCat("node " SEQSERVE_EXAMPLES_DIR "/node/classify.js ",
                                              server_->target(), " log_softmax"));
  ExpectLogSoftmaxAnswers(result);
  EXPECT_THAT(result.output, HasSubstr("3: model 'mammal' has one output"));
}

TEST_F(ExamplesTest, ClientsReportAnUnknownModel) {
  // Both examples ask for species and mammal; a server without them fails.
  testing::TestRepository repository;
  repository.AddReferenceVersion("other", 1, "species");
  ServerProcess empty(SEQSERVE_PATH, {absl::StrCat("--model_repository=", repository.root()),
                                      "--poll_seconds=0"});
  ASSERT_TRUE(empty.ready()) << empty.output();
  const auto python = RunCommand(absl::StrCat(
      "/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/classify.py --target ",
      empty.target(), " --stubs " SEQSERVE_PYTHON_STUBS));
  EXPECT_EQ(python.exit_code, 1);
  EXPECT_THAT(python.output, HasSubstr("NOT_FOUND"));
  const auto node = RunCommand(
      absl::StrCat("node " SEQSERVE_EXAMPLES_DIR "/node/classify.js ", empty.target()));
  EXPECT_EQ(node.exit_code, 1);
  EXPECT_THAT(node.output, HasSubstr("5: model 'species' is not served"));
}

TEST_F(ExamplesTest, ClientsSpeakTlsAndSendAToken) {
  testing::TestCertificates certs;
  const testing::PemFiles ca = certs.MakeCa("examples-ca");
  const testing::PemFiles server_cert = certs.MakeLeaf("localhost", ca);
  const std::string tokens = certs.Path("tokens.txt");
  testing::ReplaceFile(tokens, "examples:example-token\n");
  ServerProcess secure(
      SEQSERVE_PATH,
      {"--model_repository=" SEQSERVE_MODELS_DIR, "--tls_cert_file=" + server_cert.cert,
       "--tls_key_file=" + server_cert.key, "--auth_tokens_file=" + tokens},
      grpc::SslCredentials(grpc::SslCredentialsOptions{testing::ReadWholeFile(ca.cert), "", ""}));
  ASSERT_TRUE(secure.ready()) << secure.output();
  // The certificate names localhost and 127.0.0.1.
  const std::string target = absl::StrCat("localhost:", secure.port());
  const std::string python = absl::StrCat(
      "/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/classify.py --target ", target,
      " --stubs " SEQSERVE_PYTHON_STUBS " --tls_ca_file ", ca.cert);
  const std::string node =
      absl::StrCat("node " SEQSERVE_EXAMPLES_DIR "/node/classify.js ", target,
                   " --tls_ca_file ", ca.cert);
  ExpectSampleAnswers(RunCommand(absl::StrCat("SEQSERVE_TOKEN=example-token ", python, " 2>&1")));
  ExpectSampleAnswers(RunCommand(absl::StrCat(node, " --token example-token 2>&1")));
  const auto python_without = RunCommand(python + " 2>&1");
  EXPECT_EQ(python_without.exit_code, 1);
  EXPECT_THAT(python_without.output, HasSubstr("UNAUTHENTICATED"));
  const auto node_without = RunCommand(node + " 2>&1");
  EXPECT_EQ(node_without.exit_code, 1);
  EXPECT_THAT(node_without.output, HasSubstr("16: this server requires a bearer token"));
}

// The Open Inference Protocol example: typed and raw tensors give the v1
// example's scores, and the classification extension names the classes.
TEST_F(ExamplesTest, PythonV2ClientGivesTheSameScoresTypedAndRaw) {
  const std::string v2 = absl::StrCat(
      "/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/classify_v2.py --target ",
      server_->target(), " --stubs " SEQSERVE_PYTHON_STUBS " --model species --output softmax");
  const auto typed = RunCommand(v2 + " 2>&1");
  ASSERT_EQ(typed.exit_code, 0) << typed.output;
  EXPECT_THAT(typed.output, HasSubstr("row 0 softmax: 0.000000 1.000000 0.000000"));
  const auto raw = RunCommand(v2 + " --raw 2>&1");
  ASSERT_EQ(raw.exit_code, 0) << raw.output;
  EXPECT_EQ(raw.output, typed.output);
  // The v1 example prints the same scores for the same rows.
  const auto v1 = RunCommand(absl::StrCat(
      "/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/classify.py --target ",
      server_->target(), " --stubs " SEQSERVE_PYTHON_STUBS " --output softmax"));
  EXPECT_THAT(v1.output, HasSubstr("dog    -> mammal      scores 0.000000 1.000000 0.000000"));
  const auto classes = RunCommand(v2 + " --classification 1 --raw 2>&1");
  ASSERT_EQ(classes.exit_code, 0) << classes.output;
  EXPECT_THAT(classes.output, HasSubstr(":1:mammal"));
  EXPECT_THAT(classes.output, HasSubstr(":0:bird"));
  EXPECT_THAT(classes.output, HasSubstr(":2:reptile"));
  const auto unknown = RunCommand(absl::StrCat(
      "/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/classify_v2.py --target ",
      server_->target(), " --stubs " SEQSERVE_PYTHON_STUBS " --model nope 2>&1"));
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("nope: NOT_FOUND: model 'nope' is not served"));
}

}  // namespace
}  // namespace seqserve
