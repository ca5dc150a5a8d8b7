#include "frontends/http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace seqserve {

std::string HttpRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

bool SplitHostPort(absl::string_view address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return false;
  absl::string_view name = address.substr(0, colon);
  if (absl::StartsWith(name, "[") && absl::EndsWith(name, "]")) {
    name = name.substr(1, name.size() - 2);
  }
  *host = std::string(name);
  return absl::SimpleAtoi(address.substr(colon + 1), port) && *port >= 0 && *port <= 65535;
}

// One request, from its headers to the end of its response. Shared by the
// connection (its context) and the Respond callback, which may outlive it.
struct HttpServer::Exchange {
  MHD_Connection* connection = nullptr;
  // The request target as sent, before libmicrohttpd decodes it.
  std::string raw_target;
  bool headers_seen = false;
  // The connection's socket, to tell whether the client left while the
  // connection is suspended (libmicrohttpd does not watch it then).
  int fd = -1;
  HttpRequest request;
  bool dispatched = false;
  // The body's Content-Length, when it has one.
  uint64_t announced_body_bytes = 0;
  // Of the server's body budget: the body buffer's size, held until the
  // exchange completes.
  size_t reserved_body_bytes = 0;
  absl::Mutex mu;
  std::optional<HttpResponse> answer ABSL_GUARDED_BY(mu);
  bool suspended ABSL_GUARDED_BY(mu) = false;
  bool closed ABSL_GUARDED_BY(mu) = false;  // the connection is gone
  // The client left before its answer was sent; shared with
  // HttpRequest::cancelled, which may outlive the exchange.
  std::shared_ptr<std::atomic<bool>> client_gone = std::make_shared<std::atomic<bool>>(false);
};

namespace {

std::string PeerName(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "";
  char text[INET6_ADDRSTRLEN] = {};
  const sockaddr* address = info->client_addr;
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    return absl::StrCat("ipv4:", text, ":", ntohs(v4->sin_port));
  }
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    return absl::StrCat("ipv6:[", text, "]:", ntohs(v6->sin6_port));
  }
  return "";
}

MHD_Result CollectHeader(void* headers, MHD_ValueKind, const char* key, const char* value) {
  static_cast<std::vector<std::pair<std::string, std::string>>*>(headers)->emplace_back(
      key, value == nullptr ? "" : value);
  return MHD_YES;
}

MHD_Result Queue(MHD_Connection* connection, const HttpResponse& answer) {
  MHD_Response* response = MHD_create_response_from_buffer(
      answer.body.size(), const_cast<char*>(answer.body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          answer.content_type.c_str());
  // Browsers take every answer as the type it says it is.
  MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : answer.headers) {
    MHD_add_response_header(response, name.c_str(), value.c_str());
  }
  const MHD_Result queued =
      MHD_queue_response(connection, static_cast<unsigned>(answer.status), response);
  MHD_destroy_response(response);
  return queued;
}

absl::Status TooLarge(size_t limit) {
  return absl::ResourceExhaustedError(
      absl::StrCat("request body is larger than the limit of ", limit, " bytes"));
}

absl::Status Busy(size_t limit) {
  return absl::UnavailableError(
      absl::StrCat("the server holds its limit of ", limit, " bytes of request bodies; retry"));
}

// The client certificate's subject when the connection has one that
// verifies against the listener's client CAs; nullopt otherwise.
std::optional<std::string> VerifiedClientSubject(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (info == nullptr || info->tls_session == nullptr) return std::nullopt;
  auto session = static_cast<gnutls_session_t>(info->tls_session);
  unsigned status = 0;
  if (gnutls_certificate_verify_peers2(session, &status) != GNUTLS_E_SUCCESS || status != 0) {
    return std::nullopt;
  }
  unsigned count = 0;
  const gnutls_datum_t* chain = gnutls_certificate_get_peers(session, &count);
  if (chain == nullptr || count == 0) return std::nullopt;
  gnutls_x509_crt_t cert = nullptr;
  std::string subject;
  if (gnutls_x509_crt_init(&cert) == GNUTLS_E_SUCCESS) {
    gnutls_datum_t dn = {nullptr, 0};
    if (gnutls_x509_crt_import(cert, &chain[0], GNUTLS_X509_FMT_DER) == GNUTLS_E_SUCCESS &&
        gnutls_x509_crt_get_dn3(cert, &dn, 0) == GNUTLS_E_SUCCESS) {
      subject.assign(reinterpret_cast<const char*>(dn.data), dn.size);
      gnutls_free(dn.data);
    }
    gnutls_x509_crt_deinit(cert);
  }
  return subject;
}

