#include "client/seqserve_client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <fstream>
#include <memory>
#include <sstream>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace seqserve {
namespace {

absl::Status ToAbslStatus(const grpc::Status& status) {
  // gRPC and absl share the canonical code numbers.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

std::string ServiceConfig(const ClientOptions& options) {
  std::string config = "{";
  if (options.round_robin) {
    absl::StrAppend(&config, R"("loadBalancingConfig": [{"round_robin": {}}])");
  }
  if (options.max_attempts > 1) {
    absl::StrAppend(&config, options.round_robin ? ", " : "", R"(
      "methodConfig": [{
        "name": [{"service": "seqserve.v1.Classifier"},
                 {"service": "inference.GRPCInferenceService"},
                 {"service": "grpc.health.v1.Health"}],
        "retryPolicy": {
          "maxAttempts": )", std::min(options.max_attempts, 5), R"(,
          "initialBackoff": "0.05s",
          "maxBackoff": "1s",
          "backoffMultiplier": 2,
          "retryableStatusCodes": ["UNAVAILABLE"]
        }
      }])");
  }
  return config + "}";
}

// One resolved server: a numeric address:port for gRPC's static lists.
struct ResolvedAddress {
  bool ipv6 = false;
  std::string address;  // "a.b.c.d:port" or "[::1]:port"
};

// The first address of "host:port", so each server is one backend.
absl::StatusOr<ResolvedAddress> ResolveHostPort(absl::string_view host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == absl::string_view::npos || colon == 0 || colon + 1 == host_port.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("target '", host_port, "' is not host:port"));
  }
  std::string host(host_port.substr(0, colon));
  const std::string port(host_port.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int error = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); error != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot resolve '", host, "': ", gai_strerror(error)));
  }
  std::optional<ResolvedAddress> resolved;
  for (addrinfo* a = found; a != nullptr && !resolved; a = a->ai_next) {
    char name[NI_MAXHOST];
    if (getnameinfo(a->ai_addr, a->ai_addrlen, name, sizeof(name), nullptr, 0,
                    NI_NUMERICHOST) != 0) {
      continue;
    }
    const bool ipv6 = a->ai_family == AF_INET6;
    resolved = ResolvedAddress{
        ipv6, ipv6 ? absl::StrCat("[", name, "]:", port) : absl::StrCat(name, ":", port)};
  }
  freeaddrinfo(found);
  if (!resolved) {
    return absl::InvalidArgumentError(absl::StrCat("no address for '", host, "'"));
  }
  return *resolved;
}

std::vector<ModelVersion> ToVersions(
    const google::protobuf::RepeatedPtrField<v1::VersionStatus>& versions) {
  std::vector<ModelVersion> result;
  for (const auto& v : versions) {
    result.push_back({v.version(), v.state(), v.error(), {v.labels().begin(), v.labels().end()}});
  }
  return result;
}

std::vector<ScoredLabel> ToScored(
    const google::protobuf::RepeatedPtrField<v1::ScoredClass>& classes) {
  std::vector<ScoredLabel> result;
  for (const auto& c : classes) result.push_back({c.index(), c.label(), c.score()});
  return result;
}

}  // namespace

