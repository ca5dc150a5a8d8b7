// An HTTP/1.1 listener on Boost.Beast's parser over Asio, which seqserve's
// HTTP front ends (REST, v2, TF Serving's REST, health, metrics, console)
// sit on. The parser frames requests as RFC 9112 says and refuses what it
// cannot frame (a NUL in the request line, a length that is not a number);
// CheckFraming refuses the rest before anything is routed. It is
// event-driven: a slow or idle client holds a connection slot, never a
// thread; its headers must arrive within `idle_timeout`, and its body may
// not stall for longer. Connections are capped in total and per client
// address (over a cap: 503, or closed over TLS). A handler may answer later
// from any thread, so a call can wait for the batching runner without
// holding one of the few listener threads.
//
// With TLS files the port speaks HTTPS only (TLS 1.2 and 1.3). They are
// re-read every refresh interval; on a change new connections get the new
// certificate, open ones keep theirs. With a client CA file a client must
// show a certificate signed by one of its CAs: a request over a connection
// without one is answered 401 and the connection closed before the handler
// sees it, so the client reads why.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "auth/tls_files.h"

namespace boost::asio::ssl {
class context;
}

namespace seqserve {

struct HttpRequest {
  // "GET", "POST", ...; a HEAD request is seen as "GET" with `head` set (the
  // server sends the answer's headers without its body).
  std::string method;
  bool head = false;
  // From the raw request target (origin-form, or absolute-form with its
  // scheme and authority dropped), percent-decoded except "%2F", which stays
  // encoded so that it never separates segments; without the query.
  std::string path;
  std::string query;  // after '?', as sent; empty when none
  std::string body;
  std::string peer;  // "ipv4:127.0.0.1:53412", as gRPC names peers
  // The verified client certificate's distinguished name (mutual TLS).
  std::string client_certificate_subject;
  std::vector<std::pair<std::string, std::string>> headers;
  // Who the screen (Options::screen) admitted, for logs; "" when anonymous.
  std::string admitted_caller;
  // The call's id as the screen set it (the caller's X-Request-Id, or one
  // made for it), sent back in every answer's X-Request-Id; whether it was
  // made; and the trace id of a W3C traceparent header.
  std::string request_id;
  bool request_id_made = false;
  std::string trace_id;
  // True once the client has gone (closed its connection) before its
  // answer; safe to call from any thread, also after the connection is gone.
  std::function<bool()> cancelled;
  // The value of header `name` (case-insensitive); empty when absent.
  std::string Header(absl::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class HttpServer {
 public:
  // Runs on a listener thread when a request's headers are complete, before
  // a byte of its body is read. An answer refuses the request (the
  // connection closes after it, the body unread); nullopt lets it on. It
  // may set head->admitted_caller. Must not block.
  using Screen = std::function<std::optional<HttpResponse>(HttpRequest* head)>;
  // The body of an answer the server makes itself (413, 503, 401 for a
  // missing client certificate), in the error shape of the route asked.
  using ErrorBody = std::function<HttpResponse(const HttpRequest& head, const absl::Status&)>;

  struct Options {
    // host:port; port 0 picks a free one (see port()).
    std::string address = "0.0.0.0:8501";
    // Largest request body; beyond it 413.
    size_t max_body_bytes = 16 << 20;
    // Request bodies held at once, all connections together, counted as
    // their bytes arrive and until their exchange completes. A body
    // announced (Content-Length) that does not fit beside the others is
    // answered 503 before it is read; one that stops fitting while it
    // arrives closes its connection. 0: no limit.
    size_t max_buffered_body_bytes = 0;
    // Threads that parse requests and run handlers.
    int threads = 2;
    // A connection without progress for this long is closed.
    absl::Duration idle_timeout = absl::Seconds(30);
    // Open connections in total, and from one client address (0: no cap
    // of its own).
    unsigned max_connections = 1024;
    unsigned max_connections_per_client = 0;
    // HTTPS with these files; none: plain HTTP.
    std::optional<TlsFiles> tls;
    // Null: every request is let on; its own status codes in plain JSON.
    Screen screen;
    ErrorBody error_body;
  };

  // Answers a request; call exactly once, from any thread. One destroyed
  // without being called answers 500.
  using Respond = absl::AnyInvocable<void(HttpResponse) &&>;
  // Runs on a listener thread for each complete request; must not block.
  using Handler = std::function<void(const HttpRequest&, Respond)>;

  // Binds and starts serving; UNAVAILABLE when the address cannot be used.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(Options options,
                                                           Handler handler);
  ~HttpServer();  // Shutdown() with no grace if still running

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

  // Stops accepting connections; requests on open ones are still answered.
  void StopAccepting();
  // StopAccepting(), waits until every request begun has been answered or
  // `deadline` passed; then answers 503 every request still waiting for its
  // handler (whose later answer is dropped), and closes every connection.
  void Shutdown(absl::Time deadline);

  // Requests read (or being read) and not yet answered.
  int requests_in_flight() const;

  // The body budget (Options::max_buffered_body_bytes): bytes held now, and
  // bodies refused since start (answered 503, or closed as they arrived).
  struct BodyBudget {
    size_t held_bytes = 0;
    uint64_t refused = 0;
  };
  BodyBudget body_budget() const;

 private:
  struct Exchange;
  class Connection;
  // Asio's context, the acceptor and the threads that run them.
  struct Listener;
  template <class Stream>
  friend class HttpConnection;
  HttpServer(Options options, Handler handler);
  // Re-reads the TLS files when they changed; new connections get them.
  void RefreshTls();
  // An answer the server makes itself, before the handler sees the
  // request: `status` with the HTTP code `http_status`, in the route's
  // error shape; the connection closes after it.
  HttpResponse Refusal(const HttpRequest& head, const absl::Status& status,
                       int http_status) const;
  // The first answer to `exchange` is sent; later ones are dropped.
  static void Answer(const std::shared_ptr<Exchange>& exchange, HttpResponse answer);
  void ExchangeBegan(const std::shared_ptr<Exchange>& exchange) ABSL_LOCKS_EXCLUDED(mu_);
  void ExchangeEnded(const std::shared_ptr<Exchange>& exchange) ABSL_LOCKS_EXCLUDED(mu_);
  void ConnectionEnded(Connection* connection, const std::string& client_key)
      ABSL_LOCKS_EXCLUDED(connections_mu_);
  // Hands `exchange` to the handler unless Shutdown() has begun closing.
  bool Dispatching(Exchange& exchange) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `bytes` more fit in the body budget now; ReserveBody() takes
  // them. Both count a refusal when they do not fit.
  bool BodyFits(uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  bool ReserveBody(size_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  const Handler handler_;
  // The TLS context new connections get; the files' stamp, and that of a
  // refused change (touched at start and by the watcher only).
  absl::Mutex tls_mu_;
  std::shared_ptr<boost::asio::ssl::context> tls_context_ ABSL_GUARDED_BY(tls_mu_);
  std::string tls_stamp_;
  std::string tls_refused_stamp_;
  absl::Notification stop_tls_watch_;
  std::thread tls_watcher_;
  int port_ = 0;
  std::atomic<bool> accepting_{true};
  std::atomic<bool> stopped_{false};
  mutable absl::Mutex mu_;
  // Every exchange begun (headers read) and not ended (answer sent, or
  // connection closed).
  std::set<std::shared_ptr<Exchange>> open_ ABSL_GUARDED_BY(mu_);
  // Set by Shutdown(): a body that completes is answered 503.
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  // Body bytes reserved by exchanges still open; see max_buffered_body_bytes.
  size_t buffered_body_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t refused_bodies_ ABSL_GUARDED_BY(mu_) = 0;
  // Open connections, and how many each client address has.
  absl::Mutex connections_mu_;
  std::map<Connection*, std::weak_ptr<Connection>> connections_
      ABSL_GUARDED_BY(connections_mu_);
  std::map<std::string, unsigned> per_client_ ABSL_GUARDED_BY(connections_mu_);
  // Last, so that connections still held by its handlers end (and report
  // to the members above) when it goes.
  std::unique_ptr<Listener> listener_;
};

// "host:port" split, with [v6] brackets removed; nullopt-like false when
// the port is not a number.
bool SplitHostPort(absl::string_view address, std::string* host, int* port);

}  // namespace seqserve
