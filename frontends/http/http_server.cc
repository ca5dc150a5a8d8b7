#include "frontends/http/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace seqserve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

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

// What the server, Shutdown() and a Respond callback need of a connection,
// whatever its stream.
class HttpServer::Connection {
 public:
  virtual ~Connection() = default;
  // Sends the exchange's answer, on the connection's own strand. Called
  // under the exchange's lock while it is open; takes no reference, so
  // that a connection is never destroyed off its io_context's threads.
  virtual void Deliver() = 0;
  // Closes the socket, on the connection's own strand.
  virtual void Close() = 0;
};

// One request, from its complete headers to the end of its response.
// Shared by the connection and the Respond callback, which may outlive it.
struct HttpServer::Exchange {
  HttpRequest request;
  // Alive while the exchange is not `closed`: a connection closes its
  // exchange, under `mu`, before it goes.
  Connection* connection = nullptr;
  // Of the server's body budget: the body buffer's size, held until the
  // exchange ends. Touched only on the connection's strand.
  size_t reserved_body_bytes = 0;
  absl::Mutex mu;
  // The first answer wins: the handler's, Shutdown()'s 503, or a 500.
  std::optional<HttpResponse> answer ABSL_GUARDED_BY(mu);
  // The handler has the request (Shutdown() answers only those).
  bool dispatched ABSL_GUARDED_BY(mu) = false;
  // The exchange has ended: nothing is sent for it any more.
  bool closed ABSL_GUARDED_BY(mu) = false;
  // The client left before its answer was sent; shared with
  // HttpRequest::cancelled, which may outlive the exchange.
  std::shared_ptr<std::atomic<bool>> client_gone = std::make_shared<std::atomic<bool>>(false);
};

namespace {

// Request headers larger than this are answered 431: far above what any
// client of these routes sends (a bearer token, a few names), and a bound
// on what an idle connection holds.
constexpr size_t kHeaderLimit = 32 << 10;
// The read buffer of a connection: the headers, or a slice of body on its
// way to the body buffer, or what a client sends ahead while it waits.
constexpr size_t kReadBufferLimit = 64 << 10;
// How long a connection closed by the server still reads (and drops) what
// the client sends, so that the client reads the answer instead of a reset.
constexpr absl::Duration kLingerTime = absl::Seconds(1);
// How long Shutdown() lets the answers of requests caught by it out.
constexpr absl::Duration kLastAnswersTime = absl::Seconds(2);

absl::Status TooLarge(size_t limit) {
  return absl::ResourceExhaustedError(
      absl::StrCat("request body is larger than the limit of ", limit, " bytes"));
}

absl::Status Busy(size_t limit) {
  return absl::UnavailableError(
      absl::StrCat("the server holds its limit of ", limit, " bytes of request bodies; retry"));
}

absl::Status TooManyConnections() {
  return absl::UnavailableError(
      "the server holds its limit of connections from this client or in total; retry");
}

absl::Status ShuttingDown() {
  return absl::UnavailableError("the server is shutting down; retry on another replica");
}

absl::Status ServerFailed() {
  return absl::InternalError("the server failed on this request");
}

absl::Status NoClientCertificate() {
  return absl::UnauthenticatedError(
      "this server requires a client certificate signed by one of its client CAs");
}

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed request: ", what));
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

// RFC 9112 framing, checked on what the parser accepted before anything is
// routed: 0 when the request may go on, else the HTTP status refusing it
// (the connection then closes, so bytes smuggled after an ambiguous body
// are never read as a request). Sets head->path and head->query from the
// raw target.
int CheckFraming(unsigned version, absl::string_view raw_target, HttpRequest* head,
                 absl::Status* why) {
  if (version != 11 && version != 10) {
    *why = absl::UnimplementedError("this server speaks HTTP/1.0 and HTTP/1.1");
    return 505;
  }
  auto malformed = [why](absl::string_view what) {
    *why = Malformed(what);
    return 400;
  };
  if (!ParseTarget(raw_target, &head->path, &head->query)) {
    return malformed("the request target is not an absolute path");
  }
  int lengths = 0, encodings = 0, hosts = 0, authorizations = 0;
  std::string encoding, length, host;
  for (const auto& [name, value] : head->headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return malformed("a header name is not an RFC 9110 token");
    }
    const std::string lower = absl::AsciiStrToLower(name);
    // A name one byte off a framing header is how a request is smuggled
    // past a proxy that trims or folds it and reaches here as its own.
    for (absl::string_view framing : {"content-length", "transfer-encoding", "host"}) {
      if (absl::StartsWith(lower, framing) && lower != framing) {
        return malformed("a header name extends Content-Length, Transfer-Encoding or Host");
      }
    }
    if (lower == "content-length") {
      ++lengths;
      length = value;
    } else if (lower == "transfer-encoding") {
      ++encodings;
      encoding = value;
    } else if (lower == "host") {
      ++hosts;
      host = value;
    } else if (lower == "authorization") {
      ++authorizations;
    }
  }
  if (lengths > 0 && encodings > 0) {
    return malformed("Content-Length together with Transfer-Encoding");
  }
  // One length, digits only: "5, 5" and "+5" are refused as a second
  // Content-Length would be.
  if (lengths > 1 || (lengths == 1 && (length.empty() || !std::all_of(length.begin(),
                                                                      length.end(),
                                                                      absl::ascii_isdigit)))) {
    return malformed("more than one Content-Length, or one that is not a number");
  }
  if (encodings > 0) {
    // Only "chunked" is decoded; with another coding the body's end would
    // be the connection's.
    if (encodings > 1 ||
        !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(encoding), "chunked")) {
      return malformed("the only Transfer-Encoding served is chunked");
    }
    if (version == 10) return malformed("Transfer-Encoding in HTTP/1.0");
  }
  // A folded Host line reaches here as a value with a space in it.
  if (hosts > 1 || (hosts == 0 && version == 11) ||
      std::any_of(host.begin(), host.end(), [](char c) { return c == ' ' || c == '\t'; })) {
    return malformed("an HTTP/1.1 request has exactly one Host header, a host name");
  }
  // Which one would a proxy have checked?
  if (authorizations > 1) return malformed("more than one Authorization header");
  return 0;
}

