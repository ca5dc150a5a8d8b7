// The whole server: model manager, inference runner and service, the
// serving state, metrics and access log, the gRPC front end (Classifier,
// health, reflection) on one port and the HTTP front end (REST, health
// endpoints, metrics) on another. main() and the integration tests both run
// it through this class.
#pragma once

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "observability/access_log.h"
#include "observability/drift_monitor.h"
#include "server/memory_trimmer.h"
#include "serving/authenticator.h"
#include "frontends/grpc/classifier_service.h"
#include "frontends/grpc/inference_v2_service.h"
#include "frontends/grpc/model_repository_service.h"
#include "serving/inference_runner.h"
#include "serving/inference_service.h"
#include "serving/model_manager.h"
#include "frontends/grpc/reflection_v1_service.h"
#include "frontends/http/http_server.h"
#include "frontends/http/rest_api.h"
#include "observability/serving_metrics.h"
#include "observability/call_log.h"
#include "observability/payload_capture.h"
#include "serving/observer_list.h"
#include "serving/request_observer.h"
#include "serving/serving_state.h"
#include "serving/shadow.h"
#include "frontends/v2/model_repository_extension.h"
#include "frontends/v2/open_inference.h"

namespace seqserve {

class ModelServer {
 public:
  struct Options {
    // host:port to listen on; port 0 picks a free one (see port()).
    std::string address = "0.0.0.0:8500";
    // Transport security of the gRPC port; null means plaintext
    // (GrpcServerCredentials() in auth/tls_files.h makes TLS ones).
    std::shared_ptr<grpc::ServerCredentials> credentials;
    // Connection limits of the gRPC port. Streams at once per connection
    // (0: gRPC's default, unlimited).
    int max_concurrent_streams = 0;
    // A connection older than this is sent GOAWAY, so clients reconnect and
    // spread over replicas added since; calls in flight get `grace` more.
    // Infinite: never.
    absl::Duration max_connection_age = absl::InfiniteDuration();
    absl::Duration max_connection_age_grace = absl::InfiniteDuration();
    // A connection without calls for this long is closed; infinite: never.
    absl::Duration max_connection_idle = absl::InfiniteDuration();
    std::string model_repository = "models";
    // A model version's files together (graph + external data), by size on
    // disk, checked before reading; a larger version fails to load.
    uint64_t max_model_bytes = ModelLoadOptions{}.max_model_bytes;
    // How often to look for new, replaced and removed models; 0 loads once.
    absl::Duration poll_interval = absl::Seconds(5);
    // Who decides what is served: polling the repository, nothing after the
    // start, or load and unload calls (explicit) with `load_models` ("*":
    // all) loaded at start.
    ModelControlMode model_control = ModelControlMode::kPoll;
    std::vector<std::string> load_models;
    // A load may label a version that is not available.
    bool allow_labels_for_unavailable = false;
    // Rows one Classify may carry unless a model's config says otherwise.
    uint32_t max_request_rows = 4096;
    // Activations one Classify may need: rows x widest layer x 4 bytes.
    uint64_t max_request_memory_bytes = uint64_t{256} << 20;
    // Largest request or response message.
    int max_message_bytes = 16 * 1024 * 1024;
    // Memory for requests received and not yet answered, all connections
    // together, per port, against bursts of large calls: a hard limit on
    // the HTTP port's bodies, and the gRPC transport's memory quota (loose:
    // under pressure gRPC resets calls or closes connections). 0: no limit.
    uint64_t max_buffered_request_bytes = uint64_t{256} << 20;
    // Keepalive pings on idle connections, and how long to wait for the ack.
    absl::Duration keepalive_time = absl::Seconds(60);
    absl::Duration keepalive_timeout = absl::Seconds(20);
    // Forward-pass threads and dynamic batching defaults.
    InferenceRunner::Options inference;
    // Copies of served calls that may wait for a model's shadow version.
    ShadowRunner::Limits shadow;
    // Told of every call's start and end; not owned, may be null.
    RequestObserver* observer = nullptr;
    // Told of every answered Classify call's rows; not owned, may be null.
    PayloadObserver* payload_observer = nullptr;
    // Payload capture's queue and sink limits (models turn capture on in
    // their config).
    PayloadCapture::Options capture;
    // Checks every caller before anything else; not owned; null admits all.
    const Authenticator* authenticator = nullptr;
    // Checks callers of model control (load, unload); not owned; null:
    // `authenticator` does.
    const Authenticator* admin_authenticator = nullptr;
    // host:port of the HTTP port (port 0 picks a free one); empty: none.
    std::string http_address;
    // Listener threads, idle timeout and connection caps of the HTTP port;
    // its address and body limit come from the fields above.
    HttpServer::Options http;
    // Record metrics (served at GET /metrics on the HTTP port).
    bool metrics = true;
    // Serve the web console at GET / on the HTTP port.
    bool http_console = true;
    // Where the access log goes: a path, "-" for standard output; empty: none.
    std::string access_log;
    // How often to look for memory a burst freed and give it back to the
    // system (server/memory_trimmer.h); zero: never.
    absl::Duration memory_trim_interval = absl::Seconds(1);
  };

