// The JSON pre-check: depth and value count refused while streaming, in
// O(depth) memory, before a tree is built; valid requests pass; truncated or
// malformed bodies are refused without quoting them. Then the same through a
// real server's REST and v2 routes, with the 8 MiB nested body that used to
// cost gigabytes.
#include "frontends/http/json_limits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "server/model_server.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr size_t kEightMiB = size_t{8} << 20;
constexpr char kContext[] = "request body is not valid";

// The process's peak resident bytes since the last ResetPeakResident(), from
// /proc/self/status's VmHWM. Writing 5 to clear_refs resets the peak (Linux
// 4.0+); where that is refused, the peak since start is an upper bound, and
// the test compares against the resident size before it instead.
bool ResetPeakResident() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return clear.good();
}

uint64_t StatusKib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

// Resident bytes now, from /proc/self/statm (pages).
uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// How much the peak resident size rose while `work` ran.
template <typename Work>
uint64_t PeakGrowthBytes(Work work) {
  const bool reset = ResetPeakResident();
  const uint64_t before = ResidentBytes();
  work();
  const uint64_t peak = StatusKib("VmHWM") * 1024;
  const uint64_t after = ResidentBytes();
  if (!reset) return after > before ? after - before : 0;
  return peak > before ? peak - before : 0;
}

TEST(JsonLimits, EightMibOfOpenBracketsIsRefusedAtDepth33WithBoundedMemory) {
  const std::string body(kEightMiB, '[');
  absl::Status status;
  std::chrono::duration<double, std::milli> took{};
  const uint64_t growth = PeakGrowthBytes([&] {
    const auto start = std::chrono::steady_clock::now();
    status = CheckJsonLimits(body, kContext);
    took = std::chrono::steady_clock::now() - start;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "request body is not valid: JSON nested deeper than 32 levels");
  EXPECT_LT(growth, uint64_t{16} << 20);
  // Time belongs in benchmarks; it is recorded, not asserted.
  RecordProperty("check_ms", std::to_string(took.count()));
  RecordProperty("peak_growth_bytes", std::to_string(growth));
  std::printf("8 MiB of '[': refused in %.3f ms, peak resident +%llu KiB\n", took.count(),
              static_cast<unsigned long long>(growth >> 10));
}

TEST(JsonLimits, DepthIsCountedAcrossArraysAndObjects) {
  std::string at_limit, past_limit;
  for (int i = 0; i < kMaxJsonDepth; ++i) at_limit += i % 2 == 0 ? "[" : "{\"k\":";
  at_limit += "1";
  for (int i = kMaxJsonDepth - 1; i >= 0; --i) at_limit += i % 2 == 0 ? "]" : "}";
  EXPECT_TRUE(CheckJsonLimits(at_limit, kContext).ok()) << CheckJsonLimits(at_limit, kContext);

  past_limit = "[" + at_limit + "]";
  const absl::Status status = CheckJsonLimits(past_limit, kContext);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("JSON nested deeper than 32 levels"));

  // Closing a container gives its level back: siblings do not add up.
  std::string siblings = "[";
  for (int i = 0; i < 100; ++i) absl::StrAppend(&siblings, i ? "," : "", "[[[[[[[[1]]]]]]]]");
  siblings += "]";
  EXPECT_TRUE(CheckJsonLimits(siblings, kContext).ok());
}

TEST(JsonLimits, ValuesPastTheCapAreRefusedKeysIncluded) {
  const JsonLimits ten{kMaxJsonDepth, 10};
  // An array and nine numbers: ten values.
  EXPECT_TRUE(CheckJsonLimits("[1,2,3,4,5,6,7,8,9]", kContext, ten).ok());
  const absl::Status wide = CheckJsonLimits("[1,2,3,4,5,6,7,8,9,10]", kContext, ten);
  EXPECT_EQ(wide.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(wide.message(), "request body is not valid: JSON has more than 10 values");

  // An object, its keys and its values: 1 + 2 * 5 = 11.
  const absl::Status keys =
      CheckJsonLimits(R"({"a":1,"b":2,"c":3,"d":4,"e":5})", kContext, ten);
  EXPECT_THAT(keys.message(), HasSubstr("more than 10 values"));
  // Empty containers count as values too.
  EXPECT_THAT(CheckJsonLimits("[[],[],[],[],[],[],[],[],[],[]]", kContext, ten).message(),
              HasSubstr("more than 10 values"));
}

TEST(JsonLimits, TheDefaultCapAdmitsTheDefaultMessageLimitAndRefusesPastIt) {
  // The densest valid body under 16 MiB: one array of single digits.
  std::string densest = "[0";
  densest.reserve(kMaxJsonValues * 2 + 2);
  while (densest.size() + 3 <= (size_t{16} << 20)) densest += ",0";
  densest += "]";
  ASSERT_LE(densest.size(), size_t{16} << 20);
  EXPECT_TRUE(CheckJsonLimits(densest, kContext).ok());

  // One body past the cap, as a raised --max_message_bytes lets through.
  std::string wide = "[0";
  while (wide.size() < kMaxJsonValues * 2 + 2) wide += ",0";
  wide += "]";
  const absl::Status status = CheckJsonLimits(wide, kContext);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("more than ", kMaxJsonValues, " values")));
}