// "ipv4:127.0.0.1:53412", as gRPC names peers.
std::string PeerName(const tcp::endpoint& endpoint) {
  const asio::ip::address address = endpoint.address();
  if (address.is_v4()) return absl::StrCat("ipv4:", address.to_string(), ":", endpoint.port());
  return absl::StrCat("ipv6:[", address.to_string(), "]:", endpoint.port());
}

// A listening socket of our own: the port is known at once (port 0), and a
// port in use is an error rather than a silent share (no SO_REUSEPORT).
absl::StatusOr<int> Listen(const std::string& host, int port, int* bound_port, bool* v6) {
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
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
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
  *v6 = address.ss_family == AF_INET6;
  *bound_port = ntohs(*v6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                          : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  return fd;
}

// The certificates of a PEM text, in order.
std::vector<X509*> ReadCertificates(const std::string& pem) {
  std::vector<X509*> certificates;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return certificates;
  while (X509* certificate = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    certificates.push_back(certificate);
  }
  BIO_free(bio);
  return certificates;
}

// The server's side of TLS with `material`: TLS 1.2 and 1.3 only, as on the
// gRPC port. With client CAs the handshake asks for a certificate and lets
// any on; the request is then refused 401 unless it verified (Connection),
// so that a client without one reads why.
absl::StatusOr<std::shared_ptr<asio::ssl::context>> MakeTlsContext(const TlsMaterial& material) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  context->set_options(asio::ssl::context::default_workarounds |
                       asio::ssl::context::single_dh_use);
  error_code ec;
  context->use_certificate_chain(asio::buffer(material.cert_chain), ec);
  if (!ec) {
    context->use_private_key(asio::buffer(material.private_key), asio::ssl::context::pem, ec);
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("the HTTP port cannot use its certificate and key: ", ec.message()));
  }
  if (!material.client_ca.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(native);
    for (X509* ca : ReadCertificates(material.client_ca)) {
      X509_STORE_add_cert(store, ca);
      SSL_CTX_add_client_CA(native, ca);
      X509_free(ca);
    }
    context->set_verify_mode(asio::ssl::verify_peer);
    // A resumed session keeps the certificate its first handshake verified;
    // without an id context OpenSSL refuses to resume when it verifies.
    static constexpr unsigned char kSessionContext[] = "seqserve-http";
    SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
    context->set_verify_callback([](bool, asio::ssl::verify_context&) { return true; });
  }
  return context;
}

// The verified client certificate's subject (RFC 2253, as gRPC gives it);
// nullopt without one, or with one that did not verify.
std::optional<std::string> VerifiedClientSubject(SSL* ssl) {
  X509* certificate = SSL_get1_peer_certificate(ssl);
  if (certificate == nullptr) return std::nullopt;
  std::optional<std::string> subject;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio != nullptr) {
      X509_NAME_print_ex(bio, X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253);
      char* data = nullptr;
      const long size = BIO_get_mem_data(bio, &data);
      subject = std::string(data, static_cast<size_t>(std::max(size, 0L)));
      BIO_free(bio);
    }
  }
  X509_free(certificate);
  return subject;
}

// An error of the HTTP parser itself (the request is malformed), not of the
// stream (closed, reset, timed out) or a client that stopped mid-message.
bool IsParseError(error_code ec) {
  return &ec.category() == &http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// Whether the request line in `buffer` is well formed up to its version,
// which is another than 1.0 and 1.1 ("HTTP/1.2", the "HTTP/2.0" of an h2
// preface): 505 rather than 400.
bool SaysAnotherVersion(const beast::flat_buffer& buffer) {
  const absl::string_view bytes(static_cast<const char*>(buffer.data().data()),
                                buffer.data().size());
  const size_t end = bytes.find("\r\n");
  if (end == absl::string_view::npos || end < 9) return false;
  const absl::string_view version = bytes.substr(end - 9, 9);
  return version[0] == ' ' && absl::StartsWith(version.substr(1), "HTTP/") &&
         absl::ascii_isdigit(static_cast<unsigned char>(version[6])) && version[7] == '.' &&
         absl::ascii_isdigit(static_cast<unsigned char>(version[8]));
}

std::string HttpDate() {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", absl::Now(), absl::UTCTimeZone());
}

}  // namespace

