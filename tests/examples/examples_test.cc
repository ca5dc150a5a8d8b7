// The Python and Node.js examples against a live seqserve: the "any
// language" promise, checked with real gRPC stacks, on the samples and on
// a repository whose model has another name; and a TF Serving REST client
// that posts api_rest.md's documents with Python's standard library.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/support/sample_server_fixture.h"
#include "tests/support/test_certificates.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;

// The command that runs one example against `target`; `arguments` follow.
std::string Python(const std::string& target, const std::string& arguments) {
  return absl::StrCat("/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/classify.py --target ",
                      target, " --stubs " SEQSERVE_PYTHON_STUBS " ", arguments, " 2>&1");
}
std::string Node(const std::string& target, const std::string& arguments) {
  // scripts/test.sh installs the locked packages (npm ci) first.
  return absl::StrCat("node " SEQSERVE_EXAMPLES_DIR "/node/classify.js --target ", target, " ",
                      arguments, " 2>&1");
}

// The TF Serving REST client (Python's standard library only) against the
// HTTP port at `url`.
std::string TfServingRest(const std::string& url, const std::string& arguments) {
  return absl::StrCat("/usr/bin/python3 " SEQSERVE_EXAMPLES_DIR "/python/tf_serving_rest.py --url ",
                      url, " ", arguments, " 2>&1");
}

// The lines of `output` that start with `prefix`, without it.
std::vector<std::string> LinesAfter(const std::string& output, const std::string& prefix) {
  std::vector<std::string> found;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StartsWith(line, prefix)) found.emplace_back(line.substr(prefix.size()));
  }
  return found;
}

using Example = std::string (*)(const std::string&, const std::string&);
constexpr Example kExamples[] = {Python, Node};

class ExamplesTest : public testing::SampleServerTest {};

TEST_F(ExamplesTest, BothClassifyRowsFromArgumentsOrStdin) {
  for (Example example : kExamples) {
    auto result = RunCommand(example(server_->target(), "--model species 4,0,1 2,1,0 0,1,0"));
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("species v1 (softmax)"));
    EXPECT_THAT(result.output, HasSubstr("  4,0,1 -> mammal scores 0.000000 1.000000"));
    EXPECT_THAT(result.output, HasSubstr("  2,1,0 -> bird scores 0.999925"));
    EXPECT_THAT(result.output, HasSubstr("  0,1,0 -> reptile scores"));
    result = RunCommand(
        absl::StrCat("printf '# limbs,eggs,hair\\n4,0,1\\n\\n2,1,0\\n' | ",
                     example(server_->target(), "--model mammal --output logits")));
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("mammal v1 (logits)"));
    EXPECT_THAT(result.output, HasSubstr("  4,0,1 -> mammal scores"));
    EXPECT_THAT(result.output, HasSubstr("  2,1,0 -> not mammal scores -"));
  }
}

// Each prints the status code's name and the server's message.
TEST_F(ExamplesTest, BothPrintTheStatusCodeName) {
  for (Example example : kExamples) {
    auto result =
        RunCommand(example(server_->target(), "--model mammal --output log_softmax 4,0,1"));
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output,
                HasSubstr("INVALID_ARGUMENT: model 'mammal' has one output; log_softmax over "
                          "it is always 0, ask for sigmoid"));
    result = RunCommand(example(server_->target(), "--model species 4,0"));
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output, HasSubstr("INVALID_ARGUMENT: model 'species' takes 3 features"));
    result = RunCommand(example(server_->target(), "--model species 4,x,1"));
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("row 1: '4,x,1' is not comma-separated numbers"));
  }
}

