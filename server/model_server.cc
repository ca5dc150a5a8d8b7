#include "server/model_server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "auth/tls_files.h"
#include "auth/token_authenticator.h"
#include "grpc/health/v1/health.pb.h"
#include "server/listen_check.h"
#include "spdlog/spdlog.h"

namespace seqserve {

ModelServer::ModelServer(Options options) : options_(std::move(options)) {}

namespace {

int AvailableVersions(const RepositorySnapshot& snapshot) {
  int available = 0;
  for (const auto& [name, record] : snapshot.models) {
    for (const auto& [version, entry] : record.versions) {
      if (entry.served) ++available;
    }
  }
  return available;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelServer>> ModelServer::Start(Options options) {
  // A missing repository is a mistake to report now, not an empty server
  // that looks healthy.
  if (auto scan = ScanRepository(options.model_repository); !scan.ok()) {
    return absl::FailedPreconditionError(scan.status().message());
  }
  std::unique_ptr<ModelServer> server(new ModelServer(std::move(options)));
  const Options& o = server->options_;
  ModelManager::Options models;
  models.load.max_model_bytes = o.max_model_bytes;
  models.control = o.model_control;
  models.startup_models = o.load_models;
  models.allow_labels_for_unavailable = o.allow_labels_for_unavailable;
  if (o.metrics) {
    server->metrics_ = std::make_unique<ServingMetrics>();
    server->observers_.Add(server->metrics_.get());
    models.on_load = [metrics = server->metrics_.get()](const ModelLoadEvent& load) {
      metrics->OnModelLoad(load);
    };
  }
  if (!o.access_log.empty()) {
    auto log = AccessLog::Open(o.access_log);
    if (!log.ok()) return log.status();
    server->access_log_ = std::move(*log);
    server->observers_.Add(server->access_log_.get());
  }
  server->observers_.Add(&server->call_log_);
  server->observers_.Add(o.observer);
  server->capture_ = std::make_unique<PayloadCapture>(o.capture);
  server->payload_observers_.Add(server->capture_.get());
  server->payload_observers_.Add(o.payload_observer);
  if (o.metrics) {
    server->drift_ = std::make_unique<DriftMonitor>();
    server->payload_observers_.Add(server->drift_.get());
  }
  server->models_ = std::make_unique<ModelManager>(o.model_repository, std::move(models));
  server->runner_ = std::make_unique<InferenceRunner>(o.inference);
  if (o.memory_trim_interval > absl::ZeroDuration()) {
    server->memory_trimmer_ =
        std::make_unique<MemoryTrimmer>(MemoryTrimmer::Options{o.memory_trim_interval});
  }
  InferenceService::Options inference;
  inference.limits = RequestLimits{o.max_request_rows, o.max_request_memory_bytes,
                                   static_cast<uint64_t>(o.max_message_bytes)};
  inference.observer = server->observers_.empty() ? nullptr : &server->observers_;
  inference.payloads =
      server->payload_observers_.empty() ? nullptr : &server->payload_observers_;
  inference.shadow = o.shadow;
  inference.models_changed = [raw = server.get()](const RepositorySnapshot& snapshot) {
    raw->OnRefresh(snapshot);
  };
  server->inference_ = std::make_unique<InferenceService>(server->models_.get(),
                                                          server->runner_.get(), inference);
  server->guard_ = std::make_unique<EdgeGuard>(o.authenticator, o.admin_authenticator);
  ModelServer* raw = server.get();
  GrpcEdge edge;
  edge.guard = server->guard_.get();
  edge.refuse = [inference = server->inference_.get()](const CallInfo& call,
                                                       absl::Status status) {
    return inference->Refuse(call, std::move(status));
  };
  edge.closing = [raw] { return raw->closing_.load(std::memory_order_acquire); };
  server->service_ = std::make_unique<ClassifierService>(server->inference_.get(), edge);
  server->repository_service_ =
      std::make_unique<ModelRepositoryService>(server->inference_.get(), edge);
  // Health follows the state once the gRPC server exists (below).
  server->state_ = std::make_unique<ServingState>([raw](bool ready) { raw->SetHealth(ready); });
  server->open_inference_ = std::make_unique<OpenInference>(
      server->inference_.get(), [raw] { return raw->state_->ready(); });
  server->v2_repository_ = std::make_unique<ModelRepositoryExtension>(server->inference_.get());
  server->v2_service_ = std::make_unique<InferenceV2Service>(
      server->open_inference_.get(), server->v2_repository_.get(), std::move(edge));

  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's health service is built on its own C messages: reflection can
  // describe it only once the C++ descriptors are linked in and registered.
  grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.address,
                           o.credentials ? o.credentials : grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  builder.RegisterService(server->v2_service_.get());
  builder.RegisterService(server->repository_service_.get());
  server->reflection_v1_ = std::make_unique<ReflectionV1Service>(std::vector<std::string>{
      v1::Classifier::service_full_name(), inference::GRPCInferenceService::service_full_name(),
      v1::ModelRepositoryService::service_full_name(),
      "grpc.health.v1.Health",
      grpc::reflection::v1alpha::ServerReflection::service_full_name(),
      grpc::reflection::v1::ServerReflection::service_full_name()},
      server->guard_.get());
  builder.RegisterService(server->reflection_v1_.get());
  server->reflection_v1alpha_ =
      std::make_unique<ReflectionV1AlphaService>(server->reflection_v1_.get());
  builder.RegisterService(server->reflection_v1alpha_.get());
  // A port already in use is an error, not a second server sharing it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(o.max_message_bytes);
  builder.SetMaxSendMessageSize(o.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             absl::ToInt64Milliseconds(o.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             absl::ToInt64Milliseconds(o.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Clients may ping this often without being told off (GOAWAY).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             10000);
  if (o.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, o.max_concurrent_streams);
  }
  // gRPC takes these in int milliseconds; INT_MAX is its "never".
  auto milliseconds = [](absl::Duration d) {
    return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT_MAX));
  };
  if (o.max_connection_age != absl::InfiniteDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               milliseconds(o.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               milliseconds(o.max_connection_age_grace));
  }
  if (o.max_connection_idle != absl::InfiniteDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                               milliseconds(o.max_connection_idle));
  }
  if (o.max_buffered_request_bytes > 0) {
    // gRPC counts its connections' read buffers and the messages it
    // assembles against this; past it, it cancels streams (RESOURCE_EXHAUSTED)
    // or closes connections rather than grow without bound.
    grpc::ResourceQuota quota("seqserve-grpc");
    quota.Resize(static_cast<size_t>(o.max_buffered_request_bytes));
    builder.SetResourceQuota(quota);
  }
  if (absl::Status free = CheckCanListen(o.address); !free.ok()) return free;
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.address));
  }
  // Until now only this thread changed the state: no other thread reads
  // server_ here.
  server->SetHealth(server->state_->ready());

  if (!o.http_address.empty()) {
    RestApi::Sources sources;
    sources.inference = server->inference_.get();
    sources.open_inference = server->open_inference_.get();
    sources.repository = server->v2_repository_.get();
    sources.state = server->state_.get();
    sources.guard = server->guard_.get();
    if (server->metrics_) sources.metrics = [raw] { return raw->MetricsText(); };
    if (server->drift_) {
      sources.drift = [drift = server->drift_.get()](const std::string& model) {
        return drift->ReportJson(model);
      };
    }
    sources.console = o.http_console;
    sources.grpc_port = server->port_;
    server->rest_api_ = std::make_unique<RestApi>(std::move(sources));
    HttpServer::Options http = o.http;
    http.address = o.http_address;
    http.max_body_bytes = static_cast<size_t>(o.max_message_bytes);
    http.max_buffered_body_bytes = static_cast<size_t>(o.max_buffered_request_bytes);
    http.screen = [api = server->rest_api_.get()](HttpRequest* head) {
      return api->Screen(head);
    };
    http.error_body = &RestApi::ErrorFor;
    auto listener = HttpServer::Start(
        http, [api = server->rest_api_.get()](const HttpRequest& request,
                                              HttpServer::Respond respond) {
          api->Handle(request, std::move(respond));
        });
    if (!listener.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return listener.status();
    }
    server->http_ = std::move(*listener);
    server->http_for_metrics_.store(server->http_.get(), std::memory_order_release);
  }

  server->first_load_ = std::thread([raw] {
    const absl::Time start = absl::Now();
    raw->models_->Refresh();
    const auto snapshot = raw->models_->Snapshot();
    // Milliseconds to one decimal, as each model's load time is logged.
    const size_t model_count = snapshot->models.size();
    const int version_count = AvailableVersions(*snapshot);
    spdlog::info("repository {}: {} model{}, {} version{} available, loaded in {:.1f} ms",
                 raw->options_.model_repository, model_count, model_count == 1 ? "" : "s",
                 version_count, version_count == 1 ? "" : "s",
                 absl::ToDoubleMilliseconds(absl::Now() - start));
    raw->OnRefresh(*snapshot);
    // A drain that began during the first load keeps the server down, and
    // no poller starts in its middle.
    if (!raw->state_->FinishLoading([raw] {
          raw->models_->StartPolling(
              raw->options_.poll_interval,
              [raw](const RepositorySnapshot& next) { raw->OnRefresh(next); });
        })) {
      spdlog::info("draining began during the first load: not serving");
    }
    raw->ready_.Notify();
  });
  return server;
}

