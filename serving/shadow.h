// Shadow versions: a model's config may name a version (ShadowConfig) that
// gets a copy of a sampled share of the calls served by its traffic. The
// copy runs through the same InferenceRunner as any call, but as
// background work (on the runner's background thread, at the lowest CPU
// priority, while no caller's rows wait), queued as the caller's answer is
// complete: the answer never waits for the shadow's pass, and is never
// changed or failed by it. Each copied row's answers are compared, and the
// comparison told to the RequestObserver.
//
// Copies wait in a bounded queue; one that does not fit, or that is still
// waiting when the server stops, is dropped and counted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "serving/inference_runner.h"
#include "serving/model_manager.h"
#include "serving/request_observer.h"
#include "serving/served_model.h"

namespace seqserve {

class ShadowRunner;

// One served call's rows and logits, copied for its shadow pass. A copy
// dropped without being started gives its room in the queue back.
class ShadowCopy {
 public:
  ShadowCopy();
  ShadowCopy(ShadowCopy&& other) noexcept;
  ShadowCopy& operator=(ShadowCopy&& other) noexcept;
  ~ShadowCopy();

  explicit operator bool() const { return job_ != nullptr; }

  struct Job;  // what is copied; shadow.cc's own

 private:
  friend class ShadowRunner;
  ShadowCopy(ShadowRunner* owner, std::unique_ptr<Job> job);

  ShadowRunner* owner_ = nullptr;
  std::unique_ptr<Job> job_;
};

class ShadowRunner {
 public:
  struct Limits {
    // Copies queued or in their pass at once, and their rows together;
    // beyond either, a copy is dropped (reason queue_full). A call with
    // more rows than max_pending_rows is never copied.
    size_t max_pending_calls = 64;
    size_t max_pending_rows = 8192;
  };

  // `models` and `runner` must outlive this; `observer` (may be null) is
  // told of every copy.
  ShadowRunner(ModelManager* models, InferenceRunner* runner, RequestObserver* observer,
               Limits limits);
  // Stop(), then waits for the copies the runner still holds to be
  // answered (without running, unless their pass had begun).
  ~ShadowRunner();

  ShadowRunner(const ShadowRunner&) = delete;
  ShadowRunner& operator=(const ShadowRunner&) = delete;

  // The version a call answered by `served`, which named no version and no
  // label, is copied to: the config's shadow when the call falls in its
  // sample (ShadowPoint of `request_id`, at random without one); 0 when
  // the model has no shadow, the call is not sampled, or `served` is the
  // shadow itself.
  static int64_t SampledVersion(const ServedModel& served, absl::string_view request_id);

  // Reserves room and copies the call's `rows` rows of `features` (in the
  // model's input order) and the served `logits`, before the heads change
  // them. Empty, the drop told to the observer, when the queue is full or
  // the runner stopped.
  ShadowCopy Take(const ServedModel& served, int64_t shadow_version,
                  absl::Span<const float> features, size_t rows,
                  absl::Span<const float> logits);

  // Queues the copy's pass on the shadow version; the comparison is told
  // to the observer from the thread that ran it. Quick: never runs a pass
  // on this thread.
  void Start(ShadowCopy copy);

  // From now on copies are dropped (reason shutdown), and the queued ones
  // are answered without running when the runner reaches them: a shutdown
  // never waits for a shadow's work.
  void Stop();

 private:
  friend class ShadowCopy;
  // Gives back the room of a copy that ended or was dropped.
  void Release(size_t rows);
  void Report(const ShadowRecord& record);
  // Runs on the runner's thread once the shadow's pass answered.
  void Finish(ShadowCopy::Job& job, absl::StatusOr<InferenceRunner::PassOutput> output);

  ModelManager* const models_;
  InferenceRunner* const runner_;
  RequestObserver* const observer_;
  const Limits limits_;
  std::atomic<bool> stopped_{false};
  absl::Mutex mu_;
  size_t pending_calls_ ABSL_GUARDED_BY(mu_) = 0;
  size_t pending_rows_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace seqserve