// How long Shutdown() lets the answers of requests caught by it out.
constexpr absl::Duration kLastAnswersTime = absl::Seconds(2);

absl::Status ShuttingDown() {
  return absl::UnavailableError("the server is shutting down; retry on another replica");
}

absl::Status ServerFailed() {
  return absl::InternalError("the server failed on this request");
}

// RFC 9110 token characters, what a header name is made of.
bool IsTokenChar(char c) {
  return c != '\0' && (absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                       std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The path and query of a raw request target: origin-form, or absolute-form
// without its scheme and authority. The path is percent-decoded except for
// "%2F", kept so that an encoded slash never separates segments. False for
// any other form ("*", authority-form), a malformed escape, or a control
// byte anywhere (a decoded NUL once cut "/metrics%00.html" to "/metrics").
bool ParseTarget(absl::string_view raw, std::string* path, std::string* query) {
  for (char c : raw) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  absl::string_view target = raw;
  absl::string_view rest;
  if (const size_t mark = target.find('?'); mark != absl::string_view::npos) {
    rest = target.substr(mark + 1);
    target = target.substr(0, mark);
  }
  for (absl::string_view scheme : {"http://", "https://"}) {
    if (absl::StartsWithIgnoreCase(target, scheme)) {
      target.remove_prefix(scheme.size());
      const size_t slash = target.find('/');
      target = slash == absl::string_view::npos ? "/" : target.substr(slash);
      break;
    }
  }
  if (target.empty() || target[0] != '/') return false;
  std::string decoded;
  decoded.reserve(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] != '%') {
      decoded.push_back(target[i]);
      continue;
    }
    if (i + 2 >= target.size()) return false;
    const int high = HexValue(target[i + 1]);
    const int low = HexValue(target[i + 2]);
    if (high < 0 || low < 0) return false;
    const char c = static_cast<char>(high * 16 + low);
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    if (c == '/') {
      decoded.append("%2F");
    } else {
      decoded.push_back(c);
    }
    i += 2;
  }
  *path = std::move(decoded);
  *query = std::string(rest);
  return true;
}

// RFC 9112 framing, checked before anything is routed: 0 when the request
// may go on, else the HTTP status refusing it (the connection then closes,
// so bytes smuggled after an ambiguous body are never read as a request).
// Sets head->path and head->query from the raw target.
int CheckFraming(absl::string_view version, absl::string_view raw_target, HttpRequest* head,
                 absl::Status* why) {
  // libmicrohttpd answers HTTP/2.0, 0.9 and malformed versions itself;
  // HTTP/1.2 is the odd one that reaches the handler.
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    *why = absl::UnimplementedError("this server speaks HTTP/1.0 and HTTP/1.1");
    return 505;
  }
  auto malformed = [why](absl::string_view what) {
    *why = absl::InvalidArgumentError(absl::StrCat("malformed request: ", what));
    return 400;
  };
  if (!ParseTarget(raw_target, &head->path, &head->query)) {
    return malformed("the request target is not an absolute path");
  }
  int lengths = 0, encodings = 0, hosts = 0;
  std::string encoding;
  for (const auto& [name, value] : head->headers) {
    // libmicrohttpd keeps "Name : v" as the name "Name " and glues a folded
    // continuation line onto the name ("Content-Length: 5\r\n 0" becomes
    // "Content-Length0"): a header it would not frame by, that a proxy may.
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return malformed("a header name is not an RFC 9110 token");
    }
    const std::string lower = absl::AsciiStrToLower(name);
    for (absl::string_view framing : {"content-length", "transfer-encoding", "host"}) {
      if (absl::StartsWith(lower, framing) && lower != framing) {
        return malformed("a header name extends Content-Length, Transfer-Encoding or Host");
      }
    }
    if (lower == "content-length") {
      ++lengths;
    } else if (lower == "transfer-encoding") {
      ++encodings;
      encoding = value;
    } else if (lower == "host") {
      ++hosts;
    }
  }
  if (lengths > 0 && encodings > 0) {
    return malformed("Content-Length together with Transfer-Encoding");
  }
  // Two equal values in one header ("5, 5") never get here: libmicrohttpd
  // answers 400 itself (its header block twice, fixed in 1.0) and closes.
  if (lengths > 1) return malformed("more than one Content-Length");
  if (encodings > 0) {
    // libmicrohttpd decodes only "chunked"; with any other coding it would
    // read the body until the connection closes.
    if (encodings > 1 ||
        !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(encoding), "chunked")) {
      return malformed("the only Transfer-Encoding served is chunked");
    }
    if (version == "HTTP/1.0") return malformed("Transfer-Encoding in HTTP/1.0");
  }
  if (hosts > 1 || (hosts == 0 && version == "HTTP/1.1")) {
    return malformed("an HTTP/1.1 request has exactly one Host header");
  }
  return 0;
}

