// The access log and the call log stay bounded whatever clients send: in
// the access log client text is cut and escaped in each line, ordinary lines
// read as they always did, and the queue is bounded in bytes as well as
// lines, dropping and counting what does not fit; the call log's error text
// is cut and escaped.
#include "observability/access_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "observability/call_log.h"
#include "serving/client_text.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace {

using ::testing::Each;
using ::testing::Le;

CallRecord OrdinaryCall() {
  CallRecord call;
  call.protocol = "http";
  call.method = "Classify";
  call.peer = "ipv4:10.0.0.7:41234";
  call.caller = "batch-jobs";
  call.start = absl::FromUnixMicros(1795775274243197);
  call.model = "species";
  call.version = 3;
  call.rows = 2;
  call.code = absl::StatusCode::kResourceExhausted;
  call.duration = absl::Microseconds(930);
  return call;
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string TempPath(const std::string& name) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::remove(path.c_str());
  return path;
}

TEST(AccessLog, AnOrdinaryLineIsTheJsonItAlwaysWas) {
  const CallRecord call = OrdinaryCall();
  // The line as nlohmann::json wrote it before lines were written by hand.
  const nlohmann::json expected = {
      {"time", "2026-11-27T10:27:54.243197Z"}, {"protocol", "http"},
      {"method", "Classify"},                  {"model", "species"},
      {"version", 3},                          {"rows", 2},
      {"code", "RESOURCE_EXHAUSTED"},          {"duration_seconds", absl::ToDoubleSeconds(call.duration)},
      {"peer", "ipv4:10.0.0.7:41234"},         {"caller", "batch-jobs"}};
  EXPECT_EQ(AccessLog::FormatLine(call), expected.dump());
}

TEST(AccessLog, FiveCallsNamingA15MibModelGrowTheLogByAFewHundredBytesEach) {
  const std::string path = TempPath("access_15mib.log");
  CallRecord call = OrdinaryCall();
  call.model = std::string(size_t{15} << 20, 'm');
  {
    auto log = AccessLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 5; ++i) (*log)->OnEnd(call);
  }  // writes what is queued
  const std::string text = ReadFile(path);
  EXPECT_LE(text.size(), 5u * 400);
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 5u);
  for (const std::string& line : lines) {
    const nlohmann::json parsed = nlohmann::json::parse(line);
    EXPECT_EQ(parsed["model"], std::string(kMaxQuotedClientBytes, 'm') + "...");
    EXPECT_EQ(parsed["rows"], 2);
  }
}

TEST(AccessLog, HostileTextIsEscapedIntoOneAsciiLineOfBoundedLength) {
  // Newlines, a NUL, U+202E, an emoji, invalid bytes and quotes, a megabyte
  // of them in every text field: each escapes to several times its size.
  std::string hostile;
  while (hostile.size() < (size_t{1} << 20)) {
    hostile += std::string("\n{\"x\":1}\r\0\xe2\x80\xae\xf0\x9f\x98\x80\xff\\\"", 21);
  }
  CallRecord call = OrdinaryCall();
  call.protocol = call.method = call.peer = call.caller = call.model = call.request_id = hostile;
  call.version = std::numeric_limits<int64_t>::max();
  call.rows = std::numeric_limits<size_t>::max();
  call.code = absl::StatusCode::kFailedPrecondition;
  call.duration = absl::Seconds(-1.0 / 3);
  const std::string line = AccessLog::FormatLine(call);
  EXPECT_LE(line.size(), AccessLog::kMaxLineBytes);
  for (const char c : line) {
    ASSERT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << static_cast<int>(c) << " in " << line;
  }
  const nlohmann::json parsed = nlohmann::json::parse(line);
  for (const char* field : {"protocol", "method", "peer", "caller", "model", "request_id"}) {
    const std::string value = parsed[field].get<std::string>();
    // The text as sent, the byte that is not UTF-8 as U+FFFD.
    EXPECT_EQ(value.substr(0, 22), hostile.substr(0, 17) + "\xef\xbf\xbd\\\"") << field;
    EXPECT_EQ(value.substr(value.size() - 3), "...") << field;
  }
}

