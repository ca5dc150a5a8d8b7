// The HTTP port decides from a request's headers alone whether it may send
// its body: routes that are not served and callers without a token are
// answered before a byte of body is read, in the error shape of the
// protocol asked (seqserve's {code, message} with the message under
// "error" for TF Serving's clients, the Open Inference Protocol's {error}
// under /v2), and every route is checked against the Access it is
// declared with.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "auth/token_authenticator.h"
#include "frontends/http/rest_api.h"
#include "nlohmann/json.hpp"
#include "server/model_server.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::HttpConnection;
using testing::HttpReply;
using testing::TestRepository;

constexpr char kToken[] = "alice-secret-1";

class HttpAdmissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"species", "mammal"}) {
      repository_.AddReferenceVersion(name, 1, name);
      repository_.WriteReferenceConfig(name, name);
    }
    repository_.WriteFile("tokens.txt", absl::StrCat("alice:", kToken, "\n"));
    auto tokens = TokenAuthenticator::Start(
        {repository_.root() + "/tokens.txt", absl::ZeroDuration()});
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = std::move(*tokens);
    ModelServer::Options options;
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    options.authenticator = tokens_.get();
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->http_port();
  }

  // This process's resident bytes (the server runs in it).
  static int64_t ResidentBytes() {
    std::ifstream statm("/proc/self/statm");
    int64_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * sysconf(_SC_PAGESIZE);
  }

  TestRepository repository_;
  std::unique_ptr<TokenAuthenticator> tokens_;
  std::unique_ptr<ModelServer> server_;
  int port_ = 0;
};

// The headers of a POST announcing `body_bytes` of body, without the body.
std::string PostHead(const std::string& path, size_t body_bytes, const std::string& extra = "") {
  return absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: localhost\r\n",
                      "Content-Type: application/json\r\nContent-Length: ", body_bytes, "\r\n",
                      extra, "\r\n");
}

