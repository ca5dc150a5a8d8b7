// seqserve: serves the Sequential models of a model repository over gRPC
// and HTTP.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <string>
#include <tuple>
#include <vector>
#include <google/protobuf/stubs/logging.h>
#include <pthread.h>
#include <sched.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "auth/tls_files.h"
#include "auth/token_authenticator.h"
#include "observability/log_format.h"
#include "server/model_server.h"
#include "spdlog/spdlog.h"
#include "cmd/flag_help.h"

ABSL_FLAG(int, port, 8500, "gRPC port to listen on (0 picks a free one)");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on");
ABSL_FLAG(int, http_port, 8501,
          "HTTP port for REST, /metrics, /healthz and /readyz (0 picks a free one, -1: none)");
ABSL_FLAG(int, http_threads, 2, "Threads that read HTTP requests and write answers");
ABSL_FLAG(double, http_idle_timeout_seconds, 30,
          "Close an HTTP connection that makes no progress for this long");
ABSL_FLAG(uint32_t, http_max_connections, 1024, "Most open HTTP connections");
ABSL_FLAG(uint32_t, http_max_connections_per_client, 0,
          "Most open HTTP connections from one client address; 0: no cap of its own (a "
          "proxy or sidecar connects from one address for all its clients)");
ABSL_FLAG(bool, metrics, true, "Record Prometheus metrics, served at GET /metrics");
ABSL_FLAG(bool, http_console, true, "Serve the web console at GET / on the HTTP port");
ABSL_FLAG(std::string, access_log, "",
          "Write one JSON line per call to this file ('-': standard output); "
          "SIGHUP reopens it after rotation");
ABSL_FLAG(std::string, model_repository, "models",
          "Model repository: <model>/<version>/model.onnx|model.textproto");
ABSL_FLAG(uint64_t, max_model_bytes, uint64_t{1} << 30,
          "Largest model version: its graph and external data files together, by "
          "size on disk, checked before reading");
ABSL_FLAG(double, poll_seconds, 5,
          "Seconds between looks for new, replaced and removed models; 0 loads once");
ABSL_FLAG(std::string, model_control_mode, "poll",
          "Who changes what is served: poll (the repository, every --poll_seconds), none "
          "(the repository at start only) or explicit (load and unload calls of the API, "
          "and the models of --load_model at start)");
ABSL_FLAG(std::vector<std::string>, load_model, {},
          "With --model_control_mode=explicit: models to load at start, comma-separated; "
          "'*' loads every model");
ABSL_FLAG(bool, allow_version_labels_for_unavailable_models, false,
          "Let a load call's config give a version label to a version that is not "
          "available yet (loading, failed or not selected)");
ABSL_FLAG(uint32_t, max_request_rows, 4096,
          "Most rows in one Classify request, unless a model's config sets its own; an "
          "Explain request counts the rows it evaluates (rows x steps, or x 2^features)");
ABSL_FLAG(int, max_message_bytes, 16 * 1024 * 1024,
          "Largest request or response message in bytes");
ABSL_FLAG(uint64_t, max_buffered_request_bytes, uint64_t{256} << 20,
          "Memory for requests received and not yet answered, all connections together, "
          "per port: an HTTP body past it is answered 503; gRPC's transport takes it as "
          "its memory quota (a loose bound) and past it resets calls RESOURCE_EXHAUSTED "
          "or closes connections (both retryable). 0: no limit; below twice "
          "--max_message_bytes it is raised to that");
ABSL_FLAG(double, keepalive_seconds, 60, "Keepalive ping interval on idle connections");
ABSL_FLAG(double, keepalive_timeout_seconds, 20, "How long to wait for a keepalive ack");
ABSL_FLAG(double, drain_seconds, 5,
          "On SIGTERM/SIGINT, keep answering at most this long with health NOT_SERVING, "
          "so load balancers stop sending calls before the port closes");
ABSL_FLAG(double, drain_quiet_seconds, 1,
          "End the drain early once no call has arrived for this long, as load balancers "
          "have stopped sending: at least their check interval. Equal to --drain_seconds "
          "for the full drain, 0 for none");
ABSL_FLAG(double, shutdown_grace_seconds, 10,
          "After draining, how long calls in flight may take before they are cancelled");
