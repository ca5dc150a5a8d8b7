#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
  HttpRequest request;
  bool dispatched = false;
  absl::Mutex mu;
  std::optional<HttpResponse> answer ABSL_GUARDED_BY(mu);
  bool suspended ABSL_GUARDED_BY(mu) = false;
  bool closed ABSL_GUARDED_BY(mu) = false;  // the connection is gone
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
  for (const auto& [name, value] : answer.headers) {
    MHD_add_response_header(response, name.c_str(), value.c_str());
  }
  const MHD_Result queued =
      MHD_queue_response(connection, static_cast<unsigned>(answer.status), response);
  MHD_destroy_response(response);
  return queued;
}

HttpResponse TooLarge(size_t limit) {
  HttpResponse answer;
  answer.status = 413;
  answer.body = absl::StrCat(R"({"code":"RESOURCE_EXHAUSTED","message":"request body is )",
                             R"(larger than the limit of )", limit, R"( bytes"})");
  answer.headers.emplace_back("Connection", "close");
  return answer;
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
  static MHD_Result Access(void* self, MHD_Connection* connection, const char* url,
                           const char* method, const char*, const char* upload_data,
                           size_t* upload_data_size, void** context) {
    auto* server = static_cast<HttpServer*>(self);
    auto** slot = reinterpret_cast<std::shared_ptr<HttpServer::Exchange>**>(context);
    if (*slot == nullptr) {  // the headers are in
      auto exchange = std::make_shared<HttpServer::Exchange>();
      exchange->connection = connection;
      exchange->request.method = method;
      exchange->request.path = url;
      *slot = new std::shared_ptr<HttpServer::Exchange>(exchange);
      {
        absl::MutexLock lock(&server->mu_);
        ++server->exchanges_;
      }
      // A body announced over the limit is refused before it is read.
      const char* length =
          MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Length");
      uint64_t announced = 0;
      if (length != nullptr && absl::SimpleAtoi(length, &announced) &&
          announced > server->options_.max_body_bytes) {
        return Queue(connection, TooLarge(server->options_.max_body_bytes));
      }
      return MHD_YES;
    }
    HttpServer::Exchange& exchange = ***slot;
    if (*upload_data_size > 0) {
      if (exchange.request.body.size() + *upload_data_size > server->options_.max_body_bytes) {
        // Too late for an answer (the body is on its way): close.
        return MHD_NO;
      }
      exchange.request.body.append(upload_data, *upload_data_size);
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (!exchange.dispatched) {
      exchange.dispatched = true;
      exchange.request.peer = PeerName(connection);
      MHD_get_connection_values(connection, MHD_HEADER_KIND, &CollectHeader,
                                &exchange.request.headers);
      std::shared_ptr<HttpServer::Exchange> shared = **slot;
      server->handler_(exchange.request, [shared](HttpResponse answer) mutable {
        absl::MutexLock lock(&shared->mu);
        if (shared->closed) return;
        shared->answer = std::move(answer);
        if (shared->suspended) {
          shared->suspended = false;
          MHD_resume_connection(shared->connection);
        }
      });
      absl::MutexLock lock(&exchange.mu);
      if (!exchange.answer.has_value()) {
        // Answered later, from another thread: free this one meanwhile.
        exchange.suspended = true;
        MHD_suspend_connection(connection);
        return MHD_YES;
      }
    }
    absl::MutexLock lock(&exchange.mu);
    if (!exchange.answer.has_value()) return MHD_YES;  // resumed too early: wait
    return Queue(connection, *exchange.answer);
  }

  static void Completed(void* self, MHD_Connection*, void** context,
                        MHD_RequestTerminationCode) {
    auto** slot = reinterpret_cast<std::shared_ptr<HttpServer::Exchange>**>(context);
    if (*slot == nullptr) return;
    {
      absl::MutexLock lock(&(**slot)->mu);
      (**slot)->closed = true;
    }
    delete *slot;
    *slot = nullptr;
    auto* server = static_cast<HttpServer*>(self);
    absl::MutexLock lock(&server->mu_);
    --server->exchanges_;
  }
};

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Options options,
                                                              Handler handler) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(options.address, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP address '", options.address, "' is not host:port"));
  }
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), std::move(handler)));
  auto fd = Listen(host, port, &server->port_);
  if (!fd.ok()) return fd.status();
  server->listen_fd_ = *fd;
  const Options& o = server->options_;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;
  server->daemon_ = MHD_start_daemon(
      flags, 0, nullptr, nullptr,
      reinterpret_cast<MHD_AccessHandlerCallback>(&HttpCallbacks::Access), server.get(),
      MHD_OPTION_LISTEN_SOCKET, server->listen_fd_,
      MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(std::max(o.threads, 1)),
      MHD_OPTION_CONNECTION_TIMEOUT,
      static_cast<unsigned>(std::max<int64_t>(absl::ToInt64Seconds(o.idle_timeout), 1)),
      MHD_OPTION_CONNECTION_LIMIT, o.max_connections,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, o.max_connections_per_client,
      MHD_OPTION_NOTIFY_COMPLETED,
      reinterpret_cast<MHD_RequestCompletedCallback>(&HttpCallbacks::Completed),
      server.get(), MHD_OPTION_EXTERNAL_LOGGER, &LogFromLibrary, nullptr, MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    close(server->listen_fd_);
    server->listen_fd_ = -1;
    return absl::UnavailableError(
        absl::StrCat("cannot start the HTTP listener on ", server->options_.address));
  }
  return server;
}

void HttpServer::StopAccepting() {
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
  if (daemon_ == nullptr || stopped_.exchange(true)) return;
  StopAccepting();
  {
    absl::MutexLock lock(&mu_);
    auto answered = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return exchanges_ == 0; };
    mu_.AwaitWithDeadline(absl::Condition(&answered), deadline);
  }
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

HttpServer::~HttpServer() { Shutdown(absl::Now()); }

}  // namespace seqserve
