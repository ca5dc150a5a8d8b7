// The seqserve binary's start-up checks: every bad flag, a missing
// repository, a busy HTTP port and an access log it cannot write end the
// process at once with a message naming the problem. And what only the
// process does: SIGHUP reopens the access log after rotation; --sched_batch
// sets the scheduling policy of every thread.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/http_client.h"
#include "tests/support/server_process.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
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
      {"--max_buffered_request_bytes=2000000000000",
       "--max_buffered_request_bytes=2000000000000 is out of range: allowed 0 to"},
      {"--host=", "--host must not be empty"},
      {"--max_model_bytes=5", "--max_model_bytes=5 is out of range: allowed 1024"},
      {"--http_port=-2", "--http_port=-2 is out of range: allowed -1 to 65535"},
      {"--http_threads=0", "--http_threads=0 is out of range: allowed 1 to 64"},
      {"--http_idle_timeout_seconds=0", "--http_idle_timeout_seconds=0 is out of range"},
      {"--http_max_connections_per_client=2000000",
       "--http_max_connections_per_client=2000000 is out of range: allowed 0 to"},
      {"--drain_quiet_seconds=-1", "--drain_quiet_seconds=-1 is out of range"},
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

TEST(SeqserveFlags, ABusyHttpPortEndsTheStart) {
  // Hold a port with a listening socket of our own.
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  socklen_t length = sizeof(address);
  getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  const auto result =
      RunSeqserve(absl::StrCat("--port=0 --host=127.0.0.1 --http_port=", port));
  close(holder);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr(absl::StrCat("cannot listen for HTTP on 127.0.0.1:",
                                                    port)));
}

// gRPC reports a port in use as a kilobyte of its internal error tree: the
// start ends with one line instead.
TEST(SeqserveFlags, ABusyGrpcPortEndsTheStartWithOneLine) {
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  socklen_t length = sizeof(address);
  getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  const auto result = RunSeqserve(absl::StrCat("--http_port=-1 --port=", port));
  close(holder);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr(absl::StrCat("UNAVAILABLE: cannot listen on 0.0.0.0:", port,
                                     ": the port is in use by another process")));
  EXPECT_THAT(result.output, Not(HasSubstr("file_line")));
  EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1)
      << result.output;
}

TEST(SeqserveFlags, AnAccessLogItCannotWriteEndsTheStart) {
  const auto result = RunSeqserve("--port=0 --http_port=-1 --access_log=/nonexistent/a.log");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("cannot open the access log /nonexistent/a.log"));
}

TEST(SeqserveProcess, HttpPortMinusOneMeansNone) {
  testing::ServerProcess server(SEQSERVE_PATH, {absl::StrCat("--model_repository=",
                                                             SEQSERVE_MODELS_DIR),
                                                "--http_port=-1"});
  ASSERT_TRUE(server.ready()) << server.output();
  EXPECT_EQ(server.http_port(), 0);
  EXPECT_THAT(server.output(), HasSubstr("no HTTP port"));
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(SeqserveProcess, ABufferedBytesLimitBelowTwiceTheLargestMessageIsRaisedToThat) {
  // Raising --max_message_bytes past the default limit must not stop the
  // start; a limit below it could refuse every message of that size.
  testing::ServerProcess server(
      SEQSERVE_PATH, {absl::StrCat("--model_repository=", SEQSERVE_MODELS_DIR),
                      "--max_message_bytes=536870912", "--max_buffered_request_bytes=1000"});
  ASSERT_TRUE(server.ready()) << server.output();
  EXPECT_THAT(server.output(),
              HasSubstr("--max_buffered_request_bytes=1000 is below twice "
                        "--max_message_bytes=536870912: raised to 1073741824"));
  EXPECT_EQ(server.Stop(SIGTERM), 0);
  // Left at its default, the limit is raised without a word.
  testing::ServerProcess quiet(
      SEQSERVE_PATH, {absl::StrCat("--model_repository=", SEQSERVE_MODELS_DIR),
                      "--max_message_bytes=536870912"});
  ASSERT_TRUE(quiet.ready()) << quiet.output();
  EXPECT_EQ(quiet.Stop(SIGTERM), 0);
  EXPECT_THAT(quiet.output(), Not(HasSubstr("--max_buffered_request_bytes")));
}

// The scheduling policy of every thread of `pid`, by thread id; a thread
// that ended between the listing and the query is left out.
std::vector<std::pair<pid_t, int>> ThreadPolicies(pid_t pid) {
  std::vector<std::pair<pid_t, int>> policies;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"))) {
    const pid_t tid = std::stoi(task.path().filename().string());
    const int policy = sched_getscheduler(tid);
    if (policy == -1 && errno == ESRCH) continue;
    policies.emplace_back(tid, policy);
  }
  return policies;
}

