#include "server/inference_runner.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace seqserve {

namespace {

int PoolSize(int threads) {
  return threads > 0 ? threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

InferenceRunner::InferenceRunner(const Options& options)
    : options_(options), max_passes_(PoolSize(options.threads)) {
  for (int i = 0; i < max_passes_; ++i) threads_.emplace_back([this] { Work(); });
}

InferenceRunner::~InferenceRunner() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& thread : threads_) thread.join();
}

BatchingLimits InferenceRunner::LimitsFor(const ServedModel& served) const {
  BatchingLimits limits = options_.limits;
  const v1::BatchingConfig& config = served.config.batching();
  if (config.max_batch_rows() > 0) limits.max_batch_rows = config.max_batch_rows();
  if (config.max_queue_delay_micros() > 0) {
    limits.max_queue_delay = absl::Microseconds(config.max_queue_delay_micros());
  }
  if (config.max_queued_rows() > 0) limits.max_queued_rows = config.max_queued_rows();
  return limits;
}

void InferenceRunner::Run(std::shared_ptr<const ServedModel> served,
                          absl::Span<const float> features, size_t rows,
                          absl::Time deadline, Done done) {
  uint32_t max_queued_rows;
  {
    absl::MutexLock lock(&mu_);
    if (served->model->ParameterCount() * rows <= options_.inline_max_macs &&
        queues_.empty() && passes_running_ < max_passes_ && !stopping_) {
      // A small pass, a free slot and nobody waiting: run here and now.
      ++passes_running_;
      ++stats_.passes;
      ++stats_.requests;
      stats_.rows += rows;
      mu_.Unlock();
      thread_local std::vector<Task> alone;
      alone.push_back(Task{std::move(served), features, rows, deadline, absl::Time(),
                           std::move(done)});
      RunBatch(alone);
      alone.clear();
      mu_.Lock();
      --passes_running_;
      return;
    }
    Queue& queue = queues_[served.get()];
    max_queued_rows = LimitsFor(*served).max_queued_rows;
    // An empty queue always takes a request, however large: the row limit
    // per request is PlanClassify's job.
    if (queue.rows == 0 || queue.rows + rows <= max_queued_rows) {
      queue.rows += rows;
      queue.tasks.push_back(
          Task{std::move(served), features, rows, deadline, absl::Now(), std::move(done)});
      return;
    }
  }
  std::move(done)(absl::ResourceExhaustedError(absl::StrCat(
      "model '", served->name, "' has more than ", max_queued_rows,
      " rows waiting; retry later or add replicas")));
}

InferenceRunner::Stats InferenceRunner::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool InferenceRunner::HasWork() const {
  return stopping_ || (!queues_.empty() && passes_running_ < max_passes_);
}

InferenceRunner::Queue* InferenceRunner::OldestQueue() {
  Queue* oldest = nullptr;
  for (auto& [model, queue] : queues_) {
    if (oldest == nullptr || queue.tasks.front().queued < oldest->tasks.front().queued) {
      oldest = &queue;
    }
  }
  return oldest;
}

void InferenceRunner::Work() {
  std::vector<Task> batch;  // reused: no allocation once warm
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(this, &InferenceRunner::HasWork));
    Queue* queue = OldestQueue();
    if (queue == nullptr) return;  // stopping, and nothing left to run
    const ServedModel* model = queue->tasks.front().served.get();
    const BatchingLimits limits = LimitsFor(*model);
    const absl::Time wait_until = queue->tasks.front().queued + limits.max_queue_delay;
    if (queue->rows < limits.max_batch_rows && passes_running_ > 0 && !stopping_ &&
        absl::Now() < wait_until) {
      // Busy server: give the batch a moment to fill, then look again.
      auto full_or_stopping = [this, model, &limits]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto it = queues_.find(model);
        return stopping_ || it == queues_.end() || it->second.rows >= limits.max_batch_rows;
      };
      mu_.AwaitWithDeadline(absl::Condition(&full_or_stopping), wait_until);
      continue;
    }
    // Take the first task, then whole tasks while they fit.
    size_t rows = 0;
    while (!queue->tasks.empty() &&
           (batch.empty() || rows + queue->tasks.front().rows <= limits.max_batch_rows)) {
      rows += queue->tasks.front().rows;
      batch.push_back(std::move(queue->tasks.front()));
      queue->tasks.pop_front();
    }
    queue->rows -= rows;
    if (queue->tasks.empty()) queues_.erase(model);
    ++passes_running_;
    ++stats_.passes;
    stats_.requests += batch.size();
    stats_.rows += rows;
    mu_.Unlock();
    RunBatch(batch);
    batch.clear();
    mu_.Lock();
    --passes_running_;
  }
}

void InferenceRunner::RunBatch(std::vector<Task>& batch) {
  // Per thread, reused by every pass: no allocation once warm.
  thread_local std::vector<float> features, logits;
  // Requests whose callers gave up while queued do not run.
  const absl::Time now = absl::Now();
  auto expired = std::stable_partition(batch.begin(), batch.end(),
                                       [now](const Task& t) { return t.deadline > now; });
  for (auto it = expired; it != batch.end(); ++it) {
    std::move(it->done)(
        absl::DeadlineExceededError("deadline passed while waiting for a forward pass"));
  }
  batch.erase(expired, batch.end());
  if (batch.empty()) return;

  const Sequential& model = *batch.front().served->model;
  const size_t width = model.output_width();
  size_t rows = 0;
  for (const Task& task : batch) rows += task.rows;
  absl::Span<const float> input = batch.front().features;
  if (batch.size() > 1) {
    // Stack the requests' rows; a lone request runs on its own buffer.
    features.resize(rows * model.input_width());
    size_t offset = 0;
    for (const Task& task : batch) {
      std::copy(task.features.begin(), task.features.end(), features.begin() + offset);
      offset += task.features.size();
    }
    input = features;
  }
  logits.resize(rows * width);
  const absl::Status status = model.Forward(input, rows, absl::MakeSpan(logits));
  size_t first_row = 0;
  for (Task& task : batch) {
    if (status.ok()) {
      std::move(task.done)(absl::MakeSpan(logits).subspan(first_row * width, task.rows * width));
    } else {
      std::move(task.done)(status);
    }
    first_row += task.rows;
  }
}

}  // namespace seqserve