void ModelServer::WaitUntilReady() { ready_.WaitForNotification(); }

void ModelServer::OnRefresh(const RepositorySnapshot& snapshot) {
  if (drift_ != nullptr) drift_->Retain(snapshot);
  const bool has_models = AvailableVersions(snapshot) > 0;
  const bool was_ready = state_->ready();
  state_->SetHasModels(has_models);
  if (!has_models && (was_ready || state_->phase() == ServingState::Phase::kLoading)) {
    spdlog::warn("repository {} has no loadable model: health stays NOT_SERVING "
                 "until one loads (see ListModels for each model's error)",
                 options_.model_repository);
  }
}

void ModelServer::SetHealth(bool serving) {
  if (server_ == nullptr) return;  // not listening yet; Start() sets it once it is
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  // The server as a whole ("") and the Classifier service by name.
  health->SetServingStatus(serving);
  health->SetServingStatus(v1::Classifier::service_full_name(), serving);
  health->SetServingStatus(inference::GRPCInferenceService::service_full_name(), serving);
  spdlog::info("health {}", serving ? "SERVING" : "NOT_SERVING");
}

void ModelServer::StartDraining() { state_->StartDraining(); }

void ModelServer::Drain(absl::Duration longest, absl::Duration quiet) {
  StartDraining();
  const absl::Time start = absl::Now(), end = start + longest;
  for (absl::Time now = start; now < end; now = absl::Now()) {
    const absl::Time quiet_from = std::max(start, inference_->last_call_started()) + quiet;
    if (now >= quiet_from) return;
    absl::SleepFor(std::min(end, quiet_from) - now);
  }
}

