// The protocol-neutral inference path. Every front end (gRPC, REST, the
// Open Inference Protocol) admits the caller at its edge, parses its wire
// format into the seqserve.v1 request messages, fills a CallInfo and calls
// one of these; each call then takes the same steps whatever its protocol:
//
//   look up the model -> plan (check the request)
//     -> InferenceRunner (batching, forward pass) -> build the response
//     [-> a copy for the model's shadow version (serving/shadow.h)]
//
// with the RequestObserver told of its start and end and the in-flight
// count kept here, once for every listener.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "seqserve/v1/classifier.pb.h"
#include "seqserve/v1/repository.pb.h"
#include "serving/call.h"
#include "serving/classify.h"
#include "serving/explain.h"
#include "serving/inference_runner.h"
#include "serving/model_manager.h"
#include "serving/payload_observer.h"
#include "serving/request_observer.h"
#include "serving/serial_worker.h"
#include "serving/shadow.h"

namespace seqserve {

class InferenceService {
 public:
  struct Options {
    // Per-request limits (rows unless a model's config sets its own).
    RequestLimits limits;
    // Told of every call; not owned, may be null.
    RequestObserver* observer = nullptr;
    // Told of what a load or unload call changed (readiness follows it).
    ModelManager::Refreshed models_changed;
    // Told of every answered Classify call's rows (payload capture, drift);
    // not owned, may be null.
    PayloadObserver* payloads = nullptr;
    // How many copies for shadow versions may wait.
    ShadowRunner::Limits shadow;
  };

  // `models` and `runner` must outlive the service.
  InferenceService(ModelManager* models, InferenceRunner* runner, Options options);

  InferenceService(const InferenceService&) = delete;
  InferenceService& operator=(const InferenceService&) = delete;

  using Done = absl::AnyInvocable<void(absl::Status) &&>;

  // Classifies the request's rows into `response`. `done` runs once, on
  // this thread, an inference thread or the shutdown's timer thread, when
  // `response` is complete (OK) or with the error; `request` and
  // `response` must stay valid until then.
  void Classify(const v1::ClassifyRequest& request, CallInfo call,
                v1::ClassifyResponse* response, Done done);

  // Several answers from one pass over the request's rows (the Open
  // Inference Protocol's outputs): (*responses)[i] answers outputs[i]; the
  // request's own output and top_k are not used. `tensors`, when not
  // null, is checked and filled in as PlanOutputs says. `outputs`,
  // `tensors` and `responses` must stay valid until `done` runs.
  void ClassifyOutputs(const v1::ClassifyRequest& request,
                       const std::vector<OutputRequest>& outputs, TensorInterface* tensors,
                       CallInfo call, std::vector<v1::ClassifyResponse>* responses, Done done);

  // How much each feature of the request's rows moved one class's score
  // (serving/explain.h): checked like Classify, then computed as one piece
  // of work in the runner, counted as the rows it evaluates. `done` as for
  // Classify.
  // `tensors`, when not null, is checked and filled in as PlanOutputs says
  // (a tensor protocol's declared input).
  void Explain(const v1::ExplainRequest& request, CallInfo call,
               v1::ExplainResponse* response, Done done, TensorInterface* tensors = nullptr);

  // A call its front end refused before it could say what it asks (a body
  // that does not parse): accounted like any other call, answered `status`.
  absl::Status Refuse(const CallInfo& call, absl::Status status);

  // Widths, labels, layers, heads and versions of a model version, all from
  // one snapshot of the repository.
  absl::Status DescribeModel(const v1::GetModelMetadataRequest& request, const CallInfo& call,
                             v1::GetModelMetadataResponse* response);

  // Every model with its versions' states and errors.
  absl::Status ListModels(const CallInfo& call, v1::ListModelsResponse* response);

  // One model's versions with their states and errors (only `version`, or
  // the one `label` names, unless both are empty), from one snapshot.
  // NOT_FOUND for a model, version or label the server does not know, and
  // for a model with no version at all (saying why, when its directory or
  // config does).
  absl::Status ModelStatus(const std::string& model, int64_t version, const std::string& label,
                           const CallInfo& call, v1::ModelStatus* response);

  // OK when `version` of `name` (0: any) can answer now; else why not
  // (NOT_FOUND, UNAVAILABLE), for readiness endpoints.
  absl::Status ModelReady(const std::string& name, int64_t version) const;

  // Model control, as ModelManager's Index, Load and Unload say. A load
  // runs on a thread of its own (it may take a while) and `done` runs
  // there; `status` must stay valid until then.
  absl::Status RepositoryIndex(bool ready, const CallInfo& call,
                               v1::RepositoryIndexResponse* index);
  void LoadModel(const std::string& model, std::optional<v1::ModelConfig> config,
                 const CallInfo& call, v1::ModelStatus* status, Done done);
  absl::Status UnloadModel(const std::string& model, const CallInfo& call);

  // Calls started and not yet finished, over every protocol.
  int calls_in_flight() const { return calls_in_flight_.load(); }
  // When the latest call started, over every protocol; long ago before the
  // first.
  absl::Time last_call_started() const {
    return absl::FromUnixNanos(last_call_started_ns_.load(std::memory_order_relaxed));
  }

  // Shadow versions get no more copies, and those waiting are dropped
  // (ShadowRunner::Stop): the start of a shutdown.
  void StopShadows() { shadows_.Stop(); }

 private:
  // One call's accounting, from its start to its Finish().
  struct CallState {
    CallRecord record;
    Done done;
  };
  std::unique_ptr<CallState> Start(const CallInfo& call, std::string model, Done done);
  void Finish(std::unique_ptr<CallState> state, absl::Status status);
  // A call's first steps on any inference path: its deadline, then the
  // version that answers it, recorded in `state`.
  absl::StatusOr<std::shared_ptr<const ServedModel>> Arrive(const std::string& model,
                                                            int64_t version,
                                                            const std::string& label,
                                                            const CallInfo& call,
                                                            CallState& state);
  // Classify and ClassifyOutputs: outputs null means the request's own.
  using Targets = absl::InlinedVector<v1::ClassifyResponse*, 1>;
  void Pass(const v1::ClassifyRequest& request, const std::vector<OutputRequest>* outputs,
            TensorInterface* tensors, CallInfo call, Targets targets, Done done);

  // Tells the payload observers of an answered call.
  void ShowPayload(const ServedModel& served, const CallRecord& call, const RawRowsView& raw,
                   absl::Span<const float> inputs, const v1::ClassifyResponse& response);

  ModelManager* models_;
  InferenceRunner* runner_;
  const Options options_;
  std::atomic<int> calls_in_flight_{0};
  std::atomic<int64_t> last_call_started_ns_{std::numeric_limits<int64_t>::min()};
  ShadowRunner shadows_;
  // Loads, one at a time off the transports' threads; destroyed first, so
  // a load still queued finishes while the rest exists.
  SerialWorker loads_;
};

}  // namespace seqserve