// A request body, held in a buffer that is charged to the server's body
// budget as it grows (Exchange::reserved_body_bytes).
struct BudgetedBody {
  struct value_type {
    std::string bytes;
    // Makes room for `more` bytes after `bytes`; false when they do not fit.
    std::function<bool(std::string& bytes, size_t more)> make_room;
  };

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>&, error_code& ec) { ec = {}; }
    template <class ConstBufferSequence>
    size_t put(const ConstBufferSequence& buffers, error_code& ec) {
      const size_t extra = asio::buffer_size(buffers);
      if (!body_.make_room || !body_.make_room(body_.bytes, extra)) {
        ec = asio::error::no_buffer_space;
        return 0;
      }
      for (const auto& buffer : beast::buffers_range_ref(buffers)) {
        body_.bytes.append(static_cast<const char*>(buffer.data()), buffer.size());
      }
      ec = {};
      return extra;
    }
    void finish(error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

// One client connection over `Stream` (a TCP socket, or TLS over one): reads
// requests one after the other, answers each in order. Every step runs on
// the connection's strand.
template <class Stream>
class HttpConnection final : public HttpServer::Connection,
                             public std::enable_shared_from_this<HttpConnection<Stream>> {
 public:
  // `tls`: the context `stream` was made with, kept while it lives.
  HttpConnection(HttpServer* server, std::shared_ptr<asio::ssl::context> tls, Stream stream,
                 std::string peer, std::string client_key)
      : server_(server),
        tls_(std::move(tls)),
        stream_(std::move(stream)),
        timer_(stream_.get_executor()),
        buffer_(kReadBufferLimit),
        peer_(std::move(peer)),
        client_key_(std::move(client_key)) {}

  ~HttpConnection() override {
    EndExchange(/*answered=*/false);
    server_->ConnectionEnded(this, client_key_);
  }

  // Serves the connection; `refusal` instead answers it at once and closes
  // it (over TLS, closes it: an answer would need a handshake first).
  void Start(std::optional<HttpResponse> refusal) {
    asio::dispatch(stream_.get_executor(),
                   [self = this->shared_from_this(), refusal = std::move(refusal)]() mutable {
                     if (!refusal.has_value()) return self->Handshake();
                     if constexpr (kTls) return self->CloseNow();
                     self->Write(std::move(*refusal));
                   });
  }

  void Deliver() override {
    asio::post(stream_.get_executor(), [weak = this->weak_from_this()] {
      if (auto self = weak.lock()) self->OnAnswer();
    });
  }

  void Close() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->CloseNow(); });
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  tcp::socket& Socket() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  // The connection closes when `after` passes without the step in hand done.
  void Arm(absl::Duration after) {
    const uint64_t generation = ++timer_generation_;
    timer_.expires_after(absl::ToChronoNanoseconds(after));
    timer_.async_wait([self = this->shared_from_this(), generation](error_code ec) {
      if (!ec && generation == self->timer_generation_) self->CloseNow();
    });
  }
  void Disarm() {
    ++timer_generation_;
    timer_.cancel();
  }

  void Handshake() {
    if constexpr (kTls) {
      Arm(server_->options_.idle_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](error_code ec) {
                                if (ec) return self->CloseNow();
                                self->ReadHeader();
                              });
    } else {
      ReadHeader();
    }
  }

  // The whole header must come within the idle timeout, however slowly.
  void ReadHeader() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    // Checked as the body grows (MakeRoom). No limit here: boost::none
    // means "no body at all" to Beast 1.74's check of a Content-Length.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    Arm(server_->options_.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(error_code ec) {
    if (closed_) return;
    if (ec) {
      if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
        return Refuse(HttpRequest{},
                      absl::ResourceExhaustedError(absl::StrCat(
                          "request headers are larger than the limit of ", kHeaderLimit,
                          " bytes")),
                      431);
      }
      // A parse error: framing the parser refuses (a NUL or a control byte
      // in the request line or a header, a bad Content-Length, a
      // Transfer-Encoding beside one). A closed or timed-out socket: none.
      if (ec == http::error::bad_version && SaysAnotherVersion(buffer_)) {
        return Refuse(HttpRequest{},
                      absl::UnimplementedError("this server speaks HTTP/1.0 and HTTP/1.1"), 505);
      }
      if (IsParseError(ec)) return Refuse(HttpRequest{}, Malformed(ec.message()), 400);
      return CloseNow();
    }
    auto exchange = std::make_shared<HttpServer::Exchange>();
    exchange->connection = this;
    exchange_ = exchange;
    HttpRequest& head = exchange->request;
    const auto& message = parser_->get();
    // HEAD is GET without the body, which Write() leaves out.
    head.head = message.method() == http::verb::head;
    head.method = head.head ? "GET" : std::string(message.method_string());
    head.peer = peer_;
    for (const auto& field : message) {
      head.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    head.cancelled = [gone = exchange->client_gone] { return gone->load(); };
    // Framing before anything is routed, then who calls: the client
    // certificate, then the screen (routes and tokens); all before any
    // body is read.
    absl::Status why;
    const int refusal = CheckFraming(
        message.version(), absl::string_view(message.target().data(), message.target().size()),
        &head, &why);
    server_->ExchangeBegan(exchange);
    if (refusal != 0) return Refuse(head, why, refusal);
    const HttpServer::Options& options = server_->options_;
    if constexpr (kTls) {
      if (options.tls.has_value() && !options.tls->client_ca_file.empty()) {
        std::optional<std::string> subject = VerifiedClientSubject(stream_.native_handle());
        if (!subject.has_value()) return Refuse(head, NoClientCertificate(), 401);
        head.client_certificate_subject = std::move(*subject);
      }
    }
    if (options.screen) {
      std::optional<HttpResponse> refused;
      try {
        refused = options.screen(&head);
      } catch (...) {
        return Refuse(head, ServerFailed(), 500);
      }
      if (refused.has_value()) {
        refused->headers.emplace_back("Connection", "close");
        return Write(std::move(*refused));
      }
    }
    // A body announced over a limit is refused before it is read: over
    // either limit 413, and 503 while the others' bodies leave it no room.
    const size_t budget = options.max_buffered_body_bytes;
    const size_t largest = budget > 0 ? std::min(options.max_body_bytes, budget)
                                      : options.max_body_bytes;
    if (const auto announced = parser_->content_length(); announced.has_value()) {
      if (*announced > largest) return Refuse(head, TooLarge(largest), 413);
      if (!server_->BodyFits(*announced)) return Refuse(head, Busy(budget), 503);
      announced_body_bytes_ = *announced;
    } else {
      announced_body_bytes_ = 0;
    }
    parser_->get().body().make_room = [this](std::string& bytes, size_t more) {
      return MakeRoom(bytes, more);
    };
    if (parser_->is_done()) return Dispatch();
    // Asked before the body is sent (curl does for large ones): go on.
    if (message.version() == 11 &&
        absl::EqualsIgnoreCase(std::string(message[http::field::expect]), "100-continue")) {
      static constexpr absl::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      Arm(options.idle_timeout);
      return asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                               [self = this->shared_from_this()](error_code failed, size_t) {
                                 if (failed) return self->CloseNow();
                                 self->ReadBody();
                               });
    }
    ReadBody();
  }

  // Bytes count as they arrive, not as announced, so headers alone hold
  // nothing; the buffer grows by doubling, up to the announced length, and
  // all of it counts.
  bool MakeRoom(std::string& bytes, size_t more) {
    const size_t needed = bytes.size() + more;
    if (needed > server_->options_.max_body_bytes) {
      body_too_large_ = true;
      return false;
    }
    size_t& reserved = exchange_->reserved_body_bytes;
    if (needed <= reserved) return true;
    const size_t cap =
        announced_body_bytes_ > 0 ? announced_body_bytes_ : server_->options_.max_body_bytes;
    const size_t target = std::max(needed, std::min(2 * bytes.capacity(), cap));
    if (!server_->ReserveBody(target - reserved)) return false;
    reserved = target;
    // A fresh buffer has exactly this capacity; reserve() on a string that
    // has one may double it instead.
    std::string grown;
    grown.reserve(target);
    grown.append(bytes);
    bytes.swap(grown);
    return true;
  }

  // The body may take as long as it likes while it makes progress.
  void ReadBody() {
    if (closed_) return;
    Arm(server_->options_.idle_timeout);
    http::async_read_some(stream_, buffer_, *parser_,
                          [self = this->shared_from_this()](error_code ec, size_t) {
                            self->OnBody(ec);
                          });
  }

  void OnBody(error_code ec) {
    if (closed_) return;
    if (ec) {
      HttpRequest& head = exchange_->request;
      if (body_too_large_) return Refuse(head, TooLarge(server_->options_.max_body_bytes), 413);
      // Past the budget, or a client that left: the body is on its way,
      // or gone; close.
      if (!IsParseError(ec)) return CloseNow();
      return Refuse(head, Malformed(ec.message()), 400);
    }
    if (!parser_->is_done()) return ReadBody();
    Dispatch();
  }

  void Dispatch() {
    Disarm();
    std::shared_ptr<HttpServer::Exchange> exchange = exchange_;
    exchange->request.body = std::move(parser_->get().body().bytes);
    // A body that completes once shutdown began is not worth its work.
    if (!server_->Dispatching(*exchange)) {
      return Refuse(exchange->request, ShuttingDown(), 503);
    }
    awaiting_answer_ = true;
    // Nothing else may hold the connection while the handler works (no
    // timer, and no watch when the next request is in the buffer).
    held_until_answered_ = this->shared_from_this();
    WatchClient();
    try {
      server_->handler_(exchange->request,
                        Responder(exchange, server_->Refusal(exchange->request,
                                                             ServerFailed(), 500)));
    } catch (...) {
      HttpServer::Answer(exchange, server_->Refusal(exchange->request, ServerFailed(), 500));
    }
  }

  // While its answer is made, a read tells whether the client left. It ends
  // with the first bytes the client sends (its next request), which stay in
  // the buffer; a client that sent them ahead is not watched.
  void WatchClient() {
    if (watching_ || peer_closed_ || closed_ || buffer_.size() > 0) return;
    watching_ = true;
    stream_.async_read_some(
        buffer_.prepare(4096),
        [self = this->shared_from_this()](error_code ec, size_t n) {
          self->watching_ = false;
          if (self->lingering_) return ec ? self->CloseNow() : self->Drain();
          if (ec) {
            // Closed, or half-closed: work still queued for it is skipped,
            // as for a cancelled gRPC call; an answer made is still sent.
            self->peer_closed_ = true;
            if (self->awaiting_answer_ && self->exchange_ != nullptr) {
              *self->exchange_->client_gone = true;
            }
            if (!self->awaiting_answer_ && !self->writing_) self->CloseNow();
            return;
          }
          // Bytes of the next request: the client is there. They wait in
          // the buffer for the answer to be sent.
          self->buffer_.commit(n);
          if (!self->awaiting_answer_ && !self->writing_) self->ReadHeader();
        });
  }

  void OnAnswer() {
    if (closed_ || !awaiting_answer_ || exchange_ == nullptr) return;
    held_until_answered_.reset();
    std::optional<HttpResponse> answer;
    {
      absl::MutexLock lock(&exchange_->mu);
      if (!exchange_->answer.has_value()) return;
      answer = *exchange_->answer;
    }
    awaiting_answer_ = false;
    // A client seen to close its side may have only half-closed it: the
    // answer is sent all the same, and the connection closed after it.
    Write(std::move(*answer));
  }

  // An answer the server makes itself; the connection closes after it.
  void Refuse(const HttpRequest& head, const absl::Status& status, int http_status) {
    Write(server_->Refusal(head, status, http_status));
  }

  void Write(HttpResponse answer) {
    if (closed_) return;
    const bool head = exchange_ != nullptr && exchange_->request.head;
    const unsigned version = parser_.has_value() && parser_->is_header_done()
                                 ? parser_->get().version()
                                 : 11;
    // HTTP/1.1 to every client, as RFC 9110 asks of a server that speaks it.
    response_.emplace(static_cast<http::status>(answer.status), 11);
    http::response<http::string_body>& response = *response_;
    response.set(http::field::date, HttpDate());
    response.set(http::field::content_type, answer.content_type);
    // Browsers take every answer as the type it says it is.
    response.set("X-Content-Type-Options", "nosniff");
    if (exchange_ != nullptr && !exchange_->request.request_id.empty()) {
      response.set("X-Request-Id", exchange_->request.request_id);
    }
    // Once the port stops accepting, answers close their connections, so
    // keep-alive clients go to another replica rather than hold shutdown.
    close_after_ = peer_closed_ || !server_->accepting_ || !parser_.has_value() ||
                   !parser_->is_header_done() || !parser_->get().keep_alive() ||
                   !parser_->is_done();
    for (const auto& [name, value] : answer.headers) {
      if (absl::EqualsIgnoreCase(name, "Connection")) {
        if (absl::EqualsIgnoreCase(value, "close")) close_after_ = true;
        continue;
      }
      response.insert(name, value);
    }
    response.keep_alive(!close_after_);
    if (close_after_) {
      response.set(http::field::connection, "close");
    } else if (version == 10) {
      // An HTTP/1.0 client that asked to keep the connection is told so.
      response.set(http::field::connection, "keep-alive");
    }
    response.content_length(answer.body.size());
    if (!head) response.body() = std::move(answer.body);
    writing_ = true;
    Arm(server_->options_.idle_timeout);
    http::async_write(stream_, response,
                      [self = this->shared_from_this()](error_code ec, size_t) {
                        self->OnWritten(ec);
                      });
  }

  void OnWritten(error_code ec) {
    writing_ = false;
    response_.reset();
    // Closed while the write was under way (Shutdown()): nothing to go on.
    if (ec || closed_) return CloseNow();
    EndExchange(/*answered=*/true);
    if (close_after_) return Linger();
    if (peer_closed_) return CloseNow();
    // The watch still reads: its bytes start the next request.
    if (watching_) return Arm(server_->options_.idle_timeout);
    ReadHeader();
  }

  // Sends no more, and drops what the client still sends for a moment,
  // so that it reads the answer rather than a reset.
  void Linger() {
    if (closed_) return;
    lingering_ = true;
    Arm(kLingerTime);
    if constexpr (kTls) {
      // Its close_notify; a read in progress could not share the stream
      // with it.
      if (watching_) return CloseNow();
      stream_.async_shutdown([self = this->shared_from_this()](error_code) { self->CloseNow(); });
    } else {
      error_code ignored;
      Socket().shutdown(tcp::socket::shutdown_send, ignored);
      if (watching_) return;  // its end closes
      Drain();
    }
  }
  void Drain() {
    buffer_.clear();
    Socket().async_read_some(buffer_.prepare(4096),
                             [self = this->shared_from_this()](error_code ec, size_t) {
                               if (ec) return self->CloseNow();
                               self->Drain();
                             });
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    Disarm();
    error_code ignored;
    Socket().shutdown(tcp::socket::shutdown_both, ignored);
    Socket().close(ignored);
    EndExchange(/*answered=*/false);
    held_until_answered_.reset();
  }

  // The handler's Respond: answers the exchange with the handler's answer,
  // or 500 when the handler lets it go unanswered, which would otherwise
  // hold the connection until shutdown.
  class Responder {
   public:
    Responder(std::shared_ptr<HttpServer::Exchange> exchange, HttpResponse unanswered)
        : exchange_(std::move(exchange)), unanswered_(std::move(unanswered)) {}
    Responder(Responder&&) = default;
    Responder& operator=(Responder&&) = delete;
    ~Responder() {
      if (exchange_ != nullptr) HttpServer::Answer(exchange_, std::move(unanswered_));
    }
    void operator()(HttpResponse answer) && {
      HttpServer::Answer(std::exchange(exchange_, nullptr), std::move(answer));
    }

   private:
    std::shared_ptr<HttpServer::Exchange> exchange_;  // null once answered, or moved
    HttpResponse unanswered_;
  };

  // The exchange in hand is over: sent (`answered`), or cut.
  void EndExchange(bool answered) {
    std::shared_ptr<HttpServer::Exchange> exchange = std::move(exchange_);
    exchange_ = nullptr;
    awaiting_answer_ = false;
    if (exchange == nullptr) return;
    {
      absl::MutexLock lock(&exchange->mu);
      exchange->closed = true;
      if (!answered) *exchange->client_gone = true;
    }
    server_->ExchangeEnded(exchange);
  }

  HttpServer* const server_;
  const std::shared_ptr<asio::ssl::context> tls_;
  Stream stream_;
  asio::steady_timer timer_;
  uint64_t timer_generation_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<BudgetedBody>> parser_;
  std::optional<http::response<http::string_body>> response_;
  const std::string peer_;
  const std::string client_key_;
  std::shared_ptr<HttpServer::Exchange> exchange_;
  uint64_t announced_body_bytes_ = 0;
  bool body_too_large_ = false;
  bool awaiting_answer_ = false;  // the handler has the request
  bool watching_ = false;         // a read watches the client
  bool writing_ = false;
  bool peer_closed_ = false;
  bool close_after_ = false;
  bool lingering_ = false;  // answered with a close: only drop what comes
  bool closed_ = false;
  // Set while the handler has the request; see Dispatch().
  std::shared_ptr<HttpConnection> held_until_answered_;
};

