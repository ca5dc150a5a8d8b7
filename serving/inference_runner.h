// Runs forward passes for the RPC handlers, at most one per core at a time,
// batching dynamically: rows of concurrent requests for the same model
// version are stacked into one forward pass and split back.
//
// A small pass (see Options::inline_max_macs) that finds a free slot and
// nothing queued runs at once on the calling thread: for tiny models a
// thread hop costs more than the pass. Everything else goes to a fixed pool
// of inference threads, which keeps gRPC's threads free for I/O; a free pool
// thread takes work at once, so an idle server adds no delay. Under load,
// requests queue and leave together as one matrix product. With a queue
// delay configured, a pool thread also waits up to that long for more rows,
// but only while another pass is running. Each model's queue is bounded
// (RESOURCE_EXHAUSTED beyond it); requests whose deadline passes while
// queued are answered DEADLINE_EXCEEDED without running.
//
// Background work (a shadow version's copies of served calls) waits in
// queues of its own and runs on a thread of its own, one pass at a time,
// at the lowest CPU priority (Linux's SCHED_IDLE): never on a caller's
// thread or in a slot of the pool, never in a pass with a caller's rows.
// It starts only once callers' passes have left the runner quiet for a
// moment (Options::background_quiet), and runs in chunks of rows
// (Options::background_chunk_macs) that pause while callers are back:
// SCHED_IDLE alone still let a long pass keep a core from a caller's
// thread that had just woken, for up to a scheduler tick.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "serving/served_model.h"

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
    // Inference threads, and forward passes at once; 0 means one per core.
    int threads = 0;
    // Passes of at most this many multiply-adds (parameters x rows) run on
    // the calling thread when a slot is free; 0 sends every pass to the pool.
    uint64_t inline_max_macs = 1 << 16;
    // For models whose config does not say otherwise.
    BatchingLimits limits;
    // Background work starts only after no caller's pass has run or
    // waited for this long.
    absl::Duration background_quiet = absl::Milliseconds(2);
    // A background pass runs at most this many multiply-adds (parameters x
    // rows, at least one row) before it checks for callers and, while any
    // are back, pauses.
    uint64_t background_chunk_macs = 16 << 20;
    // The background thread at the lowest CPU priority; off only in tests
    // that need it to run on a busy machine.
    bool background_idle_priority = true;
  };

  // What a request got from its forward pass.
  struct PassOutput {
    // The request's rows x output-width logits, valid only during `done`.
    absl::Span<float> logits;
    // How long the request waited for its pass (zero when it ran inline).
    absl::Duration queued;
    // Rows in the pass that carried it, its own and others'.
    size_t batch_rows = 0;
    // How long that pass's forward computation took.
    absl::Duration inference;
    // True for one request of each pass, so a pass is counted once.
    bool first_in_pass = false;
  };
  using Done = absl::AnyInvocable<void(absl::StatusOr<PassOutput>) &&>;
  // True once the caller gave up (a cancelled call); may be called from
  // any thread until `done` runs.
  using Cancelled = std::function<bool()>;
  // Whose rows a pass carries: a caller's, or work that may wait for
  // spare capacity (see the top of this file).
  enum class Priority { kCaller, kBackground };

  explicit InferenceRunner(const Options& options);
  // Runs what is queued, then stops the threads.
  ~InferenceRunner();

  InferenceRunner(const InferenceRunner&) = delete;
  InferenceRunner& operator=(const InferenceRunner&) = delete;

  // Runs or queues `rows` rows; `done` runs with rows x output-width logits
  // (on this thread when the pass ran inline, else on a pool thread), or at
  // once: INVALID_ARGUMENT when `features` is not rows x input width,
  // RESOURCE_EXHAUSTED when the model's queue is full, UNAVAILABLE after
  // CancelQueued(). `features`
  // must stay valid until `done` runs. `done` may call Run() again: such a
  // call always queues. A request whose deadline passed or whose
  // `cancelled` says so by the time its pass starts is answered
  // DEADLINE_EXCEEDED or CANCELLED without running. Background work is
  // always queued, and its `done` runs on the background thread.
  void Run(std::shared_ptr<const ServedModel> served,
           absl::Span<const float> features, size_t rows, absl::Time deadline,
           Done done, Cancelled cancelled = nullptr, Priority priority = Priority::kCaller);

  // Work that is not one forward pass over rows (an explanation: forward
  // and backward passes over `cost_rows` rows of evaluations, built by the
  // job itself). Queued with the model's callers, its `cost_rows` counted
  // against the model's queued rows, and run by a pool thread in a pass of
  // its own, never stacked with other rows. `job` gets a stop test, true
  // once the shutdown's grace is over, the deadline has passed or the
  // caller gave up: it then returns CANCELLED, answered UNAVAILABLE,
  // DEADLINE_EXCEEDED or CANCELLED. `done` gets its status as a PassOutput
  // without logits, or the refusals and answers Run() gives.
  using Job = absl::AnyInvocable<absl::Status(const std::function<bool()>& stop) &&>;
  void RunJob(std::shared_ptr<const ServedModel> served, size_t cost_rows, absl::Time deadline,
              Job job, Done done, Cancelled cancelled = nullptr);

  // Answers every queued request UNAVAILABLE now (retryable elsewhere),
  // without running it, and every later one at once; a pass that is running
  // stops at its next chunk of rows and answers the same: the end of a
  // shutdown's grace period, after which nothing may still wait for a pass.
  void CancelQueued();

  // The limits that apply to `served`.
  BatchingLimits LimitsFor(const ServedModel& served) const;

  // Totals since start, for logs and tests: forward passes that ran, the
  // requests and rows they carried, and requests answered without running.
  struct Stats {
    uint64_t passes = 0;
    uint64_t requests = 0;
    uint64_t rows = 0;
    uint64_t expired = 0;  // deadline passed before the pass
    uint64_t cancelled = 0;  // caller gone, or cancelled by CancelQueued()
    // Times a background pass stopped between chunks for callers.
    uint64_t background_pauses = 0;
  };
  Stats stats() const;

  // Rows waiting for a forward pass, per model version with any waiting.
  struct QueuedRows {
    std::string model;
    int64_t version = 0;
    size_t rows = 0;
  };
  std::vector<QueuedRows> queued_rows() const;

 private:
  struct Task {
    std::shared_ptr<const ServedModel> served;
    absl::Span<const float> features;
    size_t rows = 0;
    absl::Time deadline;
    absl::Time queued;
    Done done;
    Cancelled cancelled;
    Job job;  // set for RunJob()'s work: `rows` is then its cost
  };
  struct Queue {
    std::deque<Task> tasks;
    size_t rows = 0;
  };
  using Queues = absl::flat_hash_map<const ServedModel*, Queue>;

  void Work();
  // The background thread's loop, and its start; false when no thread
  // could be made.
  void WorkInBackground();
  bool StartBackgroundThread() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The queue of `queues` whose first task waited longest; null when all
  // are empty.
  static Queue* OldestQueue(Queues& queues);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasBackgroundWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No caller's rows wait or run.
  bool CallersIdle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A caller's pass ended: background work waits for quiet from now.
  void CallersPassEnded() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits until callers have been idle for Options::background_quiet;
  // true at once when the runner is stopping (what is left is answered),
  // false once CancelQueued() was called. Adds one to *pauses (unless
  // null) as it begins to wait.
  bool AwaitQuietCallers(uint64_t* pauses) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the first task of `queue`, then whole tasks while the pass stays
  // within `max_rows` (none after or before a job), into `batch`; erases
  // the queue from `queues` once empty.
  static void TakeBatch(Queues& queues, const ServedModel* model, uint32_t max_rows,
                        std::vector<Task>* batch);
  // Runs one forward pass over `batch` and answers every task in it.
  // Never throws: an allocation failure is an answer.
  void RunBatch(absl::Span<Task> batch, bool background = false);
  void RunPass(absl::Span<Task> batch, bool background);
  // A background pass's forward computation, chunk by chunk, pausing for
  // callers between chunks.
  absl::Status ForwardInChunks(const Sequential& model, absl::Span<const float> input,
                               size_t rows, absl::Span<float> logits);
  void RunJobPass(Task& task);
  // Adds to the totals; called before the answers go out.
  void Count(const Stats& ran) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  Queues queues_ ABSL_GUARDED_BY(mu_);  // callers'
  Queues background_queues_ ABSL_GUARDED_BY(mu_);
  const int max_passes_;  // forward passes at once: the pool's size
  int passes_running_ ABSL_GUARDED_BY(mu_) = 0;  // callers'
  absl::Time callers_last_pass_end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  Stats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_all_ ABSL_GUARDED_BY(mu_) = false;  // CancelQueued() was called
  // The same, read by running passes between their row chunks.
  std::atomic<bool> abandon_passes_{false};
  std::vector<std::thread> threads_;
  std::thread background_thread_ ABSL_GUARDED_BY(mu_);  // from the first background Run()
};

}  // namespace seqserve
