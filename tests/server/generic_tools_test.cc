// The README's promise that generic gRPC tools work: buf curl, which knows
// nothing of seqserve, finds every service and method through reflection
// (v1 and v1alpha) and calls each read-only one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "tests/support/server_process.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;

class GenericToolsTest : public ::testing::Test {
 protected:
  testing::CommandResult BufCurl(const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQSERVE_SOURCE_DIR,
                                   "/scripts/buf.sh curl --protocol grpc "
                                   "--http2-prior-knowledge ",
                                   arguments, " 2>&1"));
  }
  std::string Url(const std::string& method = "") {
    return absl::StrCat("http://127.0.0.1:", server_.port(), method);
  }

  ServerProcess server_{SEQSERVE_PATH,
                        {absl::StrCat("--model_repository=", SEQSERVE_MODELS_DIR)}};
};

// Both reflection protocols: v1, which tools try first, and v1alpha.
TEST_F(GenericToolsTest, ReflectionListsEveryServiceAndMethod) {
  ASSERT_TRUE(server_.ready()) << server_.output();
  for (const char* protocol : {"grpc-v1", "grpc-v1alpha"}) {
    const auto listed = BufCurl(
        absl::StrCat("--reflect-protocol ", protocol, " --list-methods ", Url()));
    ASSERT_EQ(listed.exit_code, 0) << protocol << ": " << listed.output;
    for (const char* method :
         {"grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch",
          "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
          "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
          "seqserve.v1.Classifier/Classify", "seqserve.v1.Classifier/GetModelMetadata",
          "seqserve.v1.Classifier/ListModels", "inference.GRPCInferenceService/ModelInfer",
          "inference.GRPCInferenceService/ServerLive",
          "inference.GRPCInferenceService/ModelMetadata"}) {
      EXPECT_THAT(listed.output, HasSubstr(method)) << protocol;
    }
  }
}

TEST_F(GenericToolsTest, EveryReadOnlyMethodAnswersThroughReflection) {
  ASSERT_TRUE(server_.ready()) << server_.output();
  for (const char* protocol : {"grpc-v1", "grpc-v1alpha"}) {
    const auto health = BufCurl(absl::StrCat("--reflect-protocol ", protocol, " ",
                                             Url("/grpc.health.v1.Health/Check")));
    EXPECT_EQ(health.exit_code, 0) << protocol << ": " << health.output;
    EXPECT_THAT(health.output, HasSubstr("\"status\": \"SERVING\"")) << protocol;
  }
  const auto models = BufCurl(Url("/seqserve.v1.Classifier/ListModels"));
  EXPECT_EQ(models.exit_code, 0) << models.output;
  EXPECT_THAT(models.output, HasSubstr("\"name\": \"species\""));
  const auto metadata = BufCurl(absl::StrCat(
      "-d '{\"model\": \"species\"}' ", Url("/seqserve.v1.Classifier/GetModelMetadata")));
  EXPECT_EQ(metadata.exit_code, 0) << metadata.output;
  EXPECT_THAT(metadata.output, HasSubstr("\"inputWidth\": 3"));
  const auto classify = BufCurl(absl::StrCat(
      "-d '{\"model\": \"species\", \"features\": [4, 0, 1], \"rows\": 1}' ",
      Url("/seqserve.v1.Classifier/Classify")));
  EXPECT_EQ(classify.exit_code, 0) << classify.output;
  EXPECT_THAT(classify.output, HasSubstr("\"predictedLabel\": \"mammal\""));
}

}  // namespace
}  // namespace seqserve
