// Runs forward passes for the RPC handlers on a fixed pool of inference
// threads, batching dynamically: rows of concurrent requests for the same
// model version are stacked into one forward pass and split back.
//
// A free thread takes whatever is queued at once, so a lone request on an
// idle server runs without waiting; under load, requests that queue up while
// every thread is busy leave together as one matrix product. With a queue
// delay configured, a thread also waits up to that long for more rows, but
// only while another pass is running. Each model's queue is bounded
// (RESOURCE_EXHAUSTED beyond it); requests whose deadline passes while
// queued are answered DEADLINE_EXCEEDED without running.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/served_model.h"

namespace seqserve {

// How one model's requests are batched. A model's config.textproto may
// override each field (see BatchingConfig in proto/seqserve/v1/config.proto).
struct BatchingLimits {
  // Most rows in one forward pass; 1 turns stacking off. A single request
  // with more rows still runs, alone.
  uint32_t max_batch_rows = 256;
  // How long a pass may wait for more rows while another pass runs.
  absl::Duration max_queue_delay = absl::ZeroDuration();
  // Rows allowed to wait per model version.
  uint32_t max_queued_rows = 65536;
};

class InferenceRunner {
 public:
  struct Options {
    // Inference threads; 0 means one per core.
    int threads = 0;
    // For models whose config does not say otherwise.
    BatchingLimits limits;
  };

  // The logits of a finished pass, valid only during the callback.
  using Done = absl::AnyInvocable<void(absl::StatusOr<absl::Span<float>>) &&>;

  explicit InferenceRunner(const Options& options);
  // Runs what is queued, then stops the threads.
  ~InferenceRunner();

  InferenceRunner(const InferenceRunner&) = delete;
  InferenceRunner& operator=(const InferenceRunner&) = delete;

  // Queues `rows` rows; `done` runs on an inference thread with rows x
  // output-width logits, or at once with RESOURCE_EXHAUSTED when the
  // model's queue is full. `features` must stay valid until `done` runs.
  void Run(std::shared_ptr<const ServedModel> served,
           absl::Span<const float> features, size_t rows, absl::Time deadline,
           Done done);

  // The limits that apply to `served`.
  BatchingLimits LimitsFor(const ServedModel& served) const;

  // Totals since start, for logs and tests: forward passes run, the
  // requests and rows they carried.
  struct Stats {
    uint64_t passes = 0;
    uint64_t requests = 0;
    uint64_t rows = 0;
  };
  Stats stats() const;

 private:
  struct Task {
    std::shared_ptr<const ServedModel> served;
    absl::Span<const float> features;
    size_t rows = 0;
    absl::Time deadline;
    absl::Time queued;
    Done done;
  };
  struct Queue {
    std::deque<Task> tasks;
    size_t rows = 0;
  };

  void Work();
  // The queue whose first task waited longest; null when all are empty.
  Queue* OldestQueue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs one forward pass over `batch` and answers every task in it.
  void RunBatch(std::vector<Task>& batch, std::vector<float>& features,
                std::vector<float>& logits);

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<const ServedModel*, Queue> queues_ ABSL_GUARDED_BY(mu_);
  int busy_threads_ ABSL_GUARDED_BY(mu_) = 0;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace seqserve
