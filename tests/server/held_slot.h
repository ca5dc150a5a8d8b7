// Holds one inference slot of a runner with a pass whose callback waits,
// so that requests behind it queue: tests of queueing, deadlines and
// shutdown then do not depend on how fast the machine is.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "serving/inference_runner.h"

namespace seqserve::testing {

class HeldSlot {
 public:
  // Returns once the slot is held; the pass runs `served` on one zero row.
  HeldSlot(InferenceRunner& runner, std::shared_ptr<const ServedModel> served)
      : row_(served->model->input_width(), 0.0f) {
    thread_ = std::thread([this, &runner, served = std::move(served)] {
      runner.Run(served, row_, 1, absl::InfiniteFuture(),
                 [this](absl::StatusOr<InferenceRunner::PassOutput>) {
                   held_.Notify();
                   release_.WaitForNotification();
                 });
    });
    held_.WaitForNotification();
  }
  // Frees the slot and waits for the pass to end.
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (thread_.joinable()) thread_.join();
  }
  ~HeldSlot() { Release(); }

  HeldSlot(const HeldSlot&) = delete;
  HeldSlot& operator=(const HeldSlot&) = delete;

 private:
  const std::vector<float> row_;
  absl::Notification held_, release_;
  std::thread thread_;
};

}  // namespace seqserve::testing
