// The seqserve binary's start-up checks: every bad flag and a missing
// repository end the process at once with a message naming the problem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "tests/support/server_process.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;

testing::CommandResult RunSeqserve(const std::string& arguments) {
  return RunCommand(absl::StrCat(SEQSERVE_PATH, " --model_repository=",
                                 SEQSERVE_MODELS_DIR, " ", arguments, " 2>&1"));
}

TEST(SeqserveFlags, EveryBadValueIsNamedAndEndsTheStart) {
  const struct {
    const char* flag;
    const char* message;
  } cases[] = {
      {"--port=70000", "--port=70000 is out of range: allowed 0 to 65535"},
      {"--max_message_bytes=0", "--max_message_bytes=0 is out of range: allowed 4096"},
      {"--log_level=shout", "--log_level=shout is not one of: trace, debug, info"},
      {"--inference_threads=100000", "--inference_threads=100000 is out of range"},
      {"--poll_seconds=-1", "--poll_seconds=-1 is out of range"},
      {"--max_batch_rows=0", "--max_batch_rows=0 is out of range: allowed 1"},
      {"--max_request_memory_bytes=5", "--max_request_memory_bytes=5 is out of range"},
      {"--host=", "--host must not be empty"},
      {"--max_model_bytes=5", "--max_model_bytes=5 is out of range: allowed 1024"},
  };
  for (const auto& c : cases) {
    const auto result = RunSeqserve(c.flag);
    EXPECT_EQ(result.exit_code, 2) << c.flag << ": " << result.output;
    EXPECT_THAT(result.output, HasSubstr(c.message)) << c.flag;
  }
}

TEST(SeqserveFlags, AMissingRepositoryEndsTheStart) {
  const auto result = RunCommand(absl::StrCat(
      SEQSERVE_PATH, " --port=0 --model_repository=/nonexistent/models 2>&1"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("/nonexistent/models cannot be read"));
}

}  // namespace
}  // namespace seqserve