struct HttpServer::Listener {
  explicit Listener(int threads)
      : io(threads),
        work(io.get_executor()),
        acceptor(asio::make_strand(io)),
        retry(acceptor.get_executor()) {}
  // Accepts connections until StopAccepting(); Admit() serves each.
  void Accept(HttpServer* server);
  void Admit(HttpServer* server, tcp::socket socket);

  // Runs the handlers; one that throws (out of memory, say) is logged and
  // the thread goes on, rather than ending the process.
  void Run();

  asio::io_context io;
  // Keeps the threads running while no connection has work in hand (one
  // held while its handler works has none); Shutdown() lets go of it once
  // every connection is closed, so that the threads end with nothing left
  // queued: a handler destroyed with the io_context would destroy its
  // connection's strand after the strand service.
  asio::executor_work_guard<asio::io_context::executor_type> work;
  tcp::acceptor acceptor;
  asio::steady_timer retry;  // the next accept after a failed one
  std::vector<std::thread> threads;
};

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      listener_(std::make_unique<Listener>(std::max(options_.threads, 1))) {}

HttpResponse HttpServer::Refusal(const HttpRequest& head, const absl::Status& status,
                                 int http_status) const {
  HttpResponse answer;
  if (options_.error_body) {
    answer = options_.error_body(head, status);
  } else {
    std::string code = absl::StatusCodeToString(status.code());
    for (char& c : code) c = c == ' ' ? '_' : absl::ascii_toupper(c);
    answer.body =
        absl::StrCat(R"({"code":")", code, R"(","message":")", status.message(), R"("})");
  }
  answer.status = http_status;
  if (status.code() == absl::StatusCode::kUnavailable) {
    answer.headers.emplace_back("Retry-After", "1");
  }
  answer.headers.emplace_back("Connection", "close");
  return answer;
}

