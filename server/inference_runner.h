// Runs forward passes for the RPC handlers on a fixed pool of inference
// threads, so gRPC's threads only parse, queue and answer.
//
// The call's shape (the model, the rows, a completion callback that sees
// the logits) is what a dynamic batcher needs, so one can take this class's
// place without touching the handlers.
#pragma once

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/served_model.h"

namespace seqserve {

class InferenceRunner {
 public:
  // The logits of a finished pass, valid only during the callback.
  using Done = absl::AnyInvocable<void(absl::StatusOr<absl::Span<float>>) &&>;

  // Starts `threads` inference threads (at least one).
  explicit InferenceRunner(int threads);
  // Runs what is queued, then stops the threads.
  ~InferenceRunner();

  InferenceRunner(const InferenceRunner&) = delete;
  InferenceRunner& operator=(const InferenceRunner&) = delete;

  // Queues a forward pass of `rows` rows; `done` runs on an inference thread
  // with rows x output-width logits. `features` must stay valid until then.
  void Run(std::shared_ptr<const ServedModel> served,
           absl::Span<const float> features, size_t rows, Done done);

 private:
  struct Task {
    std::shared_ptr<const ServedModel> served;
    absl::Span<const float> features;
    size_t rows;
    Done done;
  };

  void Work();

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace seqserve