TEST(JsonQuoteClientText, EscapesWholeCharactersAndCutsBetweenThem) {
  EXPECT_EQ(JsonQuoteClientText("species"), "\"species\"");
  EXPECT_EQ(JsonQuoteClientText("a\"b\\c\n\x7f"), R"("a\"b\\c\u000a\u007f")");
  EXPECT_EQ(JsonQuoteClientText("\xc3\xa9\xe2\x80\xae\xf0\x9f\x98\x80"),
            R"("\u00e9\u202e\ud83d\ude00")");
  EXPECT_EQ(JsonQuoteClientText("a\xff\xc3"), R"("a\ufffd\ufffd")");
  // Twelve bytes of escape do not fit in eleven: the emoji goes whole.
  EXPECT_EQ(JsonQuoteClientText("\xf0\x9f\x98\x80", 11), R"("...")");
  EXPECT_EQ(JsonQuoteClientText("ab\n", 7), R"("ab...")");
  EXPECT_EQ(JsonQuoteClientText("ab\n", 8), R"("ab\u000a")");
}

// A writer stalled on a pipe nobody reads: the queue fills to its byte
// bound long before its line bound, the rest is dropped and counted, and
// every line is either written or counted.
TEST(AccessLog, TheQueuesByteBoundDropsLinesWhenTheWriterStalls) {
  const std::string path = TempPath("access_stalled.fifo");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  const int reader = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  AccessLog::Options options;
  options.max_queued_bytes = 8192;
  auto log = AccessLog::Open(path, options);
  ASSERT_TRUE(log.ok()) << log.status();

  const CallRecord call = OrdinaryCall();
  const size_t line_bytes = AccessLog::FormatLine(call).size();
  size_t sent = 0;
  // The pipe takes 64 KiB and the writer one queue's worth before it
  // blocks; past that, at most 8 KiB of lines wait.
  const size_t enough = (size_t{1} << 20) / line_bytes;
  while ((*log)->dropped() == 0 && sent < enough) {
    (*log)->OnEnd(call);
    ++sent;
  }
  // Far below kMaxQueuedLines: the bytes bound the queue. (EXPECT: the
  // pipe must still be drained below, or closing the log would block.)
  EXPECT_GT((*log)->dropped(), 0u) << "no line dropped after " << sent;
  const uint64_t dropped = (*log)->dropped();

  // Read everything, then close the log: its writer finishes and the pipe
  // ends.
  ASSERT_EQ(fcntl(reader, F_SETFL, 0), 0);
  std::string written;
  std::thread drain([&] {
    char buffer[65536];
    for (ssize_t n; (n = read(reader, buffer, sizeof buffer)) > 0;) written.append(buffer, n);
  });
  log->reset();
  drain.join();
  close(reader);
  std::remove(path.c_str());

  std::vector<std::string> lines = absl::StrSplit(written, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size() + dropped, sent);
  std::vector<size_t> sizes;
  for (const std::string& line : lines) sizes.push_back(line.size());
  EXPECT_THAT(sizes, Each(Le(line_bytes)));
}

// The call log's debug line carries the error message, which can quote body
// bytes as sent: one line whatever they hold, and a bounded one.
TEST(CallLog, AnErrorMessageCannotAddLinesOrRunLong) {
  std::ostringstream out;
  const auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::debug);  // the default logger's level is the one checked
  spdlog::set_default_logger(logger);

  CallRecord call = OrdinaryCall();
  call.code = absl::StatusCode::kInvalidArgument;
  call.error = "request body is not valid: near '\n[2026-11-27] [info] forged\x1b[2J" +
               std::string(size_t{1} << 20, 'x') + "'";
  CallLog().OnEnd(call);

  spdlog::set_default_logger(previous);
  const std::string text = out.str();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text.substr(0, 200);  // one line
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(text.find("near '\\x0a[2026-11-27] [info] forged\\x1b[2J"), std::string::npos)
      << text.substr(0, 300);
  EXPECT_LT(text.size(), 1300u);
}

}  // namespace
}  // namespace seqserve