ABSL_FLAG(int, inference_threads, 0, "Threads running forward passes; 0: one per core");
ABSL_FLAG(double, memory_trim_seconds, 1,
          "How often to look for memory a burst of large calls freed and give it back to the "
          "system; 0: never");
ABSL_FLAG(bool, sched_batch, false,
          "Run every thread under Linux's SCHED_BATCH policy, for cores the server has to "
          "itself (taskset, whole CPUs of a Kubernetes pod): arriving calls then stop "
          "preempting forward passes. Beside other busy processes a call may wait a "
          "scheduler tick");
ABSL_FLAG(uint32_t, max_batch_rows, 256,
          "Dynamic batching: most rows stacked into one forward pass (1: off)");
ABSL_FLAG(uint32_t, max_queue_delay_micros, 0,
          "Dynamic batching: how long a pass may wait for more rows while the "
          "server is busy (never when idle)");
ABSL_FLAG(uint32_t, max_queued_rows, 65536,
          "Rows allowed to wait per model version; beyond it RESOURCE_EXHAUSTED");
ABSL_FLAG(uint32_t, shadow_max_queued_calls, 64,
          "Copies of served calls that may wait for models' shadow versions; beyond "
          "it a copy is dropped (seqserve_shadow_dropped_total)");
ABSL_FLAG(uint32_t, shadow_max_queued_rows, 8192,
          "Rows those copies may hold together; beyond it a copy is dropped");
ABSL_FLAG(uint64_t, max_request_memory_bytes, uint64_t{256} << 20,
          "Most activation memory one Classify may need (rows x the model's "
          "widest layer x 4 bytes; an Explain's rows as it evaluates them); beyond it "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate (then its chain) of both ports; with --tls_key_file they "
          "speak TLS only");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CAs: clients must show a certificate signed by one of them (mutual TLS)");
ABSL_FLAG(double, tls_refresh_seconds, 60,
          "How often the TLS files are re-read; new connections get what changed");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "Bearer tokens, one per line ('name:token' names it in the access log); "
          "every call but health then needs 'authorization: Bearer <token>'");
ABSL_FLAG(double, auth_tokens_refresh_seconds, 10,
          "How often --auth_tokens_file is checked for a change");
ABSL_FLAG(std::string, admin_tokens_file, "",
          "Bearer tokens of admins, as --auth_tokens_file: loading and unloading models "
          "needs one of them once tokens are on (they may call everything else too)");
ABSL_FLAG(uint32_t, max_concurrent_streams, 0,
          "gRPC: most calls at once on one connection (0: no limit)");
ABSL_FLAG(double, max_connection_age_seconds, 0,
          "gRPC: close connections this old (GOAWAY) so clients rebalance (0: never)");
ABSL_FLAG(double, max_connection_age_grace_seconds, 30,
          "gRPC: how long calls on a connection closed for its age may still take");
ABSL_FLAG(double, max_connection_idle_seconds, 0,
          "gRPC: close connections without calls for this long (0: never)");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug, info, warn, error, critical or off; info logs every model event "
          "(loaded, reloaded, unloaded, failed, config applied), debug also every call");
ABSL_FLAG(std::string, log_format, "text",
          "text, or json: one JSON object per line (time in UTC, level, message)");