void HttpServer::Answer(const std::shared_ptr<Exchange>& exchange, HttpResponse answer) {
  absl::MutexLock lock(&exchange->mu);
  // Gone, or answered already (by Shutdown() or after a throw).
  if (exchange->closed || exchange->answer.has_value()) return;
  exchange->answer = std::move(answer);
  exchange->connection->Deliver();
}

void HttpServer::ExchangeBegan(const std::shared_ptr<Exchange>& exchange) {
  absl::MutexLock lock(&mu_);
  open_.insert(exchange);
}

void HttpServer::ExchangeEnded(const std::shared_ptr<Exchange>& exchange) {
  absl::MutexLock lock(&mu_);
  if (open_.erase(exchange) == 0) return;
  buffered_body_bytes_ -= exchange->reserved_body_bytes;
}

bool HttpServer::Dispatching(Exchange& exchange) {
  // Under both locks, in Shutdown()'s order: it either sees the exchange
  // dispatched (and answers it 503) or has set closing_ before.
  absl::MutexLock lock(&mu_);
  if (closing_) return false;
  absl::MutexLock exchange_lock(&exchange.mu);
  exchange.dispatched = true;
  return true;
}

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

int HttpServer::requests_in_flight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(open_.size());
}

void HttpServer::ConnectionEnded(Connection* connection, const std::string& client_key) {
  absl::MutexLock lock(&connections_mu_);
  connections_.erase(connection);
  if (auto it = per_client_.find(client_key); it != per_client_.end() && --it->second == 0) {
    per_client_.erase(it);
  }
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
    server->tls_stamp_ = TlsFilesStamp(*o.tls);
    auto material = ReadTlsFiles(*o.tls);
    if (!material.ok()) return material.status();
    auto context = MakeTlsContext(*material);
    if (!context.ok()) return context.status();
    server->tls_context_ = std::move(*context);
  }
  bool v6 = false;
  auto fd = Listen(host, port, &server->port_, &v6);
  if (!fd.ok()) return fd.status();
  error_code ec;
  Listener& listener = *server->listener_;
  listener.acceptor.assign(v6 ? tcp::v6() : tcp::v4(), *fd, ec);
  if (ec) {
    close(*fd);
    return absl::UnavailableError(absl::StrCat("cannot start the HTTP listener on ",
                                               server->options_.address, ": ", ec.message()));
  }
  listener.Accept(server.get());
  for (int i = 0; i < std::max(o.threads, 1); ++i) {
    listener.threads.emplace_back([&listener] { listener.Run(); });
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

void HttpServer::Listener::Run() {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("HTTP port: a connection failed: {}", e.what());
    } catch (...) {
      spdlog::error("HTTP port: a connection failed");
    }
  }
}

