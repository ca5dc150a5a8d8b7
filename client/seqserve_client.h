// The seqserve C++ client: Classify, model metadata, listing, health and
// model control over one gRPC channel, and the Open Inference Protocol's ModelInfer on
// the same channel, with results as plain C++ values and errors as
// absl::Status carrying the server's code and message.
//
// Thread-safe: one Client may be shared by many threads.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "seqserve/v1/repository.grpc.pb.h"

namespace seqserve {

struct ClientOptions {
  // Deadline of each call unless the call gives its own.
  absl::Duration deadline = absl::Seconds(10);
  // Channel credentials; null means the TLS fields below decide. Takes
  // precedence over them.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // TLS, when any of these is set (else plaintext): the PEM CAs that sign
  // the server's certificate (empty: the system's roots), a client
  // certificate and key for mutual TLS, and the name to check in the
  // server's certificate (empty: the target's host).
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_server_name;
  // Sent as "authorization: Bearer <token>" with every call; empty: none.
  std::string bearer_token;
  // Attempts per call when the server answers UNAVAILABLE (gRPC's retry
  // policy in the service config); 1 turns retries off.
  int max_attempts = 3;
  // Spread calls over every address the target resolves to (gRPC's
  // round_robin policy); false uses the first that connects.
  bool round_robin = true;
  // Largest message either way.
  int max_message_bytes = 64 * 1024 * 1024;
};

struct ScoredLabel {
  uint32_t index = 0;
  std::string label;
  float score = 0.0f;
};

// The answer for one input row (v1::RowResult: a one-output model is a
// binary classifier, whose predicted_index, score and top_k are of its two
// classes while `scores` keeps the one output).
struct RowPrediction {
  std::vector<float> scores;
  uint32_t predicted_index = 0;
  std::string predicted_label;
  float score = 0.0f;  // the predicted class's
  std::vector<ScoredLabel> positive;  // multi-label sigmoid
  std::vector<ScoredLabel> top_k;
};

struct Classification {
  std::string model;
  int64_t version = 0;
  v1::OutputMode output = v1::OUTPUT_MODE_DEFAULT;
  std::vector<RowPrediction> rows;
};

struct ClassifyOptions {
  v1::OutputMode output = v1::OUTPUT_MODE_DEFAULT;
  uint32_t top_k = 0;
  int64_t version = 0;  // 0: the highest available
  // The version by its label in the model's config; not with `version`.
  std::string version_label;
  // Sent as x-request-id: a traffic split sends the same id to the same
  // version; empty: none.
  std::string request_id;
  float threshold = 0.0f;  // 0: the model's
  // Parallel to the features (ClassifyRequest.categories): empty, or one
  // per value, a categorical feature's text; must outlive the call.
  absl::Span<const std::string> categories;
};

struct ModelVersion {
  int64_t version = 0;
  v1::ModelState state = v1::MODEL_STATE_UNSPECIFIED;
  std::string error;
  std::vector<std::string> labels;  // the version labels naming it
};

struct ModelInfo {
  std::string name;
  std::string error;
  std::vector<ModelVersion> versions;
};

// What a model version is served with: its config's values, else the
// server's flags.
struct ServingLimits {
  uint32_t max_request_rows = 0;  // 0: no limit
  uint64_t max_request_memory_bytes = 0;  // 0: no limit
  uint32_t max_batch_rows = 0;
  uint32_t max_queue_delay_micros = 0;
  uint32_t max_queued_rows = 0;
};

struct ModelMetadata {
  std::string model;
  int64_t version = 0;
  std::string description;
  uint32_t input_width = 0;
  uint32_t output_width = 0;
  std::vector<std::string> labels;
  std::vector<std::string> feature_names;  // empty when the config gives none
  std::vector<std::string> layers;
  v1::OutputMode default_output = v1::OUTPUT_MODE_DEFAULT;
  uint64_t parameter_count = 0;
  float threshold = 0.5f;
  ServingLimits limits;
  std::vector<ModelVersion> versions;
};

class Client {
 public:
  // `target` is "host:port", several "host:port" of one address family
  // separated by commas
  // (resolved now, then balanced), or any gRPC target ("dns:///name:port",
  // "ipv4:...", "unix:..."). INVALID_ARGUMENT for a malformed target.
  static absl::StatusOr<std::unique_ptr<Client>> Create(
      const std::string& target, const ClientOptions& options = {});

  // Waits until every asynchronous call has released its gRPC state (its
  // `done` may still be running), then drops this Client's channel.
  ~Client();

