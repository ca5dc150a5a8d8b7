// Fuzzes the HTTP port from the outside: the input is the bytes a client
// sends on one connection, to a real server (the sample models, a tokens
// file, the server's default limits) started once, in this process, on a
// loopback port. Everything a request meets goes through the path the
// server takes: framing and the request target, the screen (routes,
// tokens), the body budget, REST (seqserve's and TF Serving's) and v2 JSON
// and binary-tensor parsing, the inference path and the answer. What must
// hold: whatever the server sends back starts with an HTTP/1.1 status
// line, and the server survives (no crash, leak or sanitizer report; a
// hang fails the run by libFuzzer's timeout).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "auth/token_authenticator.h"
#include "fuzz/fuzz_support.h"
#include "server/model_server.h"

namespace seqserve::fuzz {
namespace {

// The token the dictionary and the seeds carry.
constexpr char kTokensFile[] = "fuzz:fuzz-token\n";

struct Fixture {
  std::unique_ptr<TokenAuthenticator> tokens;
  std::unique_ptr<ModelServer> server;
  int port = 0;
};

Fixture* Start() {
  auto* fixture = new Fixture;
  char dir[] = "/tmp/fuzz_http.XXXXXX";
  Require(mkdtemp(dir) != nullptr, "a temporary directory");
  const std::string tokens_path = std::string(dir) + "/tokens.txt";
  std::ofstream(tokens_path) << kTokensFile;
  auto tokens = TokenAuthenticator::Start({tokens_path, absl::ZeroDuration()});
  Require(tokens.ok(), "tokens", tokens.status());
  fixture->tokens = std::move(*tokens);
  ModelServer::Options options;
  options.address = "127.0.0.1:0";
  options.http_address = "127.0.0.1:0";
  options.model_repository = SEQSERVE_MODELS_DIR;
  options.poll_interval = absl::ZeroDuration();
  options.authenticator = fixture->tokens.get();
  auto server = ModelServer::Start(options);
  Require(server.ok(), "the server starts", server.status());
  fixture->server = std::move(*server);
  fixture->server->WaitUntilReady();
  fixture->port = fixture->server->http_port();
  return fixture;
}

// Sends `bytes`, closes the sending side, and reads until the server closes
// or stays silent for a second (an incomplete request it still waits for).
std::string Exchange(int port, const uint8_t* bytes, size_t size) {
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A connect can fail for a moment on a loaded machine (thousands of short
  // connections a second); a port that stopped listening fails every try
  // and is reported with its errno.
  int fd = -1;
  for (int tries = 1;; ++tries) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    Require(fd >= 0, "a socket");
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) break;
    const int error = errno;
    close(fd);
    Require(tries < 50, "connects to the HTTP port",
            absl::UnavailableError(absl::StrCat("connect: ", std::strerror(error))));
    usleep(20000);
  }
  // The server may answer and close before it has read everything.
  for (size_t sent = 0; sent < size;) {
    const ssize_t n = send(fd, bytes + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string answer;
  char buffer[16384];
  pollfd readable = {fd, POLLIN, 0};
  while (poll(&readable, 1, 1000) > 0) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return answer;
}

// `answer` is nothing (the server closed without a word: a connection it
// dropped while the body was on its way) or starts with an HTTP/1.1 status
// line of three digits. Bodies are not walked: a HEAD answer declares a
// length it does not send.
void CheckAnswer(const std::string& answer) {
  if (answer.empty()) return;
  Require(answer.size() >= 13 && answer.compare(0, 9, "HTTP/1.1 ") == 0 &&
              absl::ascii_isdigit(answer[9]) && absl::ascii_isdigit(answer[10]) &&
              absl::ascii_isdigit(answer[11]) && answer[12] == ' ',
          "an answer starts with an HTTP/1.1 status line");
}

}  // namespace
}  // namespace seqserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace seqserve::fuzz;
  static Fixture* const fixture = Start();
  CheckAnswer(Exchange(fixture->port, data, size));
  return 0;
}