void HttpServer::Listener::Accept(HttpServer* server) {
  acceptor.async_accept(asio::make_strand(io), [this, server](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !server->accepting_ || !acceptor.is_open()) {
      return;
    }
    if (!ec) {
      try {
        Admit(server, std::move(socket));
      } catch (const std::exception& e) {  // the accept loop goes on
        spdlog::error("HTTP port: cannot serve a connection: {}", e.what());
      }
      return Accept(server);
    }
    // Out of descriptors (EMFILE) the connection stays in the backlog and
    // the next accept fails at once: wait rather than spin a thread.
    spdlog::warn("HTTP port: cannot accept a connection: {}; trying again", ec.message());
    retry.expires_after(std::chrono::milliseconds(100));
    retry.async_wait([this, server](error_code) { Accept(server); });
  });
}

void HttpServer::Listener::Admit(HttpServer* server, tcp::socket socket) {
  error_code ec;
  const tcp::endpoint remote = socket.remote_endpoint(ec);
  if (ec) return;  // gone already
  const std::string client_key = remote.address().to_string();
  std::shared_ptr<asio::ssl::context> tls;
  {
    absl::MutexLock lock(&server->tls_mu_);
    tls = server->tls_context_;
  }
  std::shared_ptr<Connection> connection;
  std::function<void(std::optional<HttpResponse>)> start;
  if (tls != nullptr) {
    auto secure = std::make_shared<HttpConnection<asio::ssl::stream<tcp::socket>>>(
        server, tls, asio::ssl::stream<tcp::socket>(std::move(socket), *tls), PeerName(remote),
        client_key);
    connection = secure;
    start = [secure](std::optional<HttpResponse> refusal) { secure->Start(std::move(refusal)); };
  } else {
    auto plain = std::make_shared<HttpConnection<tcp::socket>>(server, nullptr, std::move(socket),
                                                               PeerName(remote), client_key);
    connection = plain;
    start = [plain](std::optional<HttpResponse> refusal) { plain->Start(std::move(refusal)); };
  }
  bool over_cap = false;
  {
    absl::MutexLock lock(&server->connections_mu_);
    unsigned& from_client = server->per_client_[client_key];
    over_cap = server->connections_.size() >= server->options_.max_connections ||
               (server->options_.max_connections_per_client > 0 &&
                from_client >= server->options_.max_connections_per_client);
    ++from_client;
    server->connections_.emplace(connection.get(), connection);
  }
  // Over a cap the connection is answered 503 at once.
  std::optional<HttpResponse> refusal;
  if (over_cap) refusal = server->Refusal(HttpRequest{}, TooManyConnections(), 503);
  start(std::move(refusal));
}

