#include "serving/serving_state.h"

#include <utility>

namespace seqserve {

ServingState::ServingState(std::function<void(bool ready)> on_ready_change)
    : on_ready_change_(std::move(on_ready_change)) {
  absl::MutexLock lock(&mu_);
  if (on_ready_change_) on_ready_change_(false);
}

void ServingState::Publish() {
  const bool ready = Ready();
  if (ready == published_ready_) return;
  published_ready_ = ready;
  if (on_ready_change_) on_ready_change_(ready);
}

void ServingState::SetHasModels(bool has_models) {
  absl::MutexLock lock(&mu_);
  has_models_ = has_models;
  Publish();
}

bool ServingState::FinishLoading(absl::FunctionRef<void()> then) {
  absl::MutexLock lock(&mu_);
  if (phase_ != Phase::kLoading) return phase_ == Phase::kServing;
  phase_ = Phase::kServing;
  then();
  Publish();
  return true;
}

bool ServingState::StartDraining() {
  absl::MutexLock lock(&mu_);
  if (phase_ == Phase::kDraining || phase_ == Phase::kStopped) return false;
  phase_ = Phase::kDraining;
  Publish();
  return true;
}

void ServingState::Stop() {
  absl::MutexLock lock(&mu_);
  phase_ = Phase::kStopped;
  Publish();
}

ServingState::Phase ServingState::phase() const {
  absl::MutexLock lock(&mu_);
  return phase_;
}

bool ServingState::ready() const {
  absl::MutexLock lock(&mu_);
  return Ready();
}

const char* PhaseName(ServingState::Phase phase) {
  switch (phase) {
    case ServingState::Phase::kLoading:
      return "loading";
    case ServingState::Phase::kServing:
      return "serving";
    case ServingState::Phase::kDraining:
      return "draining";
    case ServingState::Phase::kStopped:
      return "stopped";
  }
  return "unknown";
}

}  // namespace seqserve
