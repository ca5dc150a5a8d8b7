#include "serving/shadow.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "core/head.h"
#include "serving/version_routing.h"

namespace seqserve {

struct ShadowCopy::Job {
  std::string model;
  int64_t served_version = 0;
  int64_t shadow_version = 0;
  // The served version's default head: both answers are read under it.
  Head head = Head::kLogits;
  float threshold = 0.5f;
  size_t rows = 0;
  size_t input_width = 0;
  size_t output_width = 0;
  // The features are the served version's prepared ones: a shadow reads
  // them only when it prepares rows the same way.
  std::shared_ptr<const Preprocessing> preprocessing;
  std::vector<float> features;
  std::vector<float> served_logits;
};

ShadowCopy::ShadowCopy() = default;
ShadowCopy::ShadowCopy(ShadowRunner* owner, std::unique_ptr<Job> job)
    : owner_(owner), job_(std::move(job)) {}
ShadowCopy::ShadowCopy(ShadowCopy&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), job_(std::move(other.job_)) {}
ShadowCopy& ShadowCopy::operator=(ShadowCopy&& other) noexcept {
  if (this != &other) {
    if (job_ != nullptr) owner_->Release(job_->rows);
    owner_ = std::exchange(other.owner_, nullptr);
    job_ = std::move(other.job_);
  }
  return *this;
}
ShadowCopy::~ShadowCopy() {
  if (job_ != nullptr) owner_->Release(job_->rows);
}

namespace {

ShadowRecord RecordOf(const ShadowCopy::Job& job, ShadowRecord::Outcome outcome) {
  ShadowRecord record;
  record.outcome = outcome;
  record.model = job.model;
  record.served_version = job.served_version;
  record.shadow_version = job.shadow_version;
  return record;
}

// What a shadow pass's error means for its copy.
ShadowRecord::Outcome OutcomeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kCancelled:    // Stop() came first
    case absl::StatusCode::kUnavailable:  // the runner's grace ended
      return ShadowRecord::Outcome::kShutdown;
    case absl::StatusCode::kResourceExhausted:  // the version's own queue is full
      return ShadowRecord::Outcome::kQueueFull;
    default:
      return ShadowRecord::Outcome::kFailed;
  }
}

}  // namespace

ShadowRunner::ShadowRunner(ModelManager* models, InferenceRunner* runner,
                           RequestObserver* observer, Limits limits)
    : models_(models), runner_(runner), observer_(observer), limits_(limits) {}

ShadowRunner::~ShadowRunner() {
  Stop();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](size_t* pending) { return *pending == 0; }, &pending_calls_));
}

int64_t ShadowRunner::SampledVersion(const ServedModel& served, absl::string_view request_id) {
  if (!served.config.has_shadow()) return 0;
  const v1::ShadowConfig& shadow = served.config.shadow();
  if (shadow.version() == served.version || shadow.percent() == 0) return 0;
  return ShadowPoint(request_id) < shadow.percent() ? shadow.version() : 0;
}

ShadowCopy ShadowRunner::Take(const ServedModel& served, int64_t shadow_version,
                              absl::Span<const float> features, size_t rows,
                              absl::Span<const float> logits) {
  ShadowRecord::Outcome refused = ShadowRecord::Outcome::kShutdown;
  bool reserved = false;
  if (!stopped_.load()) {
    absl::MutexLock lock(&mu_);
    reserved = pending_calls_ < limits_.max_pending_calls &&
               pending_rows_ + rows <= limits_.max_pending_rows;
    if (reserved) {
      ++pending_calls_;
      pending_rows_ += rows;
    }
    refused = ShadowRecord::Outcome::kQueueFull;
  }
  try {  // on the served pass's callback: nothing may throw past here
    auto job = std::make_unique<ShadowCopy::Job>();
    job->model = served.name;
    job->served_version = served.version;
    job->shadow_version = shadow_version;
    if (!reserved) {
      Report(RecordOf(*job, refused));
      return ShadowCopy();
    }
    job->head = served.default_head;
    job->threshold = served.threshold;
    job->rows = rows;
    job->input_width = static_cast<size_t>(served.model->input_width());
    job->output_width = static_cast<size_t>(served.model->output_width());
    job->preprocessing = served.preprocessing;
    job->features.assign(features.begin(), features.end());
    job->served_logits.assign(logits.begin(), logits.end());
    return ShadowCopy(this, std::move(job));
  } catch (const std::bad_alloc&) {
    if (reserved) Release(rows);
    return ShadowCopy();  // no memory to copy, nor to tell of it
  }
}