void HttpServer::RefreshTls() {
  const std::string stamp = TlsFilesStamp(*options_.tls);
  if (stamp == tls_stamp_ || stamp == tls_refused_stamp_ || !accepting_) return;
  absl::StatusOr<std::shared_ptr<asio::ssl::context>> context =
      absl::FailedPreconditionError("unread");
  auto material = ReadTlsFiles(*options_.tls);
  context = material.ok() ? MakeTlsContext(*material) : material.status();
  if (!context.ok()) {
    // Half-written files (a key before its certificate) land here too; the
    // next look after they settle takes them.
    tls_refused_stamp_ = stamp;
    spdlog::error("HTTP port: {}; the certificate in force stays",
                  std::string(context.status().message()));
    return;
  }
  {
    // Open connections keep the context they began with.
    absl::MutexLock lock(&tls_mu_);
    tls_context_ = std::move(*context);
  }
  tls_stamp_ = stamp;
  tls_refused_stamp_.clear();
  spdlog::info("HTTP port: TLS files changed; new connections get the new certificate");
}

void HttpServer::StopAccepting() {
  if (!accepting_.exchange(false)) return;
  if (listener_->threads.empty()) {  // never started
    error_code ignored;
    listener_->acceptor.close(ignored);
    return;
  }
  auto closed = std::make_shared<absl::Notification>();
  asio::post(listener_->acceptor.get_executor(), [this, closed] {
    error_code ignored;
    listener_->acceptor.close(ignored);
    listener_->retry.cancel();
    closed->Notify();
  });
  // Listener threads are never blocked for long (handlers must not block).
  closed->WaitForNotificationWithTimeout(absl::Seconds(5));
}