TEST(JsonLimits, ValidRequestsOfEachProtocolPass) {
  for (const char* body : {
           R"({"features": [1.5, -2, 3e-3], "rows": 1, "top_k": 2})",
           R"({"features": [[1, 2, 3], [4, 5, 6]], "output": "OUTPUT_MODE_SOFTMAX"})",
           R"({"id": "a", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",)"
           R"( "data": [[1, 2, 3], [4, 5, 6]]}], "outputs": [{"name": "scores"}],)"
           R"( "parameters": {"b": true, "n": null, "s": "\u00e9\ud83d\ude00"}})",
           "  [] \n",
           "0",
       }) {
    EXPECT_TRUE(CheckJsonLimits(body, kContext).ok()) << body;
  }
}

TEST(JsonLimits, TruncatedOrMalformedJsonIsRefusedWithoutQuotingIt) {
  for (const char* body : {"", "{", R"({"features": [1, 2)", R"({"id": "abc)", "[1,"}) {
    const absl::Status status = CheckJsonLimits(body, kContext);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(status.message(), "request body is not valid: JSON ends before it is complete")
        << body;
  }
  struct Case {
    std::string body;
    size_t byte;
  };
  const std::string secret = "tok_" + std::string(200, 's');
  for (const Case& c : std::vector<Case>{{"{not json", 2},  // where "null" fails
                                         {"[1,}", 3},
                                         {"{'features': [1]}", 1},  // protobuf would take it
                                         {"[1] [2]", 4},
                                         {"[\"" + secret + "\" x]", 208}}) {
    const absl::Status status = CheckJsonLimits(c.body, kContext);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(status.message(),
              absl::StrCat("request body is not valid: JSON syntax error at byte ", c.byte))
        << c.body;
    EXPECT_THAT(status.message(), Not(HasSubstr("tok_")));
  }
}

// The same bodies through a real server: refused with each protocol's error
// shape, fast and without the memory a tree would take.
class JsonLimitsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository_.AddReferenceVersion("species", 1, "species");
    repository_.WriteReferenceConfig("species", "species");
    ModelServer::Options options;
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  testing::TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
};

TEST_F(JsonLimitsServerTest, EightMibNestedBodiesAreRefusedBeforeATreeIsBuilt) {
  struct Case {
    const char* path;
    std::string prefix;
    std::string error;
  };
  // /v1's error: the message under "message" and under "error".
  auto v1_error = [](const std::string& message) {
    return absl::StrCat(R"({"code":"INVALID_ARGUMENT","error":")", message, R"(","message":")",
                        message, R"("})");
  };
  const std::vector<Case> cases = {
      {"/v1/models/species:classify", R"({"features":)",
       v1_error("request body is not a valid seqserve.v1.ClassifyRequest in JSON: JSON nested "
                "deeper than 32 levels")},
      // TF Serving's bodies on the same routes and on :predict.
      {"/v1/models/species:classify", R"({"examples":)",
       v1_error("request body is not a valid TF Serving classify request in JSON: JSON nested "
                "deeper than 32 levels")},
      {"/v1/models/species:predict", R"({"instances":)",
       v1_error("request body is not a valid TF Serving predict request in JSON: JSON nested "
                "deeper than 32 levels")},
      {"/v2/models/species/infer",
       R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":)",
       R"({"error":"request body is not a JSON object: JSON nested deeper than 32 levels"})"},
  };
  for (const Case& c : cases) {
    std::string body = c.prefix;
    body.resize(kEightMiB, '[');
    testing::HttpReply reply;
    std::chrono::duration<double, std::milli> took{};
    const uint64_t growth = PeakGrowthBytes([&] {
      const auto start = std::chrono::steady_clock::now();
      reply = testing::HttpCall(server_->http_port(), "POST", c.path, body);
      took = std::chrono::steady_clock::now() - start;
    });
    EXPECT_EQ(reply.status, 400) << c.path;
    EXPECT_EQ(reply.body, c.error) << c.path;
    // The body is held twice (the client's copy, the server's buffer) and
    // crosses a socket; a tree of it took gigabytes.
    EXPECT_LT(growth, uint64_t{64} << 20) << c.path;
    std::printf("%s, 8 MiB nested: answered in %.1f ms, peak resident +%llu KiB\n", c.path,
                took.count(), static_cast<unsigned long long>(growth >> 10));
  }
}

TEST_F(JsonLimitsServerTest, ValidRequestsStillAnswer) {
  const testing::HttpReply rest = testing::HttpCall(
      server_->http_port(), "POST", "/v1/models/species:classify",
      R"({"features": [1, 2, 3], "rows": 1})");
  EXPECT_EQ(rest.status, 200) << rest.body;
  const testing::HttpReply v2 = testing::HttpCall(
      server_->http_port(), "POST", "/v2/models/species/infer",
      R"({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32",)"
      R"( "data": [[1, 2, 3]]}]})");
  EXPECT_EQ(v2.status, 200) << v2.body;
}

}  // namespace
}  // namespace seqserve