void ShadowRunner::Start(ShadowCopy copy) {
  if (!copy) return;
  std::unique_ptr<ShadowCopy::Job> job = std::move(copy.job_);
  copy.owner_ = nullptr;
  // The shadow as the repository has it now; it must take the same rows,
  // prepared the same way, and give as many scores.
  auto shadow = models_->Find(job->model, job->shadow_version);
  if (!shadow.ok() ||
      static_cast<size_t>((*shadow)->model->input_width()) != job->input_width ||
      !(*(*shadow)->preprocessing == *job->preprocessing) ||
      static_cast<size_t>((*shadow)->model->output_width()) != job->output_width) {
    Release(job->rows);
    Report(RecordOf(*job, ShadowRecord::Outcome::kFailed));
    return;
  }
  // The span is read before the job moves into the callback (a moved
  // vector keeps its buffer).
  const absl::Span<const float> features = job->features;
  const size_t rows = job->rows;
  runner_->Run(
      std::move(*shadow), features, rows, absl::InfiniteFuture(),
      [this, job = std::move(job)](absl::StatusOr<InferenceRunner::PassOutput> output) mutable {
        Finish(*job, std::move(output));
      },
      [this] { return stopped_.load(std::memory_order_relaxed); },
      InferenceRunner::Priority::kBackground);
}

void ShadowRunner::Finish(ShadowCopy::Job& job,
                          absl::StatusOr<InferenceRunner::PassOutput> output) {
  ShadowRecord record = RecordOf(job, ShadowRecord::Outcome::kCompared);
  if (!output.ok()) {
    record.outcome = OutcomeOf(output.status());
  } else {
    try {  // on an inference thread: nothing may throw past here
      const size_t width = job.output_width;
      // Both answers under the served version's head, in place: the
      // shadow's logits are the runner's scratch until this returns.
      absl::Span<float> served = absl::MakeSpan(job.served_logits);
      absl::Span<float> shadow = output->logits;
      ApplyHead(job.head, width, served);
      ApplyHead(job.head, width, shadow);
      record.rows = job.rows;
      record.score_differences.reserve(job.rows);
      for (size_t r = 0; r < job.rows; ++r) {
        const absl::Span<const float> a = served.subspan(r * width, width);
        const absl::Span<const float> b = shadow.subspan(r * width, width);
        if (PredictedClass(job.head, a, job.threshold) ==
            PredictedClass(job.head, b, job.threshold)) {
          ++record.agreed_rows;
        }
        float largest = 0;
        for (size_t j = 0; j < width; ++j) {
          const float difference = std::fabs(a[j] - b[j]);
          largest = std::isfinite(difference) ? std::max(largest, difference)
                                              : std::numeric_limits<float>::infinity();
        }
        record.score_differences.push_back(largest);
      }
    } catch (const std::bad_alloc&) {
      record = RecordOf(job, ShadowRecord::Outcome::kFailed);
    }
  }
  Report(record);
  // Last: once the room is back, a stopping runner may be destroyed.
  Release(job.rows);
}

void ShadowRunner::Release(size_t rows) {
  absl::MutexLock lock(&mu_);
  --pending_calls_;
  pending_rows_ -= rows;
}

void ShadowRunner::Report(const ShadowRecord& record) {
  if (observer_ != nullptr) observer_->OnShadow(record);
}

void ShadowRunner::Stop() { stopped_.store(true); }

}  // namespace seqserve
