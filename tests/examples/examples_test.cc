// The Python and Node.js examples against a live seqserve on the samples:
// the "any language" promise, checked with real gRPC stacks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/support/sample_server_fixture.h"
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

}  // namespace
}  // namespace seqserve