absl::Status NoClientCertificate() {
  return absl::UnauthenticatedError(
      "this server requires a client certificate signed by one of its client CAs");
}

void LogFromLibrary(void*, const char* format, va_list args) {
  char text[512];
  vsnprintf(text, sizeof(text), format, args);
  std::string line(text);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  spdlog::debug("http: {}", line);
}

// A listening socket of our own: the port is known at once (port 0), and a
// port in use is an error rather than a silent share (no SO_REUSEPORT).
absl::StatusOr<int> Listen(const std::string& host, int port, int* bound_port) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = absl::StrCat(port);
  if (int error = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints,
                              &found);
      error != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve HTTP host '", host, "': ", gai_strerror(error)));
  }
  std::string failure = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 256) != 0) {
      failure = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", host, ":", port, ": ", failure));
  }
  sockaddr_storage address = {};
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  *bound_port = ntohs(address.ss_family == AF_INET6
                          ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                          : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  return fd;
}

}  // namespace

struct HttpCallbacks {
  // An answer the server makes itself, before the handler sees the request:
  // `status` with the HTTP code `http_status`, in the route's error shape;
  // the connection closes after it.
  static HttpResponse Refusal(const HttpServer& server, const HttpRequest& head,
                              const absl::Status& status, int http_status) {
    HttpResponse answer;
    if (server.options_.error_body) {
      answer = server.options_.error_body(head, status);
    } else {
      std::string code = absl::StatusCodeToString(status.code());
      for (char& c : code) c = c == ' ' ? '_' : absl::ascii_toupper(c);
      answer.body = absl::StrCat(R"({"code":")", code, R"(","message":")", status.message(),
                                 R"("})");
    }
    answer.status = http_status;
    if (status.code() == absl::StatusCode::kUnavailable) {
      answer.headers.emplace_back("Retry-After", "1");
    }
    answer.headers.emplace_back("Connection", "close");
    return answer;
  }

  // libmicrohttpd's URI log callback: the request line is in. Its return
  // value is the exchange's slot (*context), so the exchange holds the raw
  // target, which the handler gets only decoded ("%00" cut, "%2F" a slash).
  static void* Begin(void* self, const char* uri, MHD_Connection* connection) {
    auto* server = static_cast<HttpServer*>(self);
    try {
      auto exchange = std::make_shared<HttpServer::Exchange>();
      exchange->connection = connection;
      exchange->raw_target = uri == nullptr ? "" : uri;
      auto slot = std::make_unique<std::shared_ptr<HttpServer::Exchange>>(exchange);
      absl::MutexLock lock(&server->mu_);
      server->open_.insert(exchange.get());
      ++server->exchanges_;
      return slot.release();
    } catch (...) {
      return nullptr;  // the access handler then closes the connection
    }
  }

  // No exception may unwind into libmicrohttpd (C): one from the screen or
  // the handler is answered 500 inside; anything else closes the connection.
  static MHD_Result Access(void* self, MHD_Connection* connection, const char* /*url*/,
                           const char* method, const char* version, const char* upload_data,
                           size_t* upload_data_size, void** context) {
    try {
      return Serve(static_cast<HttpServer*>(self), connection, method, version, upload_data,
                   upload_data_size, context);
    } catch (...) {
      return MHD_NO;
    }
  }

  static MHD_Result Serve(HttpServer* server, MHD_Connection* connection, const char* method,
                          const char* version, const char* upload_data,
                          size_t* upload_data_size, void** context) {
    auto** slot = reinterpret_cast<std::shared_ptr<HttpServer::Exchange>**>(context);
    if (*slot == nullptr) return MHD_NO;  // Begin() could not allocate
    HttpServer::Exchange& exchange = ***slot;
    if (!exchange.headers_seen) {  // the headers are in
      exchange.headers_seen = true;
      HttpRequest& head = exchange.request;
      // HEAD is GET without the body, which libmicrohttpd leaves out.
      head.head = absl::string_view(method) == "HEAD";
      head.method = head.head ? "GET" : method;
      head.peer = PeerName(connection);
      MHD_get_connection_values(connection, MHD_HEADER_KIND, &CollectHeader, &head.headers);
      if (const MHD_ConnectionInfo* info =
              MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD)) {
        exchange.fd = info->connect_fd;
      }
      std::weak_ptr<HttpServer::Exchange> weak = **slot;
      head.cancelled = [weak, gone = exchange.client_gone] { return ClientGone(weak, *gone); };
      // Framing before anything is routed, then who calls: the client
      // certificate, then the screen (routes and tokens); all before any
      // body is read.
      absl::Status malformed;
      if (const int refusal = CheckFraming(version, exchange.raw_target, &head, &malformed)) {
        return Queue(connection, Refusal(*server, head, malformed, refusal));
      }
      if (server->options_.tls.has_value() && !server->options_.tls->client_ca_file.empty()) {
        std::optional<std::string> subject = VerifiedClientSubject(connection);
        if (!subject.has_value()) {
          return Queue(connection, Refusal(*server, head, NoClientCertificate(), 401));
        }
        head.client_certificate_subject = std::move(*subject);
      }
      if (server->options_.screen) {
        std::optional<HttpResponse> refused;
        try {
          refused = server->options_.screen(&head);
        } catch (...) {
          return Queue(connection, Refusal(*server, head, ServerFailed(), 500));
        }
        if (refused.has_value()) {
          refused->headers.emplace_back("Connection", "close");
          return Queue(connection, *refused);
        }
      }
      // A body announced over a limit is refused before it is read: over
      // either limit 413, and 503 while the others' bodies leave it no room.
      const char* length =
          MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Length");
      // With a Transfer-Encoding, libmicrohttpd ignores the length: so do we.
      const bool chunked = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                       "Transfer-Encoding") != nullptr;
      uint64_t announced = 0;
      if (length != nullptr && !chunked && absl::SimpleAtoi(length, &announced)) {
        const size_t budget = server->options_.max_buffered_body_bytes;
        const size_t largest = budget > 0 ? std::min(server->options_.max_body_bytes, budget)
                                          : server->options_.max_body_bytes;
        if (announced > largest) {
          return Queue(connection, Refusal(*server, head, TooLarge(largest), 413));
        }
        if (!server->BodyFits(announced)) {
          return Queue(connection, Refusal(*server, head, Busy(budget), 503));
        }
        exchange.announced_body_bytes = announced;
      }
      return MHD_YES;
    }
    if (*upload_data_size > 0) {
      std::string& body = exchange.request.body;
      const size_t needed = body.size() + *upload_data_size;
      if (needed > server->options_.max_body_bytes) {
        // Too late for an answer (the body is on its way): close.
        return MHD_NO;
      }
      if (needed > exchange.reserved_body_bytes) {
        // Bytes count as they arrive, not as announced, so headers alone
        // hold nothing; the buffer grows by doubling, up to the announced
        // length, and all of it counts. Past the budget the connection
        // closes: the body is on its way.
        const size_t cap = exchange.announced_body_bytes > 0 ? exchange.announced_body_bytes
                                                              : server->options_.max_body_bytes;
        const size_t target = std::max(needed, std::min(2 * body.capacity(), cap));
        if (!server->ReserveBody(target - exchange.reserved_body_bytes)) return MHD_NO;
        exchange.reserved_body_bytes = target;
        // A fresh buffer has exactly this capacity; reserve() on a string
        // that has one may double it instead.
        std::string grown;
        grown.reserve(target);
        grown.append(body);
        body.swap(grown);
      }
      body.append(upload_data, *upload_data_size);
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (!exchange.dispatched) {
      exchange.dispatched = true;
      bool closing = false;
      {
        absl::MutexLock server_lock(&server->mu_);
        closing = server->closing_;
      }
      // A body that completes once shutdown began is not worth its work.
      if (closing) {
        return Queue(connection, Refusal(*server, exchange.request, ShuttingDown(), 503));
      }
      std::shared_ptr<HttpServer::Exchange> shared = **slot;
      try {
        server->handler_(exchange.request, [shared](HttpResponse answer) mutable {
          absl::MutexLock lock(&shared->mu);
          // Gone, or answered already (by Shutdown() or after a throw).
          if (shared->closed || shared->answer.has_value()) return;
          shared->answer = std::move(answer);
          if (shared->suspended) {
            shared->suspended = false;
            MHD_resume_connection(shared->connection);
          }
        });
      } catch (...) {
        HttpResponse failed = Refusal(*server, exchange.request, ServerFailed(), 500);
        absl::MutexLock lock(&exchange.mu);
        if (!exchange.answer.has_value()) exchange.answer = std::move(failed);
      }
      {
        // Under the server's lock: Shutdown() answers every suspended
        // exchange once, and none suspends after it has.
        absl::MutexLock server_lock(&server->mu_);
        absl::MutexLock lock(&exchange.mu);
        if (!exchange.answer.has_value()) {
          if (!server->closing_) {
            // Answered later, from another thread: free this one meanwhile.
            exchange.suspended = true;
            MHD_suspend_connection(connection);
            return MHD_YES;
          }
          closing = true;
        }
      }
      if (closing) {
        HttpResponse refused = Refusal(*server, exchange.request, ShuttingDown(), 503);
        absl::MutexLock lock(&exchange.mu);
        if (!exchange.answer.has_value()) exchange.answer = std::move(refused);
      }
    }
    absl::MutexLock lock(&exchange.mu);
    if (!exchange.answer.has_value()) return MHD_YES;  // resumed too early: wait
    return Queue(connection, *exchange.answer);
  }

  // Whether the client of `weak` left before its answer.
  static bool ClientGone(const std::weak_ptr<HttpServer::Exchange>& weak,
                         std::atomic<bool>& gone) {
    if (gone) return true;
    std::shared_ptr<HttpServer::Exchange> exchange = weak.lock();
    if (exchange == nullptr) return gone;  // completed: `gone` says how
    absl::MutexLock lock(&exchange->mu);
    // Suspended, the socket stays open (libmicrohttpd closes it only after
    // resuming), so the descriptor is this connection's. A client that
    // half-closes counts as gone, as libmicrohttpd itself treats it.
    if (!exchange->suspended || exchange->fd < 0) return false;
    pollfd socket{exchange->fd, POLLRDHUP, 0};
    if (poll(&socket, 1, 0) > 0 && (socket.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      gone = true;
    }
    return gone;
  }

  static void Completed(void* self, MHD_Connection*, void** context,
                        MHD_RequestTerminationCode termination) {
    auto** slot = reinterpret_cast<std::shared_ptr<HttpServer::Exchange>**>(context);
    if (*slot == nullptr) return;
    std::shared_ptr<HttpServer::Exchange> exchange = std::move(**slot);
    delete *slot;
    *slot = nullptr;
    {
      absl::MutexLock lock(&exchange->mu);
      exchange->closed = true;
      if (termination != MHD_REQUEST_TERMINATED_COMPLETED_OK) *exchange->client_gone = true;
    }
    auto* server = static_cast<HttpServer*>(self);
    absl::MutexLock lock(&server->mu_);
    server->open_.erase(exchange.get());
    --server->exchanges_;
    server->buffered_body_bytes_ -= exchange->reserved_body_bytes;
  }
};

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