absl::StatusOr<std::string> ResolveTarget(const std::string& target) {
  if (target.empty()) return absl::InvalidArgumentError("empty target");
  if (absl::StrContains(target, "://") || absl::StartsWith(target, "dns:") ||
      absl::StartsWith(target, "ipv4:") || absl::StartsWith(target, "ipv6:") ||
      absl::StartsWith(target, "unix:")) {
    return target;  // a gRPC target string already
  }
  // gRPC's static address lists take one scheme: all ipv4 or all ipv6.
  std::vector<std::string> addresses;
  std::optional<bool> ipv6;
  for (absl::string_view part : absl::StrSplit(target, ',', absl::SkipWhitespace())) {
    auto resolved = ResolveHostPort(absl::StripAsciiWhitespace(part));
    if (!resolved.ok()) return resolved.status();
    if (ipv6.has_value() && *ipv6 != resolved->ipv6) {
      return absl::InvalidArgumentError(absl::StrCat(
          "target '", target, "' mixes IPv4 and IPv6 servers; use one family"));
    }
    ipv6 = resolved->ipv6;
    addresses.push_back(std::move(resolved->address));
  }
  if (addresses.empty()) return absl::InvalidArgumentError("empty target");
  return absl::StrCat(*ipv6 ? "ipv6:" : "ipv4:", absl::StrJoin(addresses, ","));
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsChannelCredentials(
    const ClientOptions& options) {
  grpc::SslCredentialsOptions ssl;
  struct File {
    const std::string* path;
    std::string* contents;
    const char* what;
  };
  for (const File& file : {File{&options.tls_ca_file, &ssl.pem_root_certs, "TLS CA file"},
                           File{&options.tls_cert_file, &ssl.pem_cert_chain,
                                "TLS certificate file"},
                           File{&options.tls_key_file, &ssl.pem_private_key, "TLS key file"}}) {
    if (file.path->empty()) continue;
    std::ifstream in(*file.path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read ", file.what, " ", *file.path, " (or it is empty)"));
    }
    *file.contents = text.str();
  }
  if (ssl.pem_cert_chain.empty() != ssl.pem_private_key.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs its key: give both TLS certificate and key files");
  }
  return grpc::SslCredentials(ssl);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const std::string& target,
                                                       const ClientOptions& options) {
  auto resolved = ResolveTarget(target);
  if (!resolved.ok()) return resolved.status();
  grpc::ChannelArguments arguments;
  arguments.SetServiceConfigJSON(ServiceConfig(options));
  arguments.SetMaxReceiveMessageSize(options.max_message_bytes);
  arguments.SetMaxSendMessageSize(options.max_message_bytes);
  if (!options.tls_server_name.empty()) {
    arguments.SetSslTargetNameOverride(options.tls_server_name);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = options.credentials;
  const bool tls_files = !options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
                         !options.tls_key_file.empty() || !options.tls_server_name.empty();
  if (credentials == nullptr && tls_files) {
    auto tls = TlsChannelCredentials(options);
    if (!tls.ok()) return tls.status();
    credentials = std::move(*tls);
  }
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  auto channel = grpc::CreateCustomChannel(*resolved, credentials, arguments);
  return std::unique_ptr<Client>(new Client(std::move(channel), options));
}

Client::Client(std::shared_ptr<grpc::Channel> channel, const ClientOptions& options)
    : channel_(std::move(channel)),
      options_(options),
      authorization_(absl::StrCat("Bearer ", options.bearer_token)),
      classifier_(v1::Classifier::NewStub(channel_)),
      inference_(inference::GRPCInferenceService::NewStub(channel_)),
      repository_(v1::ModelRepositoryService::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

void Client::PrepareContext(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  if (!options_.bearer_token.empty()) {
    context->AddMetadata("authorization", authorization_);
  }
}

Classification Client::ToClassification(const v1::ClassifyResponse& response) {
  Classification result;
  result.model = response.model();
  result.version = response.version();
  result.output = response.output();
  for (const auto& row : response.results()) {
    RowPrediction prediction;
    prediction.scores.assign(row.scores().begin(), row.scores().end());
    prediction.predicted_index = row.predicted_index();
    prediction.predicted_label = row.predicted_label();
    prediction.score = row.score();
    prediction.positive = ToScored(row.positive());
    prediction.top_k = ToScored(row.top_k());
    result.rows.push_back(std::move(prediction));
  }
  return result;
}

absl::StatusOr<Classification> Client::Classify(const std::string& model,
                                                absl::Span<const float> features,
                                                size_t rows,
                                                const ClassifyOptions& options) {
  v1::ClassifyRequest request;
  request.set_model(model);
  request.set_version(options.version);
  request.set_version_label(options.version_label);
  request.mutable_features()->Add(features.begin(), features.end());
  for (const std::string& category : options.categories) request.add_categories(category);
  request.set_rows(static_cast<uint32_t>(rows));
  request.set_output(options.output);
  request.set_top_k(options.top_k);
  request.set_threshold(options.threshold);
  grpc::ClientContext context;
  PrepareContext(&context);
  if (!options.request_id.empty()) context.AddMetadata("x-request-id", options.request_id);
  v1::ClassifyResponse response;
  grpc::Status status = classifier_->Classify(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return ToClassification(response);
}

absl::StatusOr<v1::ExplainResponse> Client::Explain(const v1::ExplainRequest& request,
                                                    const std::string& request_id) {
  grpc::ClientContext context;
  PrepareContext(&context);
  if (!request_id.empty()) context.AddMetadata("x-request-id", request_id);
  v1::ExplainResponse response;
  grpc::Status status = classifier_->Explain(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

absl::StatusOr<v1::GetModelMetadataResponse> Client::GetModelMetadataMessage(
    const std::string& model, int64_t version) {
  v1::GetModelMetadataRequest request;
  request.set_model(model);
  request.set_version(version);
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::GetModelMetadataResponse response;
  grpc::Status status = classifier_->GetModelMetadata(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

absl::StatusOr<ModelMetadata> Client::GetModelMetadata(const std::string& model,
                                                       int64_t version) {
  absl::StatusOr<v1::GetModelMetadataResponse> answer = GetModelMetadataMessage(model, version);
  if (!answer.ok()) return answer.status();
  const v1::GetModelMetadataResponse& response = *answer;
  ModelMetadata metadata;
  metadata.model = response.model();
  metadata.version = response.version();
  metadata.description = response.description();
  metadata.input_width = response.input_width();
  metadata.output_width = response.output_width();
  metadata.labels.assign(response.labels().begin(), response.labels().end());
  metadata.feature_names.assign(response.feature_names().begin(),
                                response.feature_names().end());
  metadata.limits.max_request_rows = response.limits().max_request_rows();
  metadata.limits.max_request_memory_bytes = response.limits().max_request_memory_bytes();
  metadata.limits.max_batch_rows = response.limits().max_batch_rows();
  metadata.limits.max_queue_delay_micros = response.limits().max_queue_delay_micros();
  metadata.limits.max_queued_rows = response.limits().max_queued_rows();
  metadata.layers.assign(response.layers().begin(), response.layers().end());
  metadata.default_output = response.default_output();
  metadata.parameter_count = response.parameter_count();
  metadata.threshold = response.threshold();
  metadata.versions = ToVersions(response.versions());
  return metadata;
}

absl::StatusOr<v1::ListModelsResponse> Client::ListModelsMessage() {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::ListModelsResponse response;
  grpc::Status status =
      classifier_->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

absl::StatusOr<std::vector<ModelInfo>> Client::ListModels() {
  absl::StatusOr<v1::ListModelsResponse> response = ListModelsMessage();
  if (!response.ok()) return response.status();
  std::vector<ModelInfo> models;
  for (const auto& model : response->models()) {
    models.push_back({model.name(), model.error(), ToVersions(model.versions())});
  }
  return models;
}

absl::StatusOr<v1::RepositoryIndexResponse> Client::RepositoryIndex(bool ready) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::RepositoryIndexRequest request;
  request.set_ready(ready);
  v1::RepositoryIndexResponse response;
  grpc::Status status = repository_->RepositoryIndex(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

absl::StatusOr<v1::ModelStatus> Client::LoadModel(const std::string& model,
                                                  const std::optional<v1::ModelConfig>& config) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::LoadModelRequest request;
  request.set_model(model);
  if (config.has_value()) *request.mutable_config() = *config;
  v1::LoadModelResponse response;
  grpc::Status status = repository_->LoadModel(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response.status();
}

absl::Status Client::UnloadModel(const std::string& model) {
  grpc::ClientContext context;
  PrepareContext(&context);
  v1::UnloadModelRequest request;
  request.set_model(model);
  v1::UnloadModelResponse response;
  return ToAbslStatus(repository_->UnloadModel(&context, request, &response));
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Client::Health(
    const std::string& service) {
  grpc::ClientContext context;
  PrepareContext(&context);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health_->Check(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response.status();
}

Client::~Client() {
  // A call's ClientContext holds a reference to the channel. Were the last
  // one dropped on gRPC's callback thread, gRPC 1.51 would free the queue
  // that thread polls; waiting here keeps the last reference on this thread.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* calls) { return *calls == 0; }, &async_calls_));
}

void Client::AsyncCallStarted() {
  absl::MutexLock lock(&mu_);
  ++async_calls_;
}

void Client::AsyncCallFinished() {
  absl::MutexLock lock(&mu_);
  --async_calls_;
}

template <typename Request, typename Response, typename Start>
void Client::StartAsync(const Request& request,
                        std::function<void(absl::StatusOr<Response>)> done, Start start) {
  // One allocation holds everything the call needs until it completes.
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
    std::function<void(absl::StatusOr<Response>)> done;
  };
  auto* call = new Call;
  call->request = request;
  call->done = std::move(done);
  PrepareContext(&call->context);
  AsyncCallStarted();
  start(&call->context, &call->request, &call->response, [this, call](grpc::Status status) {
    auto call_done = std::move(call->done);
    absl::StatusOr<Response> result =
        status.ok() ? absl::StatusOr<Response>(std::move(call->response)) : ToAbslStatus(status);
    delete call;  // the ClientContext and its channel reference
    AsyncCallFinished();  // from here on ~Client may return
    call_done(std::move(result));
  });
}

void Client::ClassifyAsync(const v1::ClassifyRequest& request, ClassifyDone done) {
  StartAsync(request, std::move(done), [this](auto... args) {
    classifier_->async()->Classify(std::move(args)...);
  });
}

// Not through StartAsync: its `done` takes a status, not a response, and
// this call is the benchmarks' floor, so it stays without the extra wrap.
void Client::HealthAsync(HealthDone done) {
  struct Call {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    HealthDone done;
  };
  auto* call = new Call;
  call->done = std::move(done);
  PrepareContext(&call->context);
  AsyncCallStarted();
  health_->async()->Check(&call->context, &call->request, &call->response,
                          [this, call](grpc::Status status) {
                            HealthDone call_done = std::move(call->done);
                            delete call;  // as in StartAsync
                            AsyncCallFinished();
                            call_done(ToAbslStatus(status));
                          });
}

absl::StatusOr<inference::ModelInferResponse> Client::Infer(
    const inference::ModelInferRequest& request) {
  grpc::ClientContext context;
  PrepareContext(&context);
  inference::ModelInferResponse response;
  grpc::Status status = inference_->ModelInfer(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

void Client::InferAsync(const inference::ModelInferRequest& request, InferDone done) {
  StartAsync(request, std::move(done), [this](auto... args) {
    inference_->async()->ModelInfer(std::move(args)...);
  });
}

absl::StatusOr<inference::ModelMetadataResponse> Client::ModelMetadataV2(
    const std::string& model, int64_t version) {
  grpc::ClientContext context;
  PrepareContext(&context);
  inference::ModelMetadataRequest request;
  request.set_name(model);
  if (version != 0) request.set_version(absl::StrCat(version));
  inference::ModelMetadataResponse response;
  grpc::Status status = inference_->ModelMetadata(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

inference::ModelInferRequest ToModelInferRequest(
    const v1::ClassifyRequest& request, const inference::ModelMetadataResponse& metadata,
    bool raw, v1::OutputMode default_output) {
  inference::ModelInferRequest infer;
  infer.set_model_name(request.model());
  if (request.version() != 0) infer.set_model_version(absl::StrCat(request.version()));
  const int64_t rows = request.rows();
  // A model whose metadata lists its features as inputs (a preprocessed
  // one) is sent them by name, column by column: text (BYTES) for a
  // categorical one, a category's text or else the number as text.
  const bool by_feature =
      metadata.inputs_size() > 1 ||
      (metadata.inputs_size() == 1 && metadata.inputs(0).shape_size() == 1);
  if (by_feature) {
    const int width = metadata.inputs_size();
    for (int j = 0; j < width; ++j) {
      const auto& declared = metadata.inputs(j);
      const bool text = declared.datatype() == "BYTES";
      auto* input = infer.add_inputs();
      input->set_name(declared.name());
      input->set_datatype(text ? "BYTES" : "FP32");
      input->add_shape(rows);
      std::string bytes;
      for (int64_t r = 0; r < rows; ++r) {
        const int at = static_cast<int>(r * width + j);
        const float value =
            at < request.features_size() ? request.features(at) : std::nanf("");
        if (text) {
          std::string category = at < request.categories_size() ? request.categories(at) : "";
          if (category.empty() && !std::isnan(value)) category = absl::StrCat(value);
          if (raw) {
            const uint32_t length = static_cast<uint32_t>(category.size());
            bytes.append(reinterpret_cast<const char*>(&length), sizeof length);
            bytes += category;
          } else {
            input->mutable_contents()->add_bytes_contents(std::move(category));
          }
        } else if (raw) {
          bytes.append(reinterpret_cast<const char*>(&value), sizeof value);
        } else {
          input->mutable_contents()->add_fp32_contents(value);
        }
      }
      if (raw) infer.add_raw_input_contents(std::move(bytes));
    }
  } else {
    auto* input = infer.add_inputs();
    if (metadata.inputs_size() > 0) input->set_name(metadata.inputs(0).name());
    input->set_datatype("FP32");
    input->add_shape(rows);
    input->add_shape(rows > 0 ? request.features_size() / rows : 0);
    if (raw) {
      infer.add_raw_input_contents(
          std::string(reinterpret_cast<const char*>(request.features().data()),
                      request.features_size() * sizeof(float)));
    } else {
      *input->mutable_contents()->mutable_fp32_contents() = request.features();
    }
  }
  // A v2 output is named by its head: the OutputMode's own name in lower
  // case, without its prefix ("OUTPUT_MODE_LOG_SOFTMAX" -> "log_softmax"),
  // as the server names them.
  const v1::OutputMode mode = request.output() == v1::OUTPUT_MODE_DEFAULT && request.top_k() > 0
                                  ? default_output
                                  : request.output();
  std::string name;
  if (mode != v1::OUTPUT_MODE_DEFAULT && v1::OutputMode_IsValid(mode)) {
    name = absl::AsciiStrToLower(absl::StripPrefix(v1::OutputMode_Name(mode), "OUTPUT_MODE_"));
  } else if (request.top_k() > 0 && metadata.outputs_size() > 0) {
    name = metadata.outputs(metadata.outputs_size() - 1).name();
  }
  if (!name.empty()) {
    auto* output = infer.add_outputs();
    output->set_name(name);
    if (request.top_k() > 0) {
      (*output->mutable_parameters())["classification"].set_int64_param(request.top_k());
    }
  }
  return infer;
}

}  // namespace seqserve
