// The seam for metrics and access logs: told of every call's start and end,
// whatever its protocol, without touching a handler; and of what each copy
// of a served call did on its model's shadow version.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace seqserve {

// One call as the observer sees it. At the start only protocol, method and
// model are set; the end adds the rest.
struct CallRecord {
  std::string protocol;
  std::string method;
  std::string peer;  // as the transport names the caller
  // The call's id (CallInfo::request_id: the caller's, or one made for
  // it), and its trace id when a traceparent came (CallInfo::trace_id).
  std::string request_id;
  std::string trace_id;
  // The caller's name from the authenticator (a token's name); empty when
  // unnamed or unauthenticated.
  std::string caller;
  absl::Time start;
  std::string model;  // as the caller asked; empty for ListModels
  // Whether the repository has a model of that name (a name a caller made
  // up must not become a metric label).
  bool model_known = false;
  int64_t version = 0;  // the version that answered; 0 when none did
  size_t rows = 0;
  // Explain: the attribution method ("integrated_gradients", ...); empty
  // for every other call.
  std::string explanation;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string error;  // the status message of a call that failed
  absl::Duration queued;  // waiting for a forward pass
  size_t batch_rows = 0;  // rows in the pass that carried the call
  absl::Duration inference;  // that pass's forward computation
  bool first_in_pass = false;  // one call per pass says so: count passes once
  absl::Duration duration;  // from start to end
};

// One copy of a served call for the model's shadow version (ShadowConfig):
// its rows compared, or why it was dropped.
struct ShadowRecord {
  enum class Outcome {
    kCompared,
    kQueueFull,  // too many copies waiting: dropped before it was queued
    kShutdown,   // the server stopped first
    kFailed,     // the shadow could not answer (not loaded, widths differ)
  };
  Outcome outcome = Outcome::kCompared;
  std::string model;
  int64_t served_version = 0;
  int64_t shadow_version = 0;
  // With kCompared: rows compared, of which `agreed_rows` had the same
  // predicted class under the served version's default head, and each
  // row's largest absolute difference between the two versions' scores
  // under that head (+Inf where either is not finite).
  size_t rows = 0;
  size_t agreed_rows = 0;
  std::vector<float> score_differences;
};

// Called on the threads that run calls: implementations must be
// thread-safe and quick (count, do not block).
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void OnStart(const CallRecord& call) = 0;
  virtual void OnEnd(const CallRecord& call) = 0;
  // Told once per copy made or dropped; a drop may be told on the thread
  // that answers the served call.
  virtual void OnShadow(const ShadowRecord& /*shadow*/) {}
};

}  // namespace seqserve
