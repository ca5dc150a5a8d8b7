// --help of every program: its own flags, grouped, with defaults.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/support/server_process.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::CommandResult;
using testing::RunCommand;

TEST(Help, SeqserveListsItsOwnFlagsInGroupsWithDefaults) {
  const CommandResult result = RunCommand(absl::StrCat(SEQSERVE_PATH, " --help"));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output, Not(HasSubstr("No flags matched")));
  for (const char* group : {"\nserving:\n", "\nrepository:\n", "\nbatching (", "\nlimits:\n",
                            "\nnetwork (gRPC):\n", "\nsecurity:\n", "\nHTTP:\n"}) {
    EXPECT_THAT(result.output, HasSubstr(group));
  }
  EXPECT_THAT(result.output, HasSubstr("  --max_batch_rows=256\n      Dynamic batching"));
  EXPECT_THAT(result.output, HasSubstr("  --model_repository=models\n"));
  EXPECT_THAT(result.output, HasSubstr("  --http_port=8501\n"));
  EXPECT_THAT(result.output, HasSubstr("  --tls_cert_file=\"\"\n"));
  // Every flag of seqserve's own is in a group, and no library's flag is.
  EXPECT_THAT(result.output, Not(HasSubstr("\nother:\n")));
  EXPECT_THAT(result.output, Not(HasSubstr("--flagfile")));
}

TEST(Help, SeqclientListsEveryCommandOrOne) {
  CommandResult result = RunCommand(absl::StrCat(SEQCLIENT_PATH, " --help"));
  EXPECT_EQ(result.exit_code, 0);
  for (const char* group : {"\nclassify:\n", "\nmodels:\n", "\nmetadata:\n", "\nhealth:\n",
                            "\nbench:\n", "\nconnection (every command):\n"}) {
    EXPECT_THAT(result.output, HasSubstr(group));
  }
  EXPECT_THAT(result.output, HasSubstr("  --target=\"\"\n"));
  EXPECT_THAT(result.output, HasSubstr("default: $SEQSERVE_TARGET, else localhost:8500"));
  EXPECT_THAT(result.output, Not(HasSubstr("\nother:\n")));
  result = RunCommand(absl::StrCat(SEQCLIENT_PATH, " classify --help"));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("\nclassify:\n  --model=\"\"\n"));
  EXPECT_THAT(result.output, HasSubstr("  --input=\"\"\n"));
  EXPECT_THAT(result.output, HasSubstr("\nconnection (every command):\n"));
  EXPECT_THAT(result.output, Not(HasSubstr("\nbench:\n")));
  EXPECT_THAT(result.output, Not(HasSubstr("  --concurrency=")));
}

TEST(Help, SeqmodelListsRunsFlags) {
  const CommandResult result = RunCommand(absl::StrCat(SEQMODEL_PATH, " --help"));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("seqmodel inspect FILE"));
  EXPECT_THAT(result.output, HasSubstr("\nrun:\n  --output=default\n"));
  EXPECT_THAT(result.output, HasSubstr("  --config=\"\"\n"));
  EXPECT_THAT(result.output, Not(HasSubstr("\nother:\n")));
}

}  // namespace
}  // namespace seqserve
