#include "server/model_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "core/layer.h"
#include "spdlog/spdlog.h"

namespace seqserve {

ModelServer::ModelServer(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ModelServer>> ModelServer::Start(Options options) {
  std::unique_ptr<ModelServer> server(new ModelServer(std::move(options)));
  const Options& o = server->options_;
  // One BLAS thread per forward pass: the inference pool is the parallelism.
  UseSingleThreadedBlas();
  server->models_ = std::make_unique<ModelManager>(o.model_repository);
  server->runner_ = std::make_unique<InferenceRunner>(o.inference);
  server->service_ = std::make_unique<ClassifierService>(
      server->models_.get(), server->runner_.get(), o.max_request_rows);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.address, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->service_.get());
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
  server->SetHealth(false);

  ModelServer* raw = server.get();
  server->first_load_ = std::thread([raw] {
    const absl::Time start = absl::Now();
    raw->models_->Refresh();
    const auto snapshot = raw->models_->Snapshot();
    int available = 0;
    for (const auto& [name, record] : snapshot->models) {
      for (const auto& [version, entry] : record.versions) {
        if (entry.served) ++available;
      }
    }
    spdlog::info("repository {}: {} models, {} versions available, loaded in {}",
                 raw->options_.model_repository, snapshot->models.size(),
                 available, absl::FormatDuration(absl::Now() - start));
    if (!raw->shut_down_) {
      raw->SetHealth(true);
      raw->models_->StartPolling(raw->options_.poll_interval);
    }
    raw->ready_.Notify();
  });
  return server;
}

void ModelServer::WaitUntilReady() { ready_.WaitForNotification(); }

void ModelServer::SetHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  // The server as a whole ("") and the Classifier service by name.
  health->SetServingStatus(serving);
  health->SetServingStatus(v1::Classifier::service_full_name(), serving);
}

void ModelServer::StartDraining() { SetHealth(false); }

void ModelServer::Shutdown(absl::Duration grace) {
  if (shut_down_.exchange(true) || server_ == nullptr) return;
  if (first_load_.joinable()) first_load_.join();
  StartDraining();
  models_->StopPolling();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
}

ModelServer::~ModelServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace seqserve