  // Classifies `rows` rows of features, row-major.
  absl::StatusOr<Classification> Classify(const std::string& model,
                                          absl::Span<const float> features,
                                          size_t rows,
                                          const ClassifyOptions& options = {});
  absl::StatusOr<ModelMetadata> GetModelMetadata(const std::string& model,
                                                 int64_t version = 0);
  absl::StatusOr<std::vector<ModelInfo>> ListModels();
  // The same two calls' answers as the API's messages, for a caller that
  // prints or forwards them whole.
  absl::StatusOr<v1::GetModelMetadataResponse> GetModelMetadataMessage(const std::string& model,
                                                                       int64_t version = 0);
  absl::StatusOr<v1::ListModelsResponse> ListModelsMessage();
  // How much each feature of the request's rows moved one class's score
  // (seqserve.v1.Classifier/Explain); `request_id` as in ClassifyOptions.
  absl::StatusOr<v1::ExplainResponse> Explain(const v1::ExplainRequest& request,
                                              const std::string& request_id = "");
  // Model control (seqserve.v1.ModelRepositoryService): every model of the
  // repository with its versions' states (`ready`: only what can answer);
  // a load, answered once the model's versions are available or the load
  // failed (with `config` standing in for its config.textproto); an
  // unload. Loading and unloading need a server under
  // --model_control_mode=explicit.
  absl::StatusOr<v1::RepositoryIndexResponse> RepositoryIndex(bool ready = false);
  absl::StatusOr<v1::ModelStatus> LoadModel(
      const std::string& model, const std::optional<v1::ModelConfig>& config = std::nullopt);
  absl::Status UnloadModel(const std::string& model);
  // The grpc.health.v1 status of `service` ("" for the whole server).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health(
      const std::string& service = "");

  // The asynchronous path for high-rate callers: returns at once, calls
  // `done` on a gRPC thread. `request` is copied.
  //
  // Lifetime: the call's gRPC state is released before `done` runs, so
  // `done` may wake a thread that then destroys this Client at once.
  // ~Client waits for every call still in flight. A Client must not be
  // destroyed from inside one of its own `done` callbacks: the channel would
  // then be freed on gRPC's callback thread, which gRPC does not support
  // (grpc/grpc#37858). The same holds for a copy of channel(): do not let a
  // `done` callback drop the last one.
  using ClassifyDone =
      std::function<void(absl::StatusOr<v1::ClassifyResponse>)>;
  void ClassifyAsync(const v1::ClassifyRequest& request, ClassifyDone done);
  // The Open Inference Protocol's ModelInfer, synchronously and as
  // ClassifyAsync does.
  absl::StatusOr<inference::ModelInferResponse> Infer(
      const inference::ModelInferRequest& request);
  using InferDone = std::function<void(absl::StatusOr<inference::ModelInferResponse>)>;
  void InferAsync(const inference::ModelInferRequest& request, InferDone done);
  // The Open Inference Protocol's metadata of a model (its tensor names).
  absl::StatusOr<inference::ModelMetadataResponse> ModelMetadataV2(const std::string& model,
                                                                   int64_t version = 0);
  using HealthDone = std::function<void(absl::Status)>;
  // The empty health call, asynchronously: gRPC's own floor for benchmarks.
  void HealthAsync(HealthDone done);

  // Plain value types from the API messages.
  static Classification ToClassification(const v1::ClassifyResponse& response);

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

 private:
  Client(std::shared_ptr<grpc::Channel> channel, const ClientOptions& options);

  // Deadline and token of one call.
  void PrepareContext(grpc::ClientContext* context) const;
  // Bracket each asynchronous call; the end comes before its `done` runs.
  void AsyncCallStarted();
  void AsyncCallFinished();
  // One asynchronous unary call: `start(context, request, response,
  // on_done)` is a stub's async method; `done` gets the response or status.
  template <typename Request, typename Response, typename Start>
  void StartAsync(const Request& request, std::function<void(absl::StatusOr<Response>)> done,
                  Start start);

  absl::Mutex mu_;
  int async_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<grpc::Channel> channel_;
  ClientOptions options_;
  const std::string authorization_;  // "Bearer <token>"
  std::unique_ptr<v1::Classifier::Stub> classifier_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> inference_;
  std::unique_ptr<v1::ModelRepositoryService::Stub> repository_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// A Classify request as the Open Inference Protocol's ModelInfer, for a
// model whose v2 metadata is `metadata`: the rows as one FP32 tensor named
// as its input (raw bytes when `raw`), or, when the metadata lists the
// features as inputs, each feature's column as its own input (text as
// BYTES, with the request's categories); the output named by the request's
// output mode, or for the default none, unless a top-k needs one named:
// then `default_output` (GetModelMetadata's, what the default gives) by its
// name, or without it the last output of `metadata` (the graph's own,
// unless the graph names its output as a head is named); as
// "classification" strings when a top-k is asked.
inference::ModelInferRequest ToModelInferRequest(
    const v1::ClassifyRequest& request, const inference::ModelMetadataResponse& metadata,
    bool raw, v1::OutputMode default_output = v1::OUTPUT_MODE_DEFAULT);

// SSL channel credentials from the TLS files of `options`;
// FAILED_PRECONDITION naming a file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsChannelCredentials(
    const ClientOptions& options);

// The target string gRPC is given for a Client target (see Client::Create).
absl::StatusOr<std::string> ResolveTarget(const std::string& target);

}  // namespace seqserve
