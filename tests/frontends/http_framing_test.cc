// The HTTP listener's edge, over raw sockets against a real HttpServer:
// request framing (RFC 9112) refused before anything is routed, the request
// target parsed from the raw request line, HEAD, a client that leaves, a
// shutdown that answers what still waits, TLS versions, and exceptions from
// the screen or the handler.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "frontends/http/http_server.h"
#include "server/model_server.h"
#include "tests/support/local_server.h"
#include "tests/support/test_certificates.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A client socket that writes raw bytes and reads what comes back.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~RawClient() { Close(); }

  bool connected() const { return fd_ >= 0; }
  // Says it sends no more (shutdown SHUT_WR), and still reads.
  void HalfClose() { shutdown(fd_, SHUT_WR); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  bool Write(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until the server closes (true) or `timeout_ms` passes (false).
  bool ReadUntilClosed(int timeout_ms = 5000) {
    while (Fill(timeout_ms)) {
    }
    return closed_;
  }

  struct Response {
    std::string version;  // of the status line
    int status = 0;  // 0: none complete
    std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
    std::string body;
    std::string Header(const std::string& name) const {
      for (const auto& [key, value] : headers) {
        if (key == name) return value;
      }
      return "";
    }
  };

  // The next response; `head`: one to a HEAD request, whose Content-Length
  // describes a body that is not sent.
  Response Next(bool head = false, int timeout_ms = 5000) {
    for (;;) {
      const size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        Response response;
        const std::vector<std::string> lines = absl::StrSplit(buffer_.substr(0, end), "\r\n");
        const std::vector<std::string> status = absl::StrSplit(lines[0], ' ');
        if (status.size() < 2 || !absl::SimpleAtoi(status[1], &response.status)) return {};
        response.version = status[0];
        size_t length = 0;
        for (size_t i = 1; i < lines.size(); ++i) {
          const size_t colon = lines[i].find(':');
          if (colon == std::string::npos) continue;
          response.headers.emplace_back(
              absl::AsciiStrToLower(lines[i].substr(0, colon)),
              std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
        }
        (void)absl::SimpleAtoi(response.Header("content-length"), &length);
        if (head) length = 0;
        if (buffer_.size() >= end + 4 + length) {
          response.body = buffer_.substr(end + 4, length);
          buffer_.erase(0, end + 4 + length);
          return response;
        }
      }
      if (!Fill(timeout_ms)) return {};
    }
  }

  // Everything read and not yet taken by Next().
  const std::string& buffer() const { return buffer_; }
  bool closed() const { return closed_; }

 private:
  // Reads once; false at the end of the stream or after `timeout_ms`.
  bool Fill(int timeout_ms) {
    if (fd_ < 0 || closed_) return false;
    pollfd readable{fd_, POLLIN, 0};
    if (poll(&readable, 1, timeout_ms) <= 0) return false;
    char chunk[16384];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool closed_ = false;
  std::string buffer_;
};

// Waits until `condition` holds or 10 seconds pass.
bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

constexpr char kSmuggled[] = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

// An HttpServer whose handler answers at once with what it saw, or holds
// the answer (`hold`), and records every request.
class HttpFramingTest : public ::testing::Test {
 protected:
  void Start(HttpServer::Options options = {}) {
    options.address = "127.0.0.1:0";
    auto server = HttpServer::Start(
        std::move(options), [this](const HttpRequest& request, HttpServer::Respond respond) {
          {
            absl::MutexLock lock(&mu_);
            seen_.push_back(request);
            if (hold_) {
              held_.push_back(std::move(respond));
              return;
            }
          }
          // Busy in the handler until released, then no answer.
          if (request.path == "/block") return release_.WaitForNotification();
          if (request.path == "/drop") return;  // its Respond let go unanswered
          if (request.path == "/throw") throw std::runtime_error("handler failed");
          if (request.path == "/bad_alloc") throw std::bad_alloc();
          HttpResponse answer;
          answer.content_type = "text/plain";
          answer.body = absl::StrCat(request.method, " ", request.path, " ?", request.query,
                                     " body=", request.body);
          std::move(respond)(std::move(answer));
        });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->port();
  }
  std::vector<HttpRequest> Seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  size_t Held() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }

  absl::Mutex mu_;
  std::vector<HttpRequest> seen_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<HttpServer::Respond> held_ ABSL_GUARDED_BY(mu_);
  absl::Notification release_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

struct Refused {
  const char* what;
  std::string request;
  int status;
};

// Sends `refused` with a smuggled request after it: one answer of the
// server's own (status, JSON, why), then the connection closes unread.
void ExpectAnsweredOnceAndClosed(int port, const Refused& refused) {
  SCOPED_TRACE(refused.what);
  RawClient client(port);
  ASSERT_TRUE(client.connected());
  client.Write(refused.request + kSmuggled);
  const RawClient::Response response = client.Next();
  EXPECT_EQ(response.status, refused.status) << client.buffer();
  EXPECT_EQ(response.Header("connection"), "close");
  EXPECT_EQ(response.Header("content-type"), "application/json");
  EXPECT_THAT(response.body, HasSubstr(refused.status == 505   ? "speaks HTTP/1.0 and HTTP/1.1"
                                       : refused.status == 431 ? "request headers are larger"
                                                               : "malformed request"));
  EXPECT_TRUE(client.ReadUntilClosed());
  EXPECT_THAT(client.buffer(), Not(HasSubstr("HTTP/1."))) << "a second answer";
}

TEST_F(HttpFramingTest, AmbiguousFramingIsRefusedAndNothingAfterItIsServed) {
  Start();
  const std::vector<Refused> cases = {
      {"Content-Length with Transfer-Encoding",
       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n",
       400},
      {"two differing Content-Length",
       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 3\r\n\r\nabc", 400},
      {"two equal Content-Length",
       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
      {"Transfer-Encoding gzip",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"Transfer-Encoding gzip, chunked",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
      {"two Transfer-Encoding",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"Transfer-Encoding on HTTP/1.0",
       "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"space before the colon",
       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc", 400},
      {"folded Content-Length",
       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n 0\r\n\r\nabc", 400},
      {"folded Host", "GET /a HTTP/1.1\r\nHost: x\r\n y\r\n\r\n", 400},
      {"a name that extends Transfer-Encoding",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encodingx: chunked\r\n\r\n", 400},
      {"a name outside token characters", "GET /a HTTP/1.1\r\nHost: x\r\nX(y): 1\r\n\r\n",
       400},
      {"HTTP/1.1 without Host", "GET /a HTTP/1.1\r\n\r\n", 400},
      {"HTTP/1.1 with two Host", "GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
      {"HTTP/1.0 with two Host", "GET /a HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", 400},
      {"HTTP/1.2", "GET /a HTTP/1.2\r\nHost: x\r\n\r\n", 505},
  };
  for (const Refused& refused : cases) ExpectAnsweredOnceAndClosed(port_, refused);
  EXPECT_TRUE(Seen().empty()) << Seen().front().path;
}

// What the parser cannot frame is answered once, in the server's own shape,
// and nothing after it is read: the listener once answered a bad length
// with its header block twice and an HTML body, and cut a target at a raw
// NUL ("/healthz\0/../v1/models" was served from /healthz).
TEST_F(HttpFramingTest, WhatTheParserCannotFrameIsAnsweredOnceAndClosed) {
  using namespace std::string_literals;
  Start();
  auto with_length = [](const std::string& value) {
    return absl::StrCat("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: ", value,
                        "\r\n\r\nabcdefghijklmnopqrstuvwxyz012");
  };
  const std::vector<Refused> cases = {
      {"a negative length", with_length("-1"), 400},
      {"a signed length", with_length("+29"), 400},
      {"a length list", with_length("29, 29"), 400},
      {"a length past 64 bits", with_length("18446744073709551617"), 400},
      {"a raw NUL in the target",
       "GET /healthz\0/../v1/models HTTP/1.1\r\nHost: x\r\n\r\n"s, 400},
      {"a raw NUL in a header value",
       "GET /a HTTP/1.1\r\nHost: x\r\nX-A: b\0c\r\n\r\n"s, 400},
      {"a method that is not a token", "G(T /a HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"two Authorization headers",
       "GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
       "Authorization: Bearer b\r\n\r\n",
       400},
      {"a malformed version", "GET /a HTTP/1.x\r\nHost: x\r\n\r\n", 400},
      {"headers past 32 KiB",
       absl::StrCat("GET /a HTTP/1.1\r\nHost: x\r\nX-Big: ", std::string(40000, 'b'),
                    "\r\n\r\n"),
       431},
      {"the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
  };
  for (const Refused& refused : cases) ExpectAnsweredOnceAndClosed(port_, refused);
  EXPECT_TRUE(Seen().empty()) << Seen().front().path;
}

// A client that trickles its headers (a slowloris) holds its slot for the
// idle timeout at most, however steadily it sends.
TEST_F(HttpFramingTest, HeadersTrickledPastTheIdleTimeoutAreCut) {
  HttpServer::Options options;
  options.idle_timeout = absl::Seconds(1);
  Start(options);
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Write("GET /slow HTTP/1.1\r\nHost: x\r\n"));
  const absl::Time start = absl::Now();
  bool cut = false;
  for (int i = 0; i < 40 && !cut; ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    cut = !client.Write(absl::StrCat("X-", i, ": y\r\n")) || client.ReadUntilClosed(1);
  }
  EXPECT_TRUE(cut);
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
  EXPECT_TRUE(Seen().empty());
}

TEST_F(HttpFramingTest, SoundRequestsAreServedOnOneConnection) {
  Start();
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.Write(
      "POST /chunked HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n"
      "POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nde"
      "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
      "GET /last HTTP/1.0\r\n\r\n");
  RawClient::Response first = client.Next();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "POST /chunked ? body=abc");
  RawClient::Response second = client.Next();
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, "POST /length ? body=de");
  // HTTP/1.0 needs no Host. The answer is HTTP/1.1 (RFC 9110: the
  // server's own version), and says the connection stays when asked.
  RawClient::Response third = client.Next();
  EXPECT_EQ(third.status, 200);
  EXPECT_EQ(third.version, "HTTP/1.1");
  EXPECT_EQ(third.body, "GET /old ? body=");
  EXPECT_EQ(third.Header("connection"), "keep-alive");
  // Not asked: closed after the answer.
  RawClient::Response fourth = client.Next();
  EXPECT_EQ(fourth.status, 200);
  EXPECT_EQ(fourth.version, "HTTP/1.1");
  EXPECT_EQ(fourth.body, "GET /last ? body=");
  EXPECT_EQ(fourth.Header("connection"), "close");
  EXPECT_TRUE(client.ReadUntilClosed());
}

TEST_F(HttpFramingTest, ThePathComesFromTheRawTarget) {
  Start();
  struct Target {
    std::string method;
    std::string target;
    std::string served;  // the handler's echo; empty: refused 400
  };
  const std::vector<Target> cases = {
      {"GET", "/plain", "GET /plain ?"},
      {"GET", "/a%2Fb/c", "GET /a%2Fb/c ?"},
      {"GET", "/a%2fb", "GET /a%2Fb ?"},
      {"GET", "/sp%61ce/%7Ex?q=%00&r=1", "GET /space/~x ?q=%00&r=1"},
      {"GET", absl::StrCat("http://localhost:", port_, "/abs/x?y=1"), "GET /abs/x ?y=1"},
      {"GET", "HTTP://example.com", "GET / ?"},
      {"GET", "/metrics%00.html", ""},
      {"GET", "/a%0Ab", ""},
      {"GET", "/a%7f", ""},
      {"GET", "/a%1", ""},
      {"GET", "/a%", ""},
      {"GET", "/a%zz", ""},
      {"GET", "a/b", ""},
      {"OPTIONS", "*", ""},
      {"CONNECT", "example.com:443", ""},
  };
  for (const Target& target : cases) {
    SCOPED_TRACE(target.method + " " + target.target);
    RawClient client(port_);
    ASSERT_TRUE(client.connected());
    client.Write(absl::StrCat(target.method, " ", target.target, " HTTP/1.1\r\nHost: x\r\n\r\n"));
    const RawClient::Response response = client.Next();
    if (target.served.empty()) {
      EXPECT_EQ(response.status, 400) << client.buffer();
      EXPECT_THAT(response.body, HasSubstr("request target"));
      EXPECT_TRUE(client.ReadUntilClosed());
    } else {
      EXPECT_EQ(response.status, 200) << client.buffer();
      EXPECT_EQ(response.body, target.served + " body=");
    }
  }
}

TEST_F(HttpFramingTest, HeadIsGetWithoutTheBodyAndKeepsTheConnection) {
  Start();
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.Write(
      "GET /h HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  const RawClient::Response get = client.Next();
  const RawClient::Response head = client.Next(/*head=*/true);
  const RawClient::Response after = client.Next();
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-length"), get.Header("content-length"));
  EXPECT_EQ(head.body, "");
  // Had the HEAD answer carried a body, it would be read as this response.
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body, "GET /after ? body=");
  const std::vector<HttpRequest> seen = Seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].method, "GET");
  EXPECT_TRUE(seen[1].head);
  EXPECT_FALSE(seen[0].head);
}

TEST_F(HttpFramingTest, AClientThatLeavesIsSeenAsCancelled) {
  {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  Start();
  auto client = std::make_unique<RawClient>(port_);
  ASSERT_TRUE(client->connected());
  client->Write("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(WaitFor([&] { return Held() == 1; }));
  const std::function<bool()> cancelled = Seen()[0].cancelled;
  ASSERT_TRUE(cancelled);
  EXPECT_FALSE(cancelled());
  client->Close();
  EXPECT_TRUE(WaitFor(cancelled));
  // Answering a client that left is harmless.
  absl::MutexLock lock(&mu_);
  std::move(held_[0])(HttpResponse{});
}

// `nc -N` and some HTTP/1.0 clients close their sending side once the
// request is out, and wait for the answer.
TEST_F(HttpFramingTest, AClientThatHalfClosesGetsItsAnswer) {
  Start();
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.Write("POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  client.HalfClose();
  const RawClient::Response response = client.Next();
  EXPECT_EQ(response.status, 200) << client.buffer();
  EXPECT_EQ(response.body, "POST /half ? body=hi");
  // The server closes after it (with or without saying so first: the end
  // may reach it before or after the answer is out).
  EXPECT_TRUE(client.ReadUntilClosed());
}

TEST_F(HttpFramingTest, AClientThatStaysIsNotCancelledAfterItsAnswer) {
  Start();
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.Write("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(client.Next().status, 200);
  ASSERT_EQ(Seen().size(), 1u);
  EXPECT_FALSE(Seen()[0].cancelled());
}

TEST_F(HttpFramingTest, ShutdownAnswersARequestWhoseHandlerNeverDoes) {
  {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  HttpServer::Options options;
  options.error_body = [](const HttpRequest& head, const absl::Status& status) {
    HttpResponse answer;
    answer.body = absl::StrCat("shape-for ", head.path, ": ", status.message());
    return answer;
  };
  Start(options);
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.Write("GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(WaitFor([&] { return Held() == 1; }));
  const auto began = std::chrono::steady_clock::now();
  // Once the listener aborted the process here ("suspended connections").
  server_->Shutdown(absl::Now() + absl::Milliseconds(200));
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
  const RawClient::Response response = client.Next();
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.Header("connection"), "close");
  EXPECT_THAT(response.body, HasSubstr("shape-for /never: the server is shutting down"));
  EXPECT_TRUE(client.ReadUntilClosed());
  // The handler answering now is ignored.
  absl::MutexLock lock(&mu_);
  std::move(held_[0])(HttpResponse{});
}

// Requests that shutdown finds still in their handler or still sending
// their body are answered too, before the listeners stop: once a CPU-bound
// parse outlasted the grace and its client got a closed connection.
TEST_F(HttpFramingTest, ShutdownAnswersRequestsStillInTheirHandlerOrBody) {
  Start();
  RawClient busy(port_);
  RawClient uploading(port_);
  ASSERT_TRUE(busy.connected() && uploading.connected());
  // The upload first: a handler that blocks a listener thread holds the
  // requests of that thread whose headers it has not read yet.
  uploading.Write("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234");
  ASSERT_TRUE(WaitFor([&] { return server_->requests_in_flight() == 1; }));
  busy.Write("GET /block HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(WaitFor([&] { return !Seen().empty(); }));  // /block is in its handler
  std::thread shutdown([&] { server_->Shutdown(absl::Now() + absl::Milliseconds(100)); });
  // Past the deadline: shutdown has answered what waited and is closing.
  absl::SleepFor(absl::Milliseconds(400));
  uploading.Write("56789");
  release_.Notify();
  const RawClient::Response busy_answer = busy.Next();
  const RawClient::Response upload_answer = uploading.Next();
  shutdown.join();
  EXPECT_EQ(busy_answer.status, 503);
  EXPECT_EQ(upload_answer.status, 503);
  EXPECT_THAT(upload_answer.body, HasSubstr("shutting down"));
  // A body completed once shutdown began is not handed to the handler.
  for (const HttpRequest& seen : Seen()) EXPECT_NE(seen.path, "/upload");
}

// A handler that lets its Respond go without calling it is a bug; its
// client gets a 500 at once rather than a connection held until shutdown.
TEST_F(HttpFramingTest, ARespondLetGoUnansweredIsAnswered500) {
  Start();
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.Write("GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
  const RawClient::Response response = client.Next();
  EXPECT_EQ(response.status, 500) << client.buffer();
  EXPECT_THAT(response.body, HasSubstr("the server failed on this request"));
  EXPECT_TRUE(WaitFor([&] { return server_->requests_in_flight() == 0; }));
}

TEST_F(HttpFramingTest, ExceptionsFromTheHandlerOrTheScreenAreAnswered500) {
  HttpServer::Options options;
  options.screen = [](HttpRequest* head) -> std::optional<HttpResponse> {
    if (head->path == "/screen_throws") throw std::runtime_error("screen failed");
    if (head->path == "/screen_bad_alloc") throw std::bad_alloc();
    return std::nullopt;
  };
  options.error_body = [](const HttpRequest& head, const absl::Status& status) {
    HttpResponse answer;
    answer.body = absl::StrCat("shape-for ", head.path, ": ", status.message());
    return answer;
  };
  Start(options);
  for (const std::string path : {"/throw", "/bad_alloc", "/screen_throws", "/screen_bad_alloc"}) {
    SCOPED_TRACE(path);
    RawClient client(port_);
    ASSERT_TRUE(client.connected());
    client.Write(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n"));
    const RawClient::Response response = client.Next();
    EXPECT_EQ(response.status, 500) << client.buffer();
    EXPECT_EQ(response.body,
              absl::StrCat("shape-for ", path, ": the server failed on this request"));
  }
  // And the server still serves.
  RawClient client(port_);
  client.Write("GET /fine HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(client.Next().status, 200);
}

// What `openssl s_client` says about a handshake at `version` ("-tls1_1").
int Handshake(int port, const std::string& version, std::string* output) {
  // SECLEVEL=0: the client offers TLS 1.1 at all, so the refusal is the
  // server's.
  const std::string command = absl::StrCat(
      "openssl s_client -connect 127.0.0.1:", port, " ", version,
      " -cipher DEFAULT@SECLEVEL=0 </dev/null 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char chunk[4096];
  size_t n = 0;
  while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0) output->append(chunk, n);
  return pclose(pipe);
}

TEST_F(HttpFramingTest, TlsSpeaksOnlyVersions12And13) {
  testing::TestCertificates certificates;
  const testing::PemFiles ca = certificates.MakeCa("test-ca");
  const testing::PemFiles leaf = certificates.MakeLeaf("localhost", ca);
  HttpServer::Options options;
  options.tls = TlsFiles{leaf.cert, leaf.key, "", absl::ZeroDuration()};
  Start(options);
  std::string old_output, output;
  // A completed handshake shows the server's certificate.
  EXPECT_NE(Handshake(port_, "-tls1_1", &old_output), 0) << old_output;
  EXPECT_THAT(old_output, Not(HasSubstr("BEGIN CERTIFICATE")));
  EXPECT_EQ(Handshake(port_, "-tls1_2", &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(output, HasSubstr("Protocol  : TLSv1.2"));
}

// A client that resumes its TLS session (curl reusing a handle, browsers)
// keeps its verified certificate: OpenSSL refuses to resume a verified
// session on a context without a session id context, as a handshake alert.
TEST_F(HttpFramingTest, TlsSessionsWithClientCertificatesResume) {
  testing::TestCertificates certificates;
  const testing::PemFiles ca = certificates.MakeCa("test-ca");
  const testing::PemFiles leaf = certificates.MakeLeaf("localhost", ca);
  const testing::PemFiles client = certificates.MakeLeaf("client-one", ca);
  HttpServer::Options options;
  options.tls = TlsFiles{leaf.cert, leaf.key, ca.cert, absl::ZeroDuration()};
  Start(options);
  const std::string session = certificates.dir() + "/session.pem";
  const std::string client_flags = absl::StrCat(" -tls1_2 -CAfile ", ca.cert, " -cert ",
                                                client.cert, " -key ", client.key);
  std::string first, second;
  EXPECT_EQ(Handshake(port_, client_flags + " -sess_out " + session, &first), 0) << first;
  EXPECT_THAT(first, HasSubstr("New, TLSv1.2"));
  EXPECT_EQ(Handshake(port_, client_flags + " -sess_in " + session, &second), 0) << second;
  EXPECT_THAT(second, HasSubstr("Reused, TLSv1.2"));
}

// Where routes matter: the full server's routes see the parsed path.
TEST(HttpEdgeTest, TheModelServerRoutesTheParsedPathAndServesHead) {
  testing::TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.WriteReferenceConfig("species", "species");
  ModelServer::Options options;
  options.model_repository = repository.root();
  options.poll_interval = absl::ZeroDuration();
  auto server = testing::StartLocalServer(options, /*with_http=*/true);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->http_port();
  auto status_of = [port](const std::string& request_line) {
    RawClient client(port);
    client.Write(request_line + "\r\nHost: x\r\n\r\n");
    return client.Next().status;
  };
  EXPECT_EQ(status_of("GET /heal%74hz HTTP/1.1"), 200);
  EXPECT_EQ(status_of("GET /metrics%00.html HTTP/1.1"), 400);
  EXPECT_EQ(status_of("GET /v2/health%2Flive HTTP/1.1"), 404);
  EXPECT_EQ(status_of("GET /healthz?probe=1 HTTP/1.1"), 200);
  for (const std::string path : {"/healthz", "/v1/models"}) {
    SCOPED_TRACE(path);
    RawClient client(port);
    client.Write(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD ", path,
                              " HTTP/1.1\r\nHost: x\r\n\r\n",
                              "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    const RawClient::Response get = client.Next();
    const RawClient::Response head = client.Next(/*head=*/true);
    const RawClient::Response after = client.Next();
    EXPECT_NE(get.status, 0);
    EXPECT_EQ(head.status, get.status);
    EXPECT_EQ(head.Header("content-length"), get.Header("content-length"));
    EXPECT_EQ(after.status, 200);
    EXPECT_EQ(after.body, "ok\n");
  }
}

}  // namespace
}  // namespace seqserve