// A repository whose model is neither species nor mammal: nothing in the
// examples names the samples.
TEST(Examples, BothServeARepositoryOfOtherNames) {
  testing::TestRepository repository;
  repository.AddReferenceVersion("animals", 3, "species");
  repository.WriteReferenceConfig("animals", "species");
  ServerProcess server(SEQSERVE_PATH, {absl::StrCat("--model_repository=", repository.root()),
                                       "--poll_seconds=0"});
  ASSERT_TRUE(server.ready()) << server.output();
  for (Example example : kExamples) {
    auto result = RunCommand(example(server.target(), "--model animals --output softmax 4,0,1"));
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("animals v3 (softmax)"));
    EXPECT_THAT(result.output, HasSubstr("  4,0,1 -> mammal scores"));
    result = RunCommand(example(server.target(), "--model species 4,0,1"));
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.output, HasSubstr("NOT_FOUND: model 'species' is not served"));
  }
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
  const std::string arguments = absl::StrCat("--model species --tls_ca_file ", ca.cert, " 4,0,1");
  for (Example example : kExamples) {
    auto result = RunCommand("SEQSERVE_TOKEN=example-token " + example(target, arguments));
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("  4,0,1 -> mammal scores"));
    result = RunCommand(example(target, arguments + " --token example-token"));
    ASSERT_EQ(result.exit_code, 0) << result.output;
    result = RunCommand(example(target, arguments));
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.output, HasSubstr("UNAUTHENTICATED: this server requires a bearer token"));
  }
  // The TF Serving REST client over HTTPS on the HTTP port.
  const std::string url = absl::StrCat("https://localhost:", secure.http_port());
  const std::string rest = absl::StrCat("--model species --call predict --tls_ca_file ", ca.cert,
                                        " 4,0,1");
  auto result = RunCommand("SEQSERVE_TOKEN=example-token " + TfServingRest(url, rest));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("  4,0,1 -> "));
  result = RunCommand(TfServingRest(url, rest));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("HTTP 401: this server requires a bearer token"));
}

// A TF Serving REST client: status, metadata, predict in rows and in
// columns, classify with a shared context; the same scores each way.
TEST_F(ExamplesTest, TfServingRestClientPostsApiRestsDocuments) {
  const std::string url = absl::StrCat("http://127.0.0.1:", server_->http_port());
  auto result = RunCommand(TfServingRest(url, "--model species 4,0,1 2,1,0 0,1,0"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("GET /v1/models/species\n  version 1: AVAILABLE (OK)\n"));
  EXPECT_THAT(result.output,
              HasSubstr("  species version 1: features DT_FLOAT [-1, 3] -> scores DT_FLOAT "
                        "[-1, 3]\n  feature names: limbs, lays_eggs, has_hair\n"));
  EXPECT_THAT(result.output, HasSubstr(
      R"(POST /v1/models/species:predict {"instances": [[4.0, 0.0, 1.0], [2.0, 1.0, 0.0], )"));
  EXPECT_THAT(result.output, HasSubstr(
      R"(POST /v1/models/species:predict {"inputs": {"limbs": [4.0, 2.0, 0.0], )"));
  EXPECT_THAT(result.output, HasSubstr("  2,1,0 -> 0.99992"));
  // Rows and columns answer the same numbers, which classify names.
  const std::vector<std::string> rows = LinesAfter(result.output, "  4,0,1 -> ");
  ASSERT_EQ(rows.size(), 3u) << result.output;
  EXPECT_EQ(rows[0], rows[1]);
  const std::vector<std::string> scores = absl::StrSplit(rows[0], ' ');
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_EQ(rows[2], absl::StrCat("mammal (bird ", scores[0], ", mammal ", scores[1],
                                  ", reptile ", scores[2], ")"));
  EXPECT_THAT(result.output, HasSubstr("  2,1,0 -> bird (bird 0.99992"));
  EXPECT_THAT(result.output, HasSubstr("  0,1,0 -> reptile (bird "));

  // A feature every row shares goes into the context; a binary model
  // answers both classes.
  result = RunCommand("printf '4,0,1\\n6,1,1\\n' | " +
                      TfServingRest(url, "--model mammal --call classify"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr(
      R"({"signature_name": "serving_default", "context": {"has_hair": 1.0}, )"
      R"("examples": [{"limbs": 4.0, "lays_eggs": 0.0}, {"limbs": 6.0, "lays_eggs": 1.0}]})"));
  EXPECT_THAT(result.output, HasSubstr("  4,0,1 -> mammal (not mammal "));

  // A refusal prints its status and the server's {"error": ...}.
  result = RunCommand(TfServingRest(url, "--model species --call predict 4,0"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("HTTP 400: model 'species' takes 3 features per row"));
  result = RunCommand(TfServingRest(url, "--model nope --call status"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("HTTP 404: model 'nope' is not served"));
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
      server_->target(), " --stubs " SEQSERVE_PYTHON_STUBS " --model species --output softmax "
      "4,0,1"));
  EXPECT_THAT(v1.output, HasSubstr("4,0,1 -> mammal scores 0.000000 1.000000 0.000000"));
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
