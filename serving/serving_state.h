// The server's lifecycle, in one place: loading -> serving -> draining ->
// stopped, plus whether any model can answer. Readiness (gRPC health, and
// later HTTP /readyz and the v2 ready endpoints) is derived from it, and
// every change is made under one lock, so a drain that begins while the
// first load runs can never be undone by that load finishing.
#pragma once

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace seqserve {

class ServingState {
 public:
  enum class Phase { kLoading, kServing, kDraining, kStopped };

  // `on_ready_change` is called with the new readiness each time it
  // changes (and once at construction), under the state's lock, so calls
  // arrive in order; it must not call back into the state.
  explicit ServingState(std::function<void(bool ready)> on_ready_change);

  ServingState(const ServingState&) = delete;
  ServingState& operator=(const ServingState&) = delete;

  // Whether some model version is available (after every repository pass).
  void SetHasModels(bool has_models);
  // The first load finished: loading -> serving, and `then` runs under the
  // lock (starting the poller, say). Nothing happens once draining began;
  // returns whether the server is serving.
  bool FinishLoading(absl::FunctionRef<void()> then);
  // -> draining, for good; false when it already was draining or stopped.
  bool StartDraining();
  // -> stopped.
  void Stop();

  Phase phase() const;
  // Serving and some model can answer.
  bool ready() const;

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return phase_ == Phase::kServing && has_models_;
  }
  // Calls the listener when readiness changed since it last heard.
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<void(bool)> on_ready_change_;
  mutable absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kLoading;
  bool has_models_ ABSL_GUARDED_BY(mu_) = false;
  bool published_ready_ ABSL_GUARDED_BY(mu_) = false;
};

const char* PhaseName(ServingState::Phase phase);

}  // namespace seqserve