TEST_F(HttpAdmissionTest, AnUnauthenticatedCallerIsRefusedBeforeItsBodyIsRead) {
  // 8 MiB of nesting once cost gigabytes to parse before the token check.
  constexpr size_t kBodyBytes = 8 << 20;
  for (const std::string path : {"/v1/models/species:classify", "/v1/models/species:predict",
                                 "/v2/models/species/infer"}) {
    SCOPED_TRACE(path);
    HttpConnection connection(port_);
    ASSERT_TRUE(connection.connected());
    // Headers only: the answer comes although no byte of body was sent.
    ASSERT_TRUE(connection.Write(PostHead(path, kBodyBytes)));
    const HttpReply reply = connection.Read(5000);
    EXPECT_EQ(reply.status, 401) << reply.body;
    EXPECT_EQ(reply.headers.count("www-authenticate") ? reply.headers.at("www-authenticate") : "",
              "Bearer");
    EXPECT_EQ(reply.headers.count("connection") ? reply.headers.at("connection") : "", "close");
    const auto body = nlohmann::json::parse(reply.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << reply.body;
    if (path.rfind("/v2/", 0) == 0) {
      EXPECT_TRUE(body.contains("error") && body.size() == 1) << reply.body;
    } else {
      EXPECT_EQ(body.value("code", ""), "UNAUTHENTICATED") << reply.body;
      // TF Serving's clients read the message under "error".
      EXPECT_EQ(body.value("error", ""), body.value("message", "-")) << reply.body;
    }
  }
}

// With admin tokens, a caller's token on a route that loads or unloads a
// model is refused (403) from the headers, its body never read.
TEST_F(HttpAdmissionTest, ACallerTokenOnAnAdminRouteIsRefusedBeforeItsBodyIsRead) {
  repository_.WriteFile("admins.txt", "ops:ops-secret-1\n");
  auto admins =
      TokenAuthenticator::Start({repository_.root() + "/admins.txt", absl::ZeroDuration()});
  ASSERT_TRUE(admins.ok()) << admins.status();
  ModelServer::Options options;
  options.model_repository = repository_.root();
  options.poll_interval = absl::ZeroDuration();
  options.model_control = ModelControlMode::kExplicit;
  options.load_models = {"*"};
  options.authenticator = tokens_.get();
  options.admin_authenticator = admins->get();
  auto server = testing::StartLocalServer(options, /*with_http=*/true);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string caller = absl::StrCat("Authorization: Bearer ", kToken, "\r\n");
  for (const std::string path : {"/v1/models/species:load", "/v1/models/species:unload",
                                 "/v2/repository/models/species/load",
                                 "/v2/repository/models/species/unload"}) {
    SCOPED_TRACE(path);
    HttpConnection connection((*server)->http_port());
    ASSERT_TRUE(connection.connected());
    ASSERT_TRUE(connection.Write(PostHead(path, 8 << 20, caller)));
    const HttpReply reply = connection.Read(5000);
    EXPECT_EQ(reply.status, 403) << reply.body;
    EXPECT_THAT(reply.body, HasSubstr("needs a token of --admin_tokens_file"));
    EXPECT_EQ(reply.headers.count("connection") ? reply.headers.at("connection") : "", "close");
  }
  // The admin's token passes the same screen.
  EXPECT_EQ(testing::HttpCall((*server)->http_port(), "POST", "/v1/models/species:load", "",
                              "Authorization: Bearer ops-secret-1\r\n")
                .status,
            200);
}

TEST_F(HttpAdmissionTest, AnUnauthenticatedNestedBodyCostsNoMemory) {
  const std::string nested = "{\"features\":" + std::string(8 << 20, '[');
  const int64_t before = ResidentBytes();
  for (const std::string path : {"/v1/models/species:classify", "/v2/models/species/infer"}) {
    SCOPED_TRACE(path);
    HttpConnection connection(port_);
    ASSERT_TRUE(connection.connected());
    // The server may close while the body is still being written: what it
    // answered is read either way. Two writes, so that no copy of the body
    // is made here (a sanitizer's allocator keeps freed blocks resident).
    connection.Write(PostHead(path, nested.size()));
    connection.Write(nested);
    EXPECT_EQ(connection.Read(5000).status, 401);
  }
  EXPECT_LT(ResidentBytes() - before, int64_t{16} << 20);
}

// What a route answers a caller: the status of a call with `authorization`
// (a full header line, or none).
int StatusOf(int port, const RestApi::Route& route, const std::string& authorization) {
  std::string path = absl::StrReplaceAll(route.pattern, {{"{model}", "species"},
                                                         {"{version}", "1"},
                                                         {"{label}", "stable"}});
  std::string body;
  if (std::string(route.method) == "POST") {
    body = absl::StrContains(path, "/v2/")
               ? R"({"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":[4,0,1]}]})"
               : R"({"features":[4,0,1],"rows":1})";
  }
  return testing::HttpCall(port, route.method, path, body, authorization).status;
}

TEST_F(HttpAdmissionTest, EveryRouteAdmitsAsItsAccessSays) {
  const std::string right = absl::StrCat("Authorization: Bearer ", kToken, "\r\n");
  const std::string lower_case = absl::StrCat("Authorization: bearer ", kToken, "\r\n");
  const std::string wrong = "Authorization: Bearer alice-secret-2\r\n";
  int open = 0, guarded = 0;
  for (const RestApi::Route& route : RestApi::Routes()) {
    SCOPED_TRACE(absl::StrCat(route.method, " ", route.pattern, " (", AccessName(route.access),
                              ")"));
    for (const std::string& admitted : {right, lower_case}) {
      EXPECT_NE(StatusOf(port_, route, admitted), 401);
    }
    for (const std::string& refused : {std::string(), wrong}) {
      const int status = StatusOf(port_, route, refused);
      if (route.access == Access::kOpen) {
        EXPECT_NE(status, 401);
      } else {
        EXPECT_EQ(status, 401);
      }
    }
    ++(route.access == Access::kOpen ? open : guarded);
  }
  // Health and the console are open; everything else needs the token.
  EXPECT_EQ(open, 9);
  EXPECT_GT(guarded, 10);
}

TEST_F(HttpAdmissionTest, UnservedRoutesAnswerInTheirProtocolsShapeBeforeTheBody) {
  HttpConnection v2(port_);
  ASSERT_TRUE(v2.Write(PostHead("/v2/models/species/explain", 1 << 20)));
  HttpReply reply = v2.Read(5000);
  EXPECT_EQ(reply.status, 404);
  auto body = nlohmann::json::parse(reply.body, nullptr, false);
  EXPECT_TRUE(body.is_object() && body.contains("error") && body.size() == 1) << reply.body;

  reply = testing::HttpCall(port_, "DELETE", "/v2/models/species");
  EXPECT_EQ(reply.status, 405);
  body = nlohmann::json::parse(reply.body, nullptr, false);
  EXPECT_TRUE(body.is_object() && body.contains("error")) << reply.body;
  EXPECT_EQ(reply.headers["allow"], "GET");

  // A method the client made up is quoted as any client text: capped, not
  // echoed whole.
  HttpConnection made_up(port_);
  ASSERT_TRUE(made_up.Write(absl::StrCat("GET", std::string(5000, 'X'),
                                         " /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
  reply = made_up.Read(5000);
  EXPECT_EQ(reply.status, 405);
  EXPECT_THAT(reply.body, HasSubstr("GETXXX")) << reply.body;
  EXPECT_LT(reply.body.size(), 600u);
  // One that is not an RFC 9110 token is malformed, and not echoed at all.
  HttpConnection hostile(port_);
  ASSERT_TRUE(hostile.Write(absl::StrCat("GE\x7fT", std::string(5000, 'X'),
                                         " /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
  reply = hostile.Read(5000);
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("malformed request")) << reply.body;
  EXPECT_EQ(reply.body.find('\x7f'), std::string::npos);
  EXPECT_LT(reply.body.size(), 600u);

  reply = testing::HttpCall(port_, "GET", "/v1/nothing/here");
  EXPECT_EQ(reply.status, 404);
  body = nlohmann::json::parse(reply.body, nullptr, false);
  EXPECT_EQ(body.value("code", ""), "NOT_FOUND") << reply.body;
  EXPECT_THAT(body.value("error", ""), HasSubstr("no endpoint")) << reply.body;

  // TF Serving's paths: a verb it does not serve is 404, a wrong method
  // 405, before the body and with the message under "error".
  HttpConnection regress(port_);
  ASSERT_TRUE(regress.Write(PostHead("/v1/models/species:regress", 1 << 20)));
  reply = regress.Read(5000);
  EXPECT_EQ(reply.status, 404);
  body = nlohmann::json::parse(reply.body, nullptr, false);
  EXPECT_THAT(body.value("error", ""), HasSubstr("no endpoint")) << reply.body;
  HttpConnection wrong_method(port_);
  ASSERT_TRUE(wrong_method.Write(PostHead("/v1/models/species/metadata", 1 << 20)));
  reply = wrong_method.Read(5000);
  EXPECT_EQ(reply.status, 405);
  EXPECT_EQ(reply.headers["allow"], "GET");
  body = nlohmann::json::parse(reply.body, nullptr, false);
  EXPECT_THAT(body.value("error", ""), HasSubstr("use GET")) << reply.body;
}

TEST_F(HttpAdmissionTest, TheBodyLimitAnswersTfServingClientsUnderError) {
  const std::string auth = absl::StrCat("Authorization: Bearer ", kToken, "\r\n");
  HttpConnection connection(port_);
  ASSERT_TRUE(connection.Write(PostHead("/v1/models/species:predict", size_t{1} << 40, auth)));
  const HttpReply reply = connection.Read(5000);
  EXPECT_EQ(reply.status, 413);
  const auto body = nlohmann::json::parse(reply.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << reply.body;
  EXPECT_EQ(body.value("code", ""), "RESOURCE_EXHAUSTED") << reply.body;
  EXPECT_THAT(body.value("error", ""), HasSubstr("larger than the limit")) << reply.body;
}

TEST_F(HttpAdmissionTest, TheBodyLimitAnswersInTheV2ShapeUnderV2) {
  const std::string auth = absl::StrCat("Authorization: Bearer ", kToken, "\r\n");
  HttpConnection connection(port_);
  ASSERT_TRUE(connection.Write(PostHead("/v2/models/species/infer", size_t{1} << 40, auth)));
  const HttpReply reply = connection.Read(5000);
  EXPECT_EQ(reply.status, 413);
  const auto body = nlohmann::json::parse(reply.body, nullptr, false);
  EXPECT_TRUE(body.is_object() && body.contains("error") && body.size() == 1) << reply.body;
  EXPECT_THAT(reply.body, HasSubstr("larger than the limit"));
}

}  // namespace
}  // namespace seqserve