bool HttpServer::BodyFits(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  const size_t limit = options_.max_buffered_body_bytes;
  if (limit == 0 || (bytes <= limit && buffered_body_bytes_ <= limit - bytes)) return true;
  ++refused_bodies_;
  return false;
}

bool HttpServer::ReserveBody(size_t bytes) {
  absl::MutexLock lock(&mu_);
  const size_t limit = options_.max_buffered_body_bytes;
  if (limit > 0 && (bytes > limit || buffered_body_bytes_ > limit - bytes)) {
    ++refused_bodies_;
    return false;
  }
  buffered_body_bytes_ += bytes;
  return true;
}

HttpServer::BodyBudget HttpServer::body_budget() const {
  absl::MutexLock lock(&mu_);
  return BodyBudget{buffered_body_bytes_, refused_bodies_};
}

MHD_Daemon* HttpServer::StartDaemon(const TlsMaterial* tls) {
  const Options& o = options_;
  // poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon() (how the
  // port stops accepting at shutdown and on a TLS change) races its epoll
  // threads over removing the listening socket and aborts the process when
  // it loses ("Failed to remove listen FD from epoll set"); with poll() it
  // only signals the threads.
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;
  if (tls != nullptr) flags |= MHD_USE_TLS;
  // Options that apply only with TLS; MHD_OPTION_END ends the list early
  // without it, and with TLS and no client CA after the certificate.
  MHD_OptionItem tls_options[] = {
      {tls != nullptr ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0,
       tls != nullptr ? const_cast<char*>(tls->private_key.c_str()) : nullptr},
      {MHD_OPTION_HTTPS_MEM_CERT, 0,
       tls != nullptr ? const_cast<char*>(tls->cert_chain.c_str()) : nullptr},
      // TLS 1.2 and 1.3 only (GnuTLS's NORMAL also offers 1.0 and 1.1).
      {MHD_OPTION_HTTPS_PRIORITIES, 0,
       const_cast<char*>("NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2")},
      {tls != nullptr && !tls->client_ca.empty() ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END,
       0, tls != nullptr ? const_cast<char*>(tls->client_ca.c_str()) : nullptr},
      {MHD_OPTION_END, 0, nullptr},
  };
  return MHD_start_daemon(
      flags, 0, nullptr, nullptr,
      reinterpret_cast<MHD_AccessHandlerCallback>(&HttpCallbacks::Access), this,
      MHD_OPTION_LISTEN_SOCKET, listen_fd_,
      MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(std::max(o.threads, 1)),
      MHD_OPTION_CONNECTION_TIMEOUT,
      static_cast<unsigned>(std::max<int64_t>(absl::ToInt64Seconds(o.idle_timeout), 1)),
      MHD_OPTION_CONNECTION_LIMIT, o.max_connections,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, o.max_connections_per_client,
      MHD_OPTION_URI_LOG_CALLBACK, &HttpCallbacks::Begin, this,
      MHD_OPTION_NOTIFY_COMPLETED,
      reinterpret_cast<MHD_RequestCompletedCallback>(&HttpCallbacks::Completed), this,
      MHD_OPTION_EXTERNAL_LOGGER, &LogFromLibrary, nullptr,
      MHD_OPTION_ARRAY, tls_options, MHD_OPTION_END);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Options options,
                                                              Handler handler) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(options.address, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP address '", options.address, "' is not host:port"));
  }
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), std::move(handler)));
  const Options& o = server->options_;
  if (o.tls.has_value()) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      return absl::FailedPreconditionError("this libmicrohttpd was built without TLS");
    }
    server->tls_stamp_ = TlsFilesStamp(*o.tls);
    auto material = ReadTlsFiles(*o.tls);
    if (!material.ok()) return material.status();
    server->tls_material_ = std::make_shared<const TlsMaterial>(std::move(*material));
  }
  auto fd = Listen(host, port, &server->port_);
  if (!fd.ok()) return fd.status();
  server->listen_fd_ = *fd;
  MHD_Daemon* daemon =
      server->StartDaemon(server->tls_material_.get());
  if (daemon == nullptr) {
    close(server->listen_fd_);
    server->listen_fd_ = -1;
    return absl::UnavailableError(
        absl::StrCat("cannot start the HTTP listener on ", server->options_.address));
  }
  {
    absl::MutexLock lock(&server->daemons_mu_);
    server->daemon_ = daemon;
  }
  if (o.tls.has_value() && o.tls->refresh_interval > absl::ZeroDuration()) {
    HttpServer* raw = server.get();
    server->tls_watcher_ = std::thread([raw] {
      while (!raw->stop_tls_watch_.WaitForNotificationWithTimeout(
          raw->options_.tls->refresh_interval)) {
        raw->RefreshTls();
      }
    });
  }
  return server;
}