TEST(SeqserveProcess, SchedBatchCoversEveryThreadAndOnlyWhenAsked) {
  // Without the flag the server keeps the policy it was started with: this
  // test's own.
  const int inherited = sched_getscheduler(0);
  if (inherited == SCHED_BATCH) {
    GTEST_SKIP() << "this test itself runs under SCHED_BATCH: it cannot tell the flag's effect";
  }
  for (const bool batch : {true, false}) {
    testing::ServerProcess server(
        SEQSERVE_PATH, {absl::StrCat("--model_repository=", SEQSERVE_MODELS_DIR),
                        absl::StrCat("--sched_batch=", batch)});
    ASSERT_TRUE(server.ready()) << server.output();
    // A call first, so threads started on demand exist too (they would
    // inherit the policy; the check covers them anyway).
    ASSERT_EQ(testing::HttpCall(server.http_port(), "POST", "/v1/models/species:classify",
                                R"({"features": [4, 0, 1], "rows": 1})")
                  .status,
              200);
    const auto policies = ThreadPolicies(server.pid());
    EXPECT_GT(policies.size(), 4u);
    for (const auto& [tid, policy] : policies) {
      EXPECT_EQ(policy, batch ? SCHED_BATCH : inherited) << "thread " << tid;
    }
    if (batch) {
      EXPECT_THAT(server.output(), HasSubstr("threads run under SCHED_BATCH"));
    }
    EXPECT_EQ(server.Stop(SIGTERM), 0) << server.output();
  }
}

int CountLines(const std::string& path) {
  std::ifstream file(path);
  int lines = 0;
  for (std::string line; std::getline(file, line);) ++lines;
  return lines;
}

TEST(SeqserveProcess, SighupStartsANewAccessLogAfterRotation) {
  const std::string log = ::testing::TempDir() + "/seqserve-access.log";
  std::remove(log.c_str());
  std::remove((log + ".1").c_str());
  testing::ServerProcess server(
      SEQSERVE_PATH,
      {absl::StrCat("--model_repository=", SEQSERVE_MODELS_DIR), "--access_log=" + log});
  ASSERT_TRUE(server.ready()) << server.output();
  ASSERT_GT(server.http_port(), 0);
  auto call = [&] {
    return testing::HttpCall(server.http_port(), "GET", "/v1/models/species").status;
  };
  ASSERT_EQ(call(), 200);
  // As logrotate does: move the file away, then signal.
  ASSERT_EQ(std::rename(log.c_str(), (log + ".1").c_str()), 0);
  ASSERT_EQ(kill(server.pid(), SIGHUP), 0);
  // The reopen happens on the writer's next wake-up; calls keep coming.
  for (int attempt = 0; attempt < 200 && CountLines(log) == 0; ++attempt) {
    ASSERT_EQ(call(), 200);
    usleep(20000);
  }
  EXPECT_GE(CountLines(log), 1) << "no new file after SIGHUP";
  EXPECT_GE(CountLines(log + ".1"), 1);
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.output();
}

}  // namespace
}  // namespace seqserve