std::string ModelServer::MetricsText() const {
  if (metrics_ == nullptr) return "";
  ServingMetrics::Gauges gauges;
  gauges.inflight_requests = inference_->calls_in_flight();
  if (const HttpServer* http = http_for_metrics_.load(std::memory_order_acquire)) {
    const HttpServer::BodyBudget bodies = http->body_budget();
    gauges.http_body_bytes = bodies.held_bytes;
    gauges.http_bodies_refused = bodies.refused;
  }
  gauges.queued_rows = runner_->queued_rows();
  gauges.repository = models_->Snapshot();
  // The tokens file's state, when the authenticator is one.
  if (const auto* tokens = dynamic_cast<const TokenAuthenticator*>(options_.authenticator)) {
    gauges.tokens_file = ServingMetrics::Gauges::TokensFile{tokens->file_valid(),
                                                            tokens->reload_failures()};
  }
  if (access_log_ != nullptr) gauges.access_log_dropped_lines = access_log_->dropped();
  if (options_.http.tls.has_value()) {
    gauges.tls_certificate_expiry = TlsCertificateExpiry(options_.http.tls->cert_file);
  }
  std::string text = metrics_->Render(gauges);
  if (capture_ != nullptr) {
    ExpositionWriter capture;
    capture_->RenderMetrics(capture);
    text += capture.text();
  }
  if (drift_ != nullptr) text += drift_->MetricsText();
  return text;
}

void ModelServer::ReopenAccessLog() {
  if (access_log_ != nullptr) access_log_->Reopen();
}

void ModelServer::Shutdown(absl::Duration grace) {
  // A start that failed before the state existed has nothing to drain.
  if (shut_down_.exchange(true) || server_ == nullptr || state_ == nullptr) return;
  const absl::Time deadline = absl::Now() + grace;
  StartDraining();
  // A shadow's work is never worth a moment of the grace.
  inference_->StopShadows();
  if (http_) http_->StopAccepting();
  // At the end of the grace period nothing may still wait for a forward
  // pass: gRPC cancels the calls it holds, and this answers the queue.
  absl::Notification stopped;
  std::thread grace_timer([this, deadline, &stopped] {
    if (!stopped.WaitForNotificationWithDeadline(deadline)) runner_->CancelQueued();
  });
  // From here a call that reaches a handler is answered UNAVAILABLE, which
  // retry policies retry, instead of running into the shutdown. What no
  // handler sees: gRPC 1.51 cancels (CANCELLED) a call whose stream arrives
  // after its Shutdown began and before the client read the GOAWAY that
  // Shutdown sends; it offers no way to send GOAWAY first. Measured: 0 to 7
  // such calls a shutdown with 4 clients calling back to back
  // (tests/frontends/grpc_edge_test.cc).
  closing_.store(true, std::memory_order_release);
  server_->Shutdown(absl::ToChronoTime(deadline));
  server_->Wait();
  // HTTP calls still waiting are answered by the grace timer's cancel at
  // the deadline; a moment more lets those answers out.
  if (http_) http_->Shutdown(deadline + absl::Milliseconds(200));
  stopped.Notify();
  grace_timer.join();
  // What still waits for a pass is background work (a shadow's copies):
  // answered now without running, so nothing is left for the runner's end.
  runner_->CancelQueued();
  // No call is left to capture: what is queued gets the rest of the grace.
  if (capture_ != nullptr) capture_->Shutdown(deadline);
  // The port is closed; a model still loading may finish on its own time.
  models_->StopPolling();
  if (first_load_.joinable()) first_load_.join();
  state_->Stop();
}

ModelServer::~ModelServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace seqserve