void HttpServer::RefreshTls() {
  absl::MutexLock lock(&daemons_mu_);
  // Listeners replaced earlier go once their last connection has.
  for (auto it = retired_.begin(); it != retired_.end();) {
    const MHD_DaemonInfo* info =
        MHD_get_daemon_info(it->first, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    if (info != nullptr && info->num_connections == 0) {
      MHD_stop_daemon(it->first);
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
  const std::string stamp = TlsFilesStamp(*options_.tls);
  if (stamp == tls_stamp_ || stamp == tls_refused_stamp_ || !accepting_ || daemon_ == nullptr) {
    return;
  }
  auto material = ReadTlsFiles(*options_.tls);
  if (!material.ok()) {
    // Half-written files (a key before its certificate) land here too; the
    // next look after they settle takes them.
    tls_refused_stamp_ = stamp;
    spdlog::error("HTTP port: {}; the certificate in force stays",
                  std::string(material.status().message()));
    return;
  }
  // The old listener gives up the socket; the new one takes it. Clients
  // that connect in between wait in the socket's backlog.
  MHD_Daemon* old = daemon_;
  const MHD_socket fd = MHD_quiesce_daemon(old);
  if (fd == MHD_INVALID_SOCKET) return;
  auto fresh = std::make_shared<const TlsMaterial>(std::move(*material));
  MHD_Daemon* next = StartDaemon(fresh.get());
  if (next == nullptr) {
    spdlog::error("HTTP port: cannot start a listener with the new certificate; "
                  "the certificate in force stays");
    next = StartDaemon(tls_material_.get());
    if (next == nullptr) {
      spdlog::critical("HTTP port: cannot restart its listener; it no longer accepts");
      accepting_ = false;
      close(listen_fd_);
      listen_fd_ = -1;
      retired_.emplace_back(old, tls_material_);
      daemon_ = nullptr;
      return;
    }
  } else {
    retired_.emplace_back(old, std::move(tls_material_));
    tls_material_ = std::move(fresh);
    tls_stamp_ = stamp;
    tls_refused_stamp_.clear();
    spdlog::info("HTTP port: TLS files changed; new connections get the new certificate");
    daemon_ = next;
    return;
  }
  retired_.emplace_back(old, tls_material_);
  daemon_ = next;
}

void HttpServer::StopAccepting() {
  absl::MutexLock lock(&daemons_mu_);
  if (daemon_ == nullptr || !accepting_.exchange(false)) return;
  const MHD_socket fd = MHD_quiesce_daemon(daemon_);
  if (fd != MHD_INVALID_SOCKET) close(fd);
  listen_fd_ = -1;
}

int HttpServer::requests_in_flight() const {
  absl::MutexLock lock(&mu_);
  return exchanges_;
}

void HttpServer::Shutdown(absl::Time deadline) {
  if (stopped_.exchange(true)) return;
  stop_tls_watch_.Notify();
  if (tls_watcher_.joinable()) tls_watcher_.join();
  StopAccepting();
  {
    absl::MutexLock lock(&mu_);
    auto answered = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return exchanges_ == 0; };
    mu_.AwaitWithDeadline(absl::Condition(&answered), deadline);
    // libmicrohttpd aborts the process when a listener stops with a
    // suspended connection, and a connection resumed without an answer gets
    // none: each request still waiting for its handler is answered 503 and
    // resumed, on every listener. Requests still in their handler or body
    // are answered 503 as they get there (closing_), and all those answers
    // are sent before the listeners stop.
    closing_ = true;
    for (Exchange* exchange : open_) {
      absl::MutexLock exchange_lock(&exchange->mu);
      if (!exchange->suspended) continue;
      exchange->answer = HttpCallbacks::Refusal(*this, exchange->request, ShuttingDown(), 503);
      exchange->suspended = false;
      MHD_resume_connection(exchange->connection);
    }
    // Bounded: a client that does not read its answer, or sends its body
    // slower than this, is cut.
    mu_.AwaitWithTimeout(absl::Condition(&answered), kLastAnswersTime);
  }
  absl::MutexLock lock(&daemons_mu_);
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
  for (auto& [old, material] : retired_) MHD_stop_daemon(old);
  retired_.clear();
}

HttpServer::~HttpServer() { Shutdown(absl::Now()); }

}  // namespace seqserve