namespace seqserve {
namespace {

constexpr const char* kLogLevels[] = {"trace", "debug", "info", "warn",
                                      "error", "critical", "off"};
constexpr const char* kLogFormats[] = {"text", "json"};
constexpr const char* kModelControlModes[] = {"poll", "none", "explicit"};

// Collects every flag that is out of its range, so one start names them all.
class FlagChecker {
 public:
  template <typename T>
  void Range(const char* flag, T value, T low, T high) {
    if (!(value >= low && value <= high)) {  // also refuses NaN
      errors_.push_back(absl::StrCat("--", flag, "=", value, " is out of range: allowed ",
                                     low, " to ", high));
    }
  }
  void OneOf(const char* flag, const std::string& value,
             absl::Span<const char* const> allowed) {
    for (const char* choice : allowed) {
      if (value == choice) return;
    }
    errors_.push_back(absl::StrCat("--", flag, "=", value, " is not one of: ",
                                   absl::StrJoin(allowed, ", ")));
  }
  void NotEmpty(const char* flag, const std::string& value) {
    if (value.empty()) errors_.push_back(absl::StrCat("--", flag, " must not be empty"));
  }
  void Fail(std::string error) { errors_.push_back(std::move(error)); }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

std::vector<std::string> CheckFlags() {
  constexpr double kDay = 24 * 3600;
  FlagChecker check;
  check.Range("port", absl::GetFlag(FLAGS_port), 0, 65535);
  check.Range("http_port", absl::GetFlag(FLAGS_http_port), -1, 65535);
  check.Range("http_threads", absl::GetFlag(FLAGS_http_threads), 1, 64);
  check.Range("http_idle_timeout_seconds", absl::GetFlag(FLAGS_http_idle_timeout_seconds),
              1.0, 3600.0);
  check.Range("http_max_connections", absl::GetFlag(FLAGS_http_max_connections), 1u,
              1u << 20);
  check.Range("http_max_connections_per_client",
              absl::GetFlag(FLAGS_http_max_connections_per_client), 0u, 1u << 20);
  check.NotEmpty("host", absl::GetFlag(FLAGS_host));
  check.NotEmpty("model_repository", absl::GetFlag(FLAGS_model_repository));
  // 0 loads once; a positive interval below 0.1 s would rescan without end.
  if (absl::GetFlag(FLAGS_poll_seconds) != 0.0) {
    check.Range("poll_seconds", absl::GetFlag(FLAGS_poll_seconds), 0.1, kDay);
  }
  check.OneOf("model_control_mode", absl::GetFlag(FLAGS_model_control_mode),
              kModelControlModes);
  if (!absl::GetFlag(FLAGS_load_model).empty() &&
      absl::GetFlag(FLAGS_model_control_mode) != "explicit") {
    check.Fail("--load_model needs --model_control_mode=explicit (the other modes load "
               "every model)");
  }
  check.Range("max_request_rows", absl::GetFlag(FLAGS_max_request_rows), 1u, 1u << 24);
  check.Range("max_model_bytes", absl::GetFlag(FLAGS_max_model_bytes), uint64_t{1} << 10,
              uint64_t{1} << 40);
  check.Range("max_request_memory_bytes", absl::GetFlag(FLAGS_max_request_memory_bytes),
              uint64_t{1} << 20, uint64_t{1} << 40);
  // Below a few KiB not even a health check fits; gRPC's own cap is 2 GiB.
  check.Range("max_message_bytes", absl::GetFlag(FLAGS_max_message_bytes), 4096,
              std::numeric_limits<int>::max());
  check.Range("max_buffered_request_bytes", absl::GetFlag(FLAGS_max_buffered_request_bytes),
              uint64_t{0}, uint64_t{1} << 40);
  check.Range("keepalive_seconds", absl::GetFlag(FLAGS_keepalive_seconds), 1.0, kDay);
  check.Range("keepalive_timeout_seconds", absl::GetFlag(FLAGS_keepalive_timeout_seconds),
              1.0, 3600.0);
  check.Range("drain_seconds", absl::GetFlag(FLAGS_drain_seconds), 0.0, 3600.0);
  check.Range("drain_quiet_seconds", absl::GetFlag(FLAGS_drain_quiet_seconds), 0.0, 3600.0);
  check.Range("shutdown_grace_seconds", absl::GetFlag(FLAGS_shutdown_grace_seconds), 0.0,
              3600.0);
  check.Range("inference_threads", absl::GetFlag(FLAGS_inference_threads), 0, 256);
  check.Range("memory_trim_seconds", absl::GetFlag(FLAGS_memory_trim_seconds), 0.0, 3600.0);
  check.Range("max_batch_rows", absl::GetFlag(FLAGS_max_batch_rows), 1u, 1u << 20);
  check.Range("max_queue_delay_micros", absl::GetFlag(FLAGS_max_queue_delay_micros), 0u,
              10'000'000u);
  check.Range("max_queued_rows", absl::GetFlag(FLAGS_max_queued_rows), 1u, 1u << 30);
  check.Range("shadow_max_queued_calls", absl::GetFlag(FLAGS_shadow_max_queued_calls), 1u,
              1u << 20);
  check.Range("shadow_max_queued_rows", absl::GetFlag(FLAGS_shadow_max_queued_rows), 1u,
              1u << 30);
  check.OneOf("log_level", absl::GetFlag(FLAGS_log_level), kLogLevels);
  check.OneOf("log_format", absl::GetFlag(FLAGS_log_format), kLogFormats);
  check.Range("tls_refresh_seconds", absl::GetFlag(FLAGS_tls_refresh_seconds), 1.0, kDay);
  check.Range("auth_tokens_refresh_seconds", absl::GetFlag(FLAGS_auth_tokens_refresh_seconds),
              0.1, kDay);
  check.Range("max_concurrent_streams", absl::GetFlag(FLAGS_max_concurrent_streams), 0u,
              1u << 20);
  // gRPC takes these in int milliseconds: at most about 24 days.
  check.Range("max_connection_age_seconds", absl::GetFlag(FLAGS_max_connection_age_seconds),
              0.0, 20 * kDay);
  check.Range("max_connection_age_grace_seconds",
              absl::GetFlag(FLAGS_max_connection_age_grace_seconds), 0.0, 20 * kDay);
  check.Range("max_connection_idle_seconds", absl::GetFlag(FLAGS_max_connection_idle_seconds),
              0.0, 20 * kDay);
  const bool has_cert = !absl::GetFlag(FLAGS_tls_cert_file).empty();
  const bool has_key = !absl::GetFlag(FLAGS_tls_key_file).empty();
  if (has_cert != has_key) {
    check.Fail("--tls_cert_file and --tls_key_file go together: give both or neither");
  }
  if (!has_cert && !absl::GetFlag(FLAGS_tls_client_ca_file).empty()) {
    check.Fail("--tls_client_ca_file needs --tls_cert_file and --tls_key_file");
  }
  return check.errors();
}

// Protobuf logs what it finds wrong in a client's bytes (invalid UTF-8 in a
// string, say) at error level on stderr: one bad client could flood the log.
// The caller already gets INVALID_ARGUMENT, so these go to debug.
void LogProtobufMessage(google::protobuf::LogLevel level, const char* file, int line,
                        const std::string& message) {
  if (level == google::protobuf::LOGLEVEL_FATAL) {
    spdlog::critical("protobuf {}:{}: {}", file, line, message);
  } else {
    spdlog::debug("protobuf {}:{}: {}", file, line, message);
  }
}

constexpr char kUsage[] =
    "Serves Sequential classifiers over gRPC and HTTP.\n"
    "  seqserve --model_repository=models --port=8500 --http_port=8501\n"
    "Flags take --name=value or --name value; --helpfull lists every linked-in flag.";

// What --help shows, by topic.
std::vector<FlagGroup> FlagGroups() {
  return {
      {"serving", {"log_level", "log_format", "inference_threads", "sched_batch",
                   "drain_seconds", "drain_quiet_seconds", "shutdown_grace_seconds",
                   "memory_trim_seconds", "access_log", "metrics"}},
      {"repository", {"model_repository", "poll_seconds", "max_model_bytes",
                      "model_control_mode", "load_model",
                      "allow_version_labels_for_unavailable_models"}},
      {"batching (per model version; a config's batching block overrides them)",
       {"max_batch_rows", "max_queue_delay_micros", "max_queued_rows"}},
      {"limits", {"max_request_rows", "max_request_memory_bytes", "max_message_bytes",
                  "max_buffered_request_bytes", "max_concurrent_streams",
                  "shadow_max_queued_calls", "shadow_max_queued_rows"}},
      {"network (gRPC)", {"host", "port", "keepalive_seconds", "keepalive_timeout_seconds",
                          "max_connection_age_seconds", "max_connection_age_grace_seconds",
                          "max_connection_idle_seconds"}},
      {"security", {"tls_cert_file", "tls_key_file", "tls_client_ca_file",
                    "tls_refresh_seconds", "auth_tokens_file", "auth_tokens_refresh_seconds",
                    "admin_tokens_file"}},
      {"HTTP", {"http_port", "http_threads", "http_idle_timeout_seconds",
                "http_max_connections", "http_max_connections_per_client", "http_console"}},
  };
}

int Main(int argc, char** argv) {
  if (HelpRequested(argc, argv)) {
    std::cout << GroupedFlagHelp(kUsage, FlagGroups(), "cmd/seqserve.cc");
    return 0;
  }
  // Debian's Abseil is built with Mutex deadlock detection on: it records
  // every lock order in a graph, measured at 4-7% of the server's CPU under
  // load. The test suites keep it; the server binary does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(kUsage);
  absl::ParseCommandLine(argc, argv);
  if (const std::vector<std::string> errors = CheckFlags(); !errors.empty()) {
    for (const std::string& error : errors) std::cerr << "seqserve: " << error << "\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));
  if (absl::Status format = SetLogFormat(absl::GetFlag(FLAGS_log_format)); !format.ok()) {
    std::cerr << "seqserve: " << format.message() << "\n";
    return 2;
  }
  google::protobuf::SetLogHandler(&LogProtobufMessage);
  if (absl::GetFlag(FLAGS_sched_batch)) {
    // Set on the only thread there is yet: every thread started later
    // inherits it. Woken SCHED_BATCH threads do not preempt running ones.
    const sched_param priority{};  // SCHED_BATCH takes priority 0
    if (sched_setscheduler(0, SCHED_BATCH, &priority) != 0) {
      spdlog::critical("--sched_batch: cannot set SCHED_BATCH: {}", std::strerror(errno));
      return 1;
    }
    spdlog::info("threads run under SCHED_BATCH (--sched_batch)");
  }

  // Signals go to one waiting thread: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ModelServer::Options options;
  options.address =
      absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port));
  options.model_repository = absl::GetFlag(FLAGS_model_repository);
  options.poll_interval = absl::Seconds(absl::GetFlag(FLAGS_poll_seconds));
  options.model_control = *ParseModelControlMode(absl::GetFlag(FLAGS_model_control_mode));
  options.load_models = absl::GetFlag(FLAGS_load_model);
  options.allow_labels_for_unavailable =
      absl::GetFlag(FLAGS_allow_version_labels_for_unavailable_models);
  options.max_model_bytes = absl::GetFlag(FLAGS_max_model_bytes);
  options.max_request_rows = absl::GetFlag(FLAGS_max_request_rows);
  options.max_request_memory_bytes = absl::GetFlag(FLAGS_max_request_memory_bytes);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_buffered_request_bytes = absl::GetFlag(FLAGS_max_buffered_request_bytes);
  // Below twice the largest message, a request of that size might never
  // arrive: gRPC counts its read buffers against the quota too. Said only
  // when the value is not the default, which --max_message_bytes may
  // simply have outgrown.
  const uint64_t floor = 2 * static_cast<uint64_t>(options.max_message_bytes);
  if (options.max_buffered_request_bytes != 0 && options.max_buffered_request_bytes < floor) {
    if (absl::StrCat(options.max_buffered_request_bytes) !=
        absl::GetFlagReflectionHandle(FLAGS_max_buffered_request_bytes).DefaultValue()) {
      spdlog::warn("--max_buffered_request_bytes={} is below twice --max_message_bytes={}: "
                   "raised to {}",
                   options.max_buffered_request_bytes, options.max_message_bytes, floor);
    }
    options.max_buffered_request_bytes = floor;
  }
  options.keepalive_time = absl::Seconds(absl::GetFlag(FLAGS_keepalive_seconds));
  options.keepalive_timeout =
      absl::Seconds(absl::GetFlag(FLAGS_keepalive_timeout_seconds));
  options.inference.threads = absl::GetFlag(FLAGS_inference_threads);
  options.inference.limits.max_batch_rows = absl::GetFlag(FLAGS_max_batch_rows);
  options.inference.limits.max_queue_delay =
      absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_micros));
  options.inference.limits.max_queued_rows = absl::GetFlag(FLAGS_max_queued_rows);
  options.shadow.max_pending_calls = absl::GetFlag(FLAGS_shadow_max_queued_calls);
  options.shadow.max_pending_rows = absl::GetFlag(FLAGS_shadow_max_queued_rows);
  if (absl::GetFlag(FLAGS_http_port) >= 0) {
    options.http_address =
        absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_http_port));
  }
  options.http.threads = absl::GetFlag(FLAGS_http_threads);
  options.http.idle_timeout = absl::Seconds(absl::GetFlag(FLAGS_http_idle_timeout_seconds));
  options.http.max_connections = absl::GetFlag(FLAGS_http_max_connections);
  options.http.max_connections_per_client =
      absl::GetFlag(FLAGS_http_max_connections_per_client);
  options.metrics = absl::GetFlag(FLAGS_metrics);
  options.http_console = absl::GetFlag(FLAGS_http_console);
  options.access_log = absl::GetFlag(FLAGS_access_log);
  options.memory_trim_interval = absl::Seconds(absl::GetFlag(FLAGS_memory_trim_seconds));
  options.max_concurrent_streams = static_cast<int>(absl::GetFlag(FLAGS_max_concurrent_streams));
  if (const double age = absl::GetFlag(FLAGS_max_connection_age_seconds); age > 0) {
    options.max_connection_age = absl::Seconds(age);
    options.max_connection_age_grace =
        absl::Seconds(absl::GetFlag(FLAGS_max_connection_age_grace_seconds));
  }
  if (const double idle = absl::GetFlag(FLAGS_max_connection_idle_seconds); idle > 0) {
    options.max_connection_idle = absl::Seconds(idle);
  }
  // A TLS file or tokens file that cannot be used stops the start, named.
  if (!absl::GetFlag(FLAGS_tls_cert_file).empty()) {
    TlsFiles tls;
    tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
    tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
    tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
    tls.refresh_interval = absl::Seconds(absl::GetFlag(FLAGS_tls_refresh_seconds));
    auto credentials = GrpcServerCredentials(tls);
    if (!credentials.ok()) {
      spdlog::critical("{}", credentials.status().ToString());
      return 1;
    }
    options.credentials = std::move(*credentials);
    options.http.tls = tls;
    spdlog::info("TLS on with {}{}", tls.cert_file,
                 tls.client_ca_file.empty()
                     ? std::string()
                     : absl::StrCat("; client certificates required, CAs in ",
                                    tls.client_ca_file));
  }
  // Callers' tokens and admins' tokens, each file watched for changes.
  const auto start_tokens = [](const std::string& file) {
    TokenAuthenticator::Options token_options;
    token_options.tokens_file = file;
    token_options.refresh_interval =
        absl::Seconds(absl::GetFlag(FLAGS_auth_tokens_refresh_seconds));
    return TokenAuthenticator::Start(token_options);
  };
  std::unique_ptr<TokenAuthenticator> tokens;
  std::unique_ptr<TokenAuthenticator> admin_tokens;
  for (auto [file, started, used] :
       {std::tuple{absl::GetFlag(FLAGS_auth_tokens_file), &tokens, &options.authenticator},
        std::tuple{absl::GetFlag(FLAGS_admin_tokens_file), &admin_tokens,
                   &options.admin_authenticator}}) {
    if (file.empty()) continue;
    auto authenticator = start_tokens(file);
    if (!authenticator.ok()) {
      spdlog::critical("{}", authenticator.status().ToString());
      return 1;
    }
    *started = std::move(*authenticator);
    *used = started->get();
  }
  auto server = ModelServer::Start(options);
  if (!server.ok()) {
    spdlog::critical("{}", server.status().ToString());
    return 1;
  }
  const std::string http =
      (*server)->http_port() == 0
          ? std::string(", no HTTP port")
          : absl::StrCat(", HTTP on ", absl::GetFlag(FLAGS_host), ":", (*server)->http_port());
  spdlog::info("seqserve listening on {}:{}{} (model repository {})",
               absl::GetFlag(FLAGS_host), (*server)->port(), http, options.model_repository);

  int signal = 0;
  // SIGHUP: the access log was rotated; anything else stops the server.
  while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
    (*server)->ReopenAccessLog();
  }
  spdlog::info("{} received: draining", strsignal(signal));
  (*server)->Drain(absl::Seconds(absl::GetFlag(FLAGS_drain_seconds)),
                   absl::Seconds(absl::GetFlag(FLAGS_drain_quiet_seconds)));
  spdlog::info("closing the port; {} calls in flight", (*server)->calls_in_flight());
  (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds)));
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace seqserve

int main(int argc, char** argv) { return seqserve::Main(argc, argv); }