  // Binds the port and starts serving; health is NOT_SERVING until a model
  // version is available (the first load's end: WaitUntilReady()).
  // FAILED_PRECONDITION when the repository is not a readable directory.
  static absl::StatusOr<std::unique_ptr<ModelServer>> Start(Options options);

  ~ModelServer();  // Shutdown() with no grace if still running

  int port() const { return port_; }
  ModelManager& models() { return *models_; }
  const ServingState& state() const { return *state_; }
  // Calls received and not yet answered, over every protocol.
  int calls_in_flight() const { return inference_->calls_in_flight(); }
  // Forward passes and the requests they carried.
  InferenceRunner::Stats inference_stats() const { return runner_->stats(); }
  // The runner every Classify goes through (tests hold its slots with it).
  InferenceRunner& runner() { return *runner_; }
  // The protocol-neutral path, for front ends beside the gRPC one.
  InferenceService& inference() { return *inference_; }
  // The HTTP port; 0 when there is none.
  int http_port() const { return http_ ? http_->port() : 0; }
  // The metrics text, as GET /metrics serves it; empty when metrics are off.
  std::string MetricsText() const;
  // Drift statistics (observability/drift_monitor.h); null when metrics are off.
  const DriftMonitor* drift() const { return drift_.get(); }
  // Starts a new access log file (after rotation); no-op without one.
  void ReopenAccessLog();

  // Blocks until the first load finished.
  void WaitUntilReady();

  // Health goes NOT_SERVING for good, so load balancers and probes move
  // traffic away, while calls are still answered.
  void StartDraining();

  // StartDraining(), then returns once no call has arrived for `quiet`
  // (balancers have seen the health and stopped sending), or once
  // `longest` has passed, whichever comes first.
  void Drain(absl::Duration longest, absl::Duration quiet);

  // Drains, stops polling, refuses new calls, and lets calls in flight
  // finish until `grace` has passed. Then what still waits for a forward
  // pass is answered UNAVAILABLE without running, and calls are cancelled:
  // `grace` bounds the shutdown, whatever is queued. Captured calls are
  // written and sent in what remains of `grace`; the rest is dropped
  // (counted). Copies for shadow
  // versions are dropped at once; a shadow pass already running is stopped
  // at its next chunk of rows when the shutdown ends.
  void Shutdown(absl::Duration grace);

 private:
  explicit ModelServer(Options options);
  // Follows the repository: readiness needs an available version.
  void OnRefresh(const RepositorySnapshot& snapshot);
  void SetHealth(bool serving);

  Options options_;
  // Destroyed bottom up: the state (nothing reads it once stopped), the
  // server, the runner with its queue, then the services and the models
  // they used.
  std::unique_ptr<ServingMetrics> metrics_;
  std::unique_ptr<AccessLog> access_log_;
  CallLog call_log_;
  ObserverList observers_;
  // Payload capture and drift statistics, and Options::payload_observer.
  PayloadObserverList payload_observers_;
  // Sampled calls to files and sinks; outlives the calls (declared first).
  std::unique_ptr<PayloadCapture> capture_;
  // Predicted classes and drift against each version's baseline; with metrics.
  std::unique_ptr<DriftMonitor> drift_;
  std::unique_ptr<ModelManager> models_;
  std::unique_ptr<InferenceService> inference_;
  // Admits callers on every port, before their requests are read.
  std::unique_ptr<EdgeGuard> guard_;
  std::unique_ptr<ClassifierService> service_;
  std::unique_ptr<OpenInference> open_inference_;
  std::unique_ptr<ModelRepositoryExtension> v2_repository_;
  std::unique_ptr<InferenceV2Service> v2_service_;
  std::unique_ptr<ModelRepositoryService> repository_service_;
  std::unique_ptr<ReflectionV1Service> reflection_v1_;
  std::unique_ptr<ReflectionV1AlphaService> reflection_v1alpha_;
  std::unique_ptr<InferenceRunner> runner_;
  std::unique_ptr<MemoryTrimmer> memory_trimmer_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ServingState> state_;
  std::unique_ptr<RestApi> rest_api_;
  std::unique_ptr<HttpServer> http_;
  // http_ for MetricsText(), which the HTTP port may call before Start()
  // has set http_; null until then.
  std::atomic<const HttpServer*> http_for_metrics_{nullptr};
  int port_ = 0;
  std::thread first_load_;
  absl::Notification ready_;
  std::atomic<bool> shut_down_{false};
  // Set when Shutdown() closes the gRPC port: handlers answer UNAVAILABLE.
  std::atomic<bool> closing_{false};
};

}  // namespace seqserve
