// A minimal HTTP/1.1 client over a plain socket for tests: one request at a
// time on one keep-alive connection, Content-Length bodies only (what the
// server writes). Tests of slow clients also use its raw socket.
#pragma once

#include <map>
#include <string>

namespace seqserve::testing {

struct HttpReply {
  int status = 0;  // 0: no answer (connection failed or closed)
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

class HttpConnection {
 public:
  // Connects to 127.0.0.1:port; connected() says whether it worked.
  explicit HttpConnection(int port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Sends one request and reads its answer; `extra_headers` are full lines
  // ("Authorization: Bearer x\r\n").
  HttpReply Send(const std::string& method, const std::string& path,
                 const std::string& body = "", const std::string& extra_headers = "");
  // Writes raw bytes (for partial or malformed requests).
  bool Write(const std::string& bytes);
  // Reads one answer; status 0 when the server closed the connection first
  // or nothing came within `timeout_ms`.
  HttpReply Read(int timeout_ms = 10000);

 private:
  int fd_ = -1;
  std::string buffer_;
};

// One request on a fresh connection.
HttpReply HttpCall(int port, const std::string& method, const std::string& path,
                   const std::string& body = "", const std::string& extra_headers = "");

}  // namespace seqserve::testing
