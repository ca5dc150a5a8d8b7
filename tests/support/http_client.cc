#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace seqserve::testing {

HttpConnection::HttpConnection(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd_);
    fd_ = -1;
  }
}

HttpConnection::~HttpConnection() {
  if (fd_ >= 0) close(fd_);
}

bool HttpConnection::Write(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

HttpReply HttpConnection::Send(const std::string& method, const std::string& path,
                               const std::string& body, const std::string& extra_headers) {
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: localhost\r\n",
                                     extra_headers);
  if (!body.empty() || method == "POST") {
    absl::StrAppend(&request, "Content-Type: application/json\r\nContent-Length: ",
                    body.size(), "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  if (!Write(request)) return {};
  return Read();
}

HttpReply HttpConnection::Read(int timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  HttpReply reply;
  size_t header_end = std::string::npos;
  size_t length = 0;
  for (;;) {
    if (header_end == std::string::npos) {
      header_end = buffer_.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        const std::vector<std::string> lines =
            absl::StrSplit(buffer_.substr(0, header_end), "\r\n");
        const std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
        if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &reply.status)) {
          return {};
        }
        for (size_t i = 1; i < lines.size(); ++i) {
          const size_t colon = lines[i].find(':');
          if (colon == std::string::npos) continue;
          reply.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
              std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
        }
        (void)absl::SimpleAtoi(reply.headers["content-length"], &length);
      }
    }
    if (header_end != std::string::npos && buffer_.size() >= header_end + 4 + length) {
      reply.body = buffer_.substr(header_end + 4, length);
      buffer_.erase(0, header_end + 4 + length);
      return reply;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {};
    pollfd readable{fd_, POLLIN, 0};
    if (poll(&readable, 1, static_cast<int>(left.count())) <= 0) return {};
    char chunk[16384];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return {};
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

HttpReply HttpCall(int port, const std::string& method, const std::string& path,
                   const std::string& body, const std::string& extra_headers) {
  HttpConnection connection(port);
  if (!connection.connected()) return {};
  return connection.Send(method, path, body, extra_headers);
}

}  // namespace seqserve::testing
