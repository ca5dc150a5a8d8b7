#include "server/model_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "core/layer.h"
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
  // One BLAS thread per forward pass: the inference pool is the parallelism.
  UseSingleThreadedBlas();
  server->models_ = std::make_unique<ModelManager>(o.model_repository);
  server->runner_ = std::make_unique<InferenceRunner>(o.inference);
  server->service_ = std::make_unique<ClassifierService>(
      server->models_.get(), server->runner_.get(),
      RequestLimits{o.max_request_rows, o.max_request_memory_bytes});

  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's health service is built on its own C messages: reflection can
  // describe it only once the C++ descriptors are linked in and registered.
  grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.address, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->reflection_v1_ = std::make_unique<ReflectionV1Service>(std::vector<std::string>{
      v1::Classifier::service_full_name(), "grpc.health.v1.Health",
      "grpc.reflection.v1alpha.ServerReflection",
      grpc::reflection::v1::ServerReflection::service_full_name()});
  builder.RegisterService(server->reflection_v1_.get());
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
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.address));
  }
  server->UpdateHealth();

  ModelServer* raw = server.get();
  server->first_load_ = std::thread([raw] {
    const absl::Time start = absl::Now();
    raw->models_->Refresh();
    const auto snapshot = raw->models_->Snapshot();
    spdlog::info("repository {}: {} models, {} versions available, loaded in {}",
                 raw->options_.model_repository, snapshot->models.size(),
                 AvailableVersions(*snapshot),
                 absl::FormatDuration(absl::Now() - start));
    raw->OnRefresh(*snapshot);
    {
      absl::MutexLock lock(&raw->health_mu_);
      // A drain that began during the first load keeps the server down.
      if (!raw->draining_) {
        raw->models_->StartPolling(raw->options_.poll_interval,
                                   [raw](const RepositorySnapshot& next) {
                                     raw->OnRefresh(next);
                                   });
      }
    }
    raw->ready_.Notify();
  });
  return server;
}

void ModelServer::WaitUntilReady() { ready_.WaitForNotification(); }

void ModelServer::OnRefresh(const RepositorySnapshot& snapshot) {
  const bool has_models = AvailableVersions(snapshot) > 0;
  {
    absl::MutexLock lock(&health_mu_);
    if (has_models == has_models_ && loaded_once_) return;
    loaded_once_ = true;
    has_models_ = has_models;
  }
  if (!has_models) {
    spdlog::warn("repository {} has no loadable model: health stays NOT_SERVING "
                 "until one loads (see ListModels for each model's error)",
                 options_.model_repository);
  } else {
    spdlog::info("a model is available: health SERVING unless draining");
  }
  UpdateHealth();
}

void ModelServer::UpdateHealth() {
  absl::MutexLock lock(&health_mu_);
  const bool serving = has_models_ && !draining_;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  // The server as a whole ("") and the Classifier service by name.
  health->SetServingStatus(serving);
  health->SetServingStatus(v1::Classifier::service_full_name(), serving);
}

void ModelServer::StartDraining() {
  {
    absl::MutexLock lock(&health_mu_);
    draining_ = true;
  }
  UpdateHealth();
}

void ModelServer::Shutdown(absl::Duration grace) {
  if (shut_down_.exchange(true) || server_ == nullptr) return;
  StartDraining();
  if (first_load_.joinable()) first_load_.join();
  models_->StopPolling();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
}

ModelServer::~ModelServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace seqserve
