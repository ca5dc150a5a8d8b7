// What the server's log says: one info line per model event with the
// version and the reason, one debug line per call, as text or JSON Lines.
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/support/server_process.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TestRepository;

// Waits until the server has printed `text`; false after 10 s.
bool WaitForLog(ServerProcess& server, const std::string& text) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!absl::StrContains(server.output(), text)) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(50));
    server.CollectOutput();
  }
  return true;
}

TEST(ServerLog, ModelEventsAndCallsAsJsonLines) {
  TestRepository repository;
  repository.AddReferenceVersion("animals", 1, "species");
  repository.WriteReferenceConfig("animals", "species");
  ServerProcess server(SEQSERVE_PATH,
                       {"--model_repository=" + repository.root(), "--poll_seconds=0.2",
                        "--log_level=debug", "--log_format=json"});
  ASSERT_TRUE(server.ready()) << server.output();
  EXPECT_TRUE(WaitForLog(server, "model animals version 1 loaded from ")) << server.output();

  const auto call = RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(),
                                            " classify --model animals 4,0,1 2,1,0"));
  ASSERT_EQ(call.exit_code, 0) << call.output;
  EXPECT_TRUE(WaitForLog(server, "call grpc Classify model='animals' version=1 rows=2 "
                                 "code=OK duration_ms="))
      << server.output();
  const auto missing = RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(),
                                               " classify --model unicorn 4,0,1"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(WaitForLog(server, "model='unicorn' version=0 rows=0 code=NOT_FOUND"))
      << server.output();
  // The failure's message is on the same line, and only there.
  EXPECT_TRUE(WaitForLog(server, ": model 'unicorn' is not served")) << server.output();
  const std::string output = server.output();
  size_t mentions = 0;
  for (size_t at = output.find("is not served"); at != std::string::npos;
       at = output.find("is not served", at + 1)) {
    ++mentions;
  }
  EXPECT_EQ(mentions, 1u) << output;

  // Version 2 arrives: under the default policy version 1 goes, and says why.
  repository.AddReferenceVersion("animals", 2, "species");
  EXPECT_TRUE(WaitForLog(server, "model animals version 2 loaded from ")) << server.output();
  EXPECT_TRUE(WaitForLog(server, "model animals version 1 unloaded: the version policy, "
                                 "latest 1 (the default), no longer selects it"))
      << server.output();
  repository.WriteReferenceConfig("animals", "species", "description: 'changed'");
  EXPECT_TRUE(WaitForLog(server, "model animals: config applied from ")) << server.output();
  EXPECT_TRUE(WaitForLog(server, "config.textproto to version 2\"")) << server.output();
  repository.Remove("animals/2");
  EXPECT_TRUE(WaitForLog(server, "model animals version 2 unloaded: its directory is gone"))
      << server.output();

  // Every line the server's log wrote is one JSON object.
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(server.output(), '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "{\"time\":")) {
      EXPECT_FALSE(absl::StartsWith(line, "[20")) << "a text line: " << line;
      continue;
    }
    google::protobuf::Struct json;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &json).ok())
        << line;
    EXPECT_TRUE(json.fields().contains("level")) << line;
    EXPECT_TRUE(json.fields().contains("message")) << line;
    ++lines;
  }
  EXPECT_GE(lines, 8) << server.output();
}

// A config that cannot apply is an error naming the version, and no line
// says it was applied; load times read in one format; counts agree in number.
TEST(ServerLog, AConfigRefusalIsNotCalledAppliedAndLoadTimesReadAlike) {
  TestRepository repository;
  repository.AddReferenceVersion("animals", 1, "species");
  ServerProcess server(SEQSERVE_PATH,
                       {"--model_repository=" + repository.root(), "--poll_seconds=0.2"});
  ASSERT_TRUE(server.ready()) << server.output();
  EXPECT_TRUE(WaitForLog(server, "model animals version 1 loaded from ")) << server.output();
  EXPECT_TRUE(WaitForLog(server, ": 1 model, 1 version available, loaded in ")) << server.output();
  EXPECT_THAT(server.output(), ::testing::ContainsRegex(
                                   "version 1 loaded from [^\n]* in [0-9]+\\.[0-9] ms\n"));
  EXPECT_THAT(server.output(), ::testing::ContainsRegex(
                                   "version available, loaded in [0-9]+\\.[0-9] ms\n"));

  // One label for three outputs: the version keeps its config.
  repository.WriteFile("animals/config.textproto", "labels: [\"only\"]\n");
  EXPECT_TRUE(WaitForLog(server, "model animals version 1: config not applied: "))
      << server.output();
  absl::SleepFor(absl::Milliseconds(500));
  server.CollectOutput();
  EXPECT_THAT(server.output(), ::testing::Not(HasSubstr("config applied")));
  repository.WriteReferenceConfig("animals", "species");
  EXPECT_TRUE(WaitForLog(server, "model animals: config applied from ")) << server.output();
  EXPECT_TRUE(WaitForLog(server, "to version 1\n")) << server.output();
  EXPECT_THAT(server.output(), ::testing::Not(HasSubstr("versions []")));
}

TEST(ServerLog, AtInfoCallsAreNotLoggedAndAnUnknownFormatIsRefused) {
  TestRepository repository;
  repository.AddReferenceVersion("animals", 1, "species");
  ServerProcess server(SEQSERVE_PATH,
                       {"--model_repository=" + repository.root(), "--poll_seconds=0"});
  ASSERT_TRUE(server.ready()) << server.output();
  const auto call = RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server.target(),
                                            " classify --model animals 4,0,1"));
  ASSERT_EQ(call.exit_code, 0) << call.output;
  EXPECT_EQ(server.Stop(SIGTERM), 0);
  EXPECT_THAT(server.output(), HasSubstr("] [info] model animals version 1 loaded from "));
  EXPECT_THAT(server.output(), ::testing::Not(HasSubstr("call grpc Classify")));

  const auto refused = RunCommand(absl::StrCat(SEQSERVE_PATH, " --log_format=xml"));
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.output, HasSubstr("--log_format=xml is not one of: text, json"));
}

}  // namespace
}  // namespace seqserve