void HttpServer::Shutdown(absl::Time deadline) {
  if (stopped_.exchange(true)) return;
  stop_tls_watch_.Notify();
  if (tls_watcher_.joinable()) tls_watcher_.join();
  StopAccepting();
  std::vector<std::shared_ptr<Exchange>> waiting;
  {
    absl::MutexLock lock(&mu_);
    auto answered = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return open_.empty(); };
    mu_.AwaitWithDeadline(absl::Condition(&answered), deadline);
    // From here a body that completes is answered 503 without its handler.
    closing_ = true;
    waiting.assign(open_.begin(), open_.end());
  }
  // Each request still with its handler is answered 503 now (its later
  // answer is dropped).
  for (const std::shared_ptr<Exchange>& exchange : waiting) {
    bool dispatched = false;
    {
      absl::MutexLock lock(&exchange->mu);
      dispatched = exchange->dispatched;
    }
    if (dispatched) Answer(exchange, Refusal(exchange->request, ShuttingDown(), 503));
  }
  waiting.clear();
  {
    absl::MutexLock lock(&mu_);
    // Bounded: a client that does not read its answer, or sends its body
    // slower than this, is cut.
    auto answered = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return open_.empty(); };
    mu_.AwaitWithTimeout(absl::Condition(&answered), kLastAnswersTime);
    // What is left is cut: no answer reaches its connection any more.
    for (const std::shared_ptr<Exchange>& exchange : open_) {
      absl::MutexLock exchange_lock(&exchange->mu);
      exchange->closed = true;
    }
  }
  std::vector<std::shared_ptr<Connection>> open;
  {
    absl::MutexLock lock(&connections_mu_);
    for (const auto& [raw, weak] : connections_) {
      if (auto connection = weak.lock()) open.push_back(std::move(connection));
    }
  }
  for (const std::shared_ptr<Connection>& connection : open) connection->Close();
  open.clear();
  {
    absl::MutexLock lock(&connections_mu_);
    auto all_closed = [this]() ABSL_SHARED_LOCKS_REQUIRED(connections_mu_) {
      return connections_.empty();
    };
    if (!connections_mu_.AwaitWithTimeout(absl::Condition(&all_closed), absl::Seconds(2))) {
      // Not expected: every connection was asked to close, and closing
      // ends all it waits for.
      spdlog::error("HTTP port: {} connections did not close; stopping",
                    connections_.size());
      listener_->io.stop();
    }
  }
  // The threads end once what is still queued (closed sockets' handlers)
  // has run.
  listener_->work.reset();
  for (std::thread& thread : listener_->threads) thread.join();
  listener_->threads.clear();
}

HttpServer::~HttpServer() { Shutdown(absl::Now()); }

}  // namespace seqserve
