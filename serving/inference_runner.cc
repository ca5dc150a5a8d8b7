#include "serving/inference_runner.h"

#include <algorithm>
#include <new>
#include <system_error>
#include <utility>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "absl/strings/str_cat.h"

namespace seqserve {

namespace {

// Passes running on this thread's stack: nonzero inside a `done` callback.
thread_local int pass_depth = 0;

int PoolSize(int threads) {
  return threads > 0 ? threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// The calling thread gets a core only when no other thread wants it, so
// that background work never takes CPU from callers: SCHED_IDLE, else the
// highest nice value. Lowering a thread's priority needs no privilege.
void LowestCpuPriority() {
#ifdef __linux__
  sched_param param{};
  param.sched_priority = 0;
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  }
#endif
}

absl::Status QueueFull(const ServedModel& served, uint32_t max_queued_rows) {
  return absl::ResourceExhaustedError(absl::StrCat("model '", served.name, "' has more than ",
                                                   max_queued_rows,
                                                   " rows waiting; retry later or add replicas"));
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
  // No background thread starts now: background work is refused.
  std::thread background;
  {
    absl::MutexLock lock(&mu_);
    background = std::move(background_thread_);
  }
  if (background.joinable()) background.join();
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
                          absl::Time deadline, Done done, Cancelled cancelled,
                          Priority priority) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    // A `done` that calls Run() again (depth > 0) queues: running inline
    // there would reuse this thread's pass buffers while they are read.
    const size_t width = static_cast<size_t>(served->model->input_width());
    if (cancel_all_ || (priority == Priority::kBackground && stopping_)) {
      // Retryable: another replica can answer. (Background work queued
      // now might outlive the background thread.)
      refused = absl::UnavailableError("the server is shutting down; retry");
    } else if (rows == 0 || features.size() != rows * width) {
      // A stacked pass copies features by this count: check it here.
      refused = absl::InvalidArgumentError(absl::StrCat(
          "got ", features.size(), " feature values for ", rows, " rows of ", width));
    } else if (priority == Priority::kCaller && pass_depth == 0 &&
               served->model->ParameterCount() * rows <= options_.inline_max_macs &&
               queues_.empty() && passes_running_ < max_passes_ && !stopping_) {
      // A small pass, a free slot and nobody waiting: run here and now.
      ++passes_running_;
      mu_.Unlock();
      Task alone[1] = {Task{std::move(served), features, rows, deadline, absl::Time(),
                            std::move(done), std::move(cancelled), nullptr}};
      RunBatch(absl::MakeSpan(alone));
      mu_.Lock();
      --passes_running_;
      CallersPassEnded();
      return;
    } else if (priority == Priority::kBackground && !StartBackgroundThread()) {
      refused = absl::ResourceExhaustedError("no thread for background work");
    } else {
      Queue& queue = (priority == Priority::kCaller ? queues_
                                                    : background_queues_)[served.get()];
      const uint32_t max_queued_rows = LimitsFor(*served).max_queued_rows;
      // An empty queue always takes a request, however large: the row limit
      // per request is PlanClassify's job.
      if (queue.rows == 0 || queue.rows + rows <= max_queued_rows) {
        queue.rows += rows;
        queue.tasks.push_back(Task{std::move(served), features, rows, deadline, absl::Now(),
                                   std::move(done), std::move(cancelled), nullptr});
        return;
      }
      refused = QueueFull(*served, max_queued_rows);
    }
  }
  std::move(done)(refused);
}

void InferenceRunner::RunJob(std::shared_ptr<const ServedModel> served, size_t cost_rows,
                             absl::Time deadline, Job job, Done done, Cancelled cancelled) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (cancel_all_) {
      refused = absl::UnavailableError("the server is shutting down; retry");
    } else {
      Queue& queue = queues_[served.get()];
      const uint32_t max_queued_rows = LimitsFor(*served).max_queued_rows;
      if (queue.rows == 0 || queue.rows + cost_rows <= max_queued_rows) {
        queue.rows += cost_rows;
        queue.tasks.push_back(Task{std::move(served), {}, cost_rows, deadline, absl::Now(),
                                   std::move(done), std::move(cancelled), std::move(job)});
        return;
      }
      refused = QueueFull(*served, max_queued_rows);
    }
  }
  std::move(done)(refused);
}

void InferenceRunner::CancelQueued() {
  std::vector<Task> cancelled;
  {
    absl::MutexLock lock(&mu_);
    cancel_all_ = true;
    abandon_passes_ = true;
    for (Queues* queues : {&queues_, &background_queues_}) {
      for (auto& [model, queue] : *queues) {
        for (Task& task : queue.tasks) cancelled.push_back(std::move(task));
      }
      queues->clear();
    }
  }
  if (!cancelled.empty()) {
    Stats skipped;
    skipped.cancelled = cancelled.size();
    Count(skipped);
  }
  for (Task& task : cancelled) {
    std::move(task.done)(absl::UnavailableError(
        "the server shut down before a forward pass was free; retry"));
  }
}

void InferenceRunner::Count(const Stats& ran) {
  absl::MutexLock lock(&mu_);
  stats_.passes += ran.passes;
  stats_.requests += ran.requests;
  stats_.rows += ran.rows;
  stats_.expired += ran.expired;
  stats_.cancelled += ran.cancelled;
  stats_.background_pauses += ran.background_pauses;
}

InferenceRunner::Stats InferenceRunner::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool InferenceRunner::HasWork() const {
  return stopping_ || (!queues_.empty() && passes_running_ < max_passes_);
}

bool InferenceRunner::HasBackgroundWork() const {
  // Callers are waited for after this (AwaitQuietCallers); a stopping
  // runner answers what is left.
  return stopping_ || !background_queues_.empty();
}

bool InferenceRunner::CallersIdle() const { return queues_.empty() && passes_running_ == 0; }

void InferenceRunner::CallersPassEnded() { callers_last_pass_end_ = absl::Now(); }

bool InferenceRunner::AwaitQuietCallers(uint64_t* pauses) {
  // Looks again after a timed sleep rather than waiting for callers'
  // passes to end: a wait on them would wake this thread, from the
  // caller's thread, at every call.
  auto ending = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || cancel_all_; };
  bool waited = false;
  while (true) {
    if (cancel_all_) return false;
    if (stopping_) return true;
    const absl::Time now = absl::Now();
    absl::Time quiet_from = callers_last_pass_end_ + options_.background_quiet;
    if (!CallersIdle()) {
      quiet_from = now + options_.background_quiet;
    } else if (now >= quiet_from) {
      return true;
    }
    if (pauses != nullptr && !waited) ++*pauses;  // counted as the wait begins
    waited = true;
    mu_.AwaitWithDeadline(absl::Condition(&ending), quiet_from);
  }
}

InferenceRunner::Queue* InferenceRunner::OldestQueue(Queues& queues) {
  Queue* oldest = nullptr;
  for (auto& [model, queue] : queues) {
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
    Queue* queue = OldestQueue(queues_);
    if (queue == nullptr) return;  // stopping, and nothing left to run
    const ServedModel* model = queue->tasks.front().served.get();
    const BatchingLimits limits = LimitsFor(*model);
    const absl::Time wait_until = queue->tasks.front().queued + limits.max_queue_delay;
    if (queue->rows < limits.max_batch_rows && passes_running_ > 0 && !stopping_ &&
        !queue->tasks.front().job && absl::Now() < wait_until) {
      // Busy server: give the batch a moment to fill, then look again.
      // Also wake when the server goes idle: the wait is only worth it
      // while another pass runs.
      auto full_idle_or_stopping = [this, model, &limits]()
                                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto it = queues_.find(model);
        return stopping_ || passes_running_ == 0 || it == queues_.end() ||
               it->second.rows >= limits.max_batch_rows;
      };
      mu_.AwaitWithDeadline(absl::Condition(&full_idle_or_stopping), wait_until);
      continue;
    }
    TakeBatch(queues_, model, limits.max_batch_rows, &batch);
    ++passes_running_;
    mu_.Unlock();
    RunBatch(absl::MakeSpan(batch));
    batch.clear();
    mu_.Lock();
    --passes_running_;
    CallersPassEnded();
  }
}

bool InferenceRunner::StartBackgroundThread() {
  // Started with the first background work: a server without any has no
  // thread of another scheduling policy.
  if (background_thread_.joinable()) return true;
  try {
    background_thread_ = std::thread([this] { WorkInBackground(); });
  } catch (const std::system_error&) {  // maybe on a caller's `done`: nothing may throw
    return false;
  }
  return true;
}

void InferenceRunner::WorkInBackground() {
  if (options_.background_idle_priority) LowestCpuPriority();
  std::vector<Task> batch;  // reused: no allocation once warm
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(this, &InferenceRunner::HasBackgroundWork));
    AwaitQuietCallers(nullptr);  // a CancelQueued() empties the queues
    Queue* queue = OldestQueue(background_queues_);
    if (queue == nullptr) {
      if (stopping_) return;  // nothing left to run
      continue;
    }
    // No waiting for more rows: background work runs on what is idle.
    const ServedModel* model = queue->tasks.front().served.get();
    TakeBatch(background_queues_, model, LimitsFor(*model).max_batch_rows, &batch);
    mu_.Unlock();
    RunBatch(absl::MakeSpan(batch), /*background=*/true);
    batch.clear();
    mu_.Lock();
  }
}

void InferenceRunner::TakeBatch(Queues& queues, const ServedModel* model, uint32_t max_rows,
                                std::vector<Task>* batch) {
  Queue& queue = queues.at(model);
  // Take the first task, then whole tasks while they fit.
  size_t rows = 0;
  while (!queue.tasks.empty() &&
         (batch->empty() || (rows + queue.tasks.front().rows <= max_rows &&
                             !batch->front().job && !queue.tasks.front().job))) {
    rows += queue.tasks.front().rows;
    batch->push_back(std::move(queue.tasks.front()));
    queue.tasks.pop_front();
  }
  queue.rows -= rows;
  if (queue.tasks.empty()) queues.erase(model);
}

void InferenceRunner::RunBatch(absl::Span<Task> batch, bool background) {
  ++pass_depth;
  RunPass(batch, background);
  --pass_depth;
}

absl::Status InferenceRunner::ForwardInChunks(const Sequential& model,
                                              absl::Span<const float> input, size_t rows,
                                              absl::Span<float> logits) {
  const size_t in = model.input_width(), out = model.output_width();
  const uint64_t row_macs = std::max<uint64_t>(1, model.ParameterCount());
  const size_t chunk = std::max<uint64_t>(1, options_.background_chunk_macs / row_macs);
  absl::Status status;
  for (size_t row = 0; row < rows && status.ok(); row += chunk) {
    if (row > 0) {
      absl::MutexLock lock(&mu_);
      if (!AwaitQuietCallers(&stats_.background_pauses)) {
        status = absl::CancelledError("the runner was cancelled");
        break;
      }
    }
    // Rows are computed alike in any pass (core's kernels are
    // batch-invariant), so chunks answer what one pass would.
    const size_t n = std::min(chunk, rows - row);
    status = model.Forward(input.subspan(row * in, n * in), n, logits.subspan(row * out, n * out),
                           [this] { return abandon_passes_.load(std::memory_order_relaxed); });
  }
  return status;
}

void InferenceRunner::RunPass(absl::Span<Task> batch, bool background) {
  // Per thread, reused by every pass: no allocation once warm.
  thread_local std::vector<float> features, logits;
  // Requests whose callers gave up while queued do not run.
  const absl::Time now = absl::Now();
  auto gone = std::stable_partition(batch.begin(), batch.end(), [now](const Task& t) {
    return t.deadline > now && !(t.cancelled && t.cancelled());
  });
  if (gone != batch.end()) {
    Stats skipped;
    for (auto it = gone; it != batch.end(); ++it) {
      ++(it->deadline > now ? skipped.cancelled : skipped.expired);
    }
    Count(skipped);
  }
  for (auto it = gone; it != batch.end(); ++it) {
    std::move(it->done)(
        it->deadline > now
            ? absl::CancelledError("the call was cancelled while waiting for a forward pass")
            : absl::DeadlineExceededError("deadline passed while waiting for a forward pass"));
  }
  batch = batch.subspan(0, gone - batch.begin());
  if (batch.empty()) return;
  if (batch.front().job) return RunJobPass(batch.front());  // always alone

  const Sequential& model = *batch.front().served->model;
  const size_t width = model.output_width();
  size_t rows = 0;
  for (const Task& task : batch) rows += task.rows;
  absl::Span<const float> input = batch.front().features;
  absl::Status status;
  absl::Duration inference;
  try {
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
    const absl::Time forward_start = absl::Now();
    status = background
                 ? ForwardInChunks(model, input, rows, absl::MakeSpan(logits))
                 : model.Forward(input, rows, absl::MakeSpan(logits), [this] {
                     return abandon_passes_.load(std::memory_order_relaxed);
                   });
    inference = absl::Now() - forward_start;
    if (absl::IsCancelled(status)) {
      // CancelQueued() came while the pass ran: what it carried is answered
      // now, as what was queued was, instead of holding the shutdown.
      status = absl::UnavailableError(
          "the server shut down before the forward pass ended; retry");
    }
  } catch (const std::bad_alloc&) {
    status = absl::ResourceExhaustedError(absl::StrCat(
        "no memory for a forward pass of ", rows, " rows; send fewer rows"));
  }
  if (status.ok()) {
    // Counted before anyone hears the answer, so stats never lag it.
    Stats ran;
    ran.passes = 1;
    ran.requests = batch.size();
    ran.rows = rows;
    Count(ran);
  }
  size_t first_row = 0;
  for (Task& task : batch) {
    if (status.ok()) {
      PassOutput output;
      output.logits = absl::MakeSpan(logits).subspan(first_row * width, task.rows * width);
      output.queued = task.queued == absl::Time() ? absl::ZeroDuration() : now - task.queued;
      output.batch_rows = rows;
      output.inference = inference;
      output.first_in_pass = first_row == 0;
      std::move(task.done)(output);
    } else {
      std::move(task.done)(status);
    }
    first_row += task.rows;
  }
  // Keep warm buffers, not the peak of one huge call.
  for (std::vector<float>* buffer : {&features, &logits}) {
    if (buffer->capacity() * sizeof(float) > Sequential::kScratchBudgetBytes) {
      std::vector<float>().swap(*buffer);
    }
  }
}

std::vector<InferenceRunner::QueuedRows> InferenceRunner::queued_rows() const {
  std::vector<QueuedRows> waiting;
  absl::MutexLock lock(&mu_);
  for (const Queues* queues : {&queues_, &background_queues_}) {
    for (const auto& [served, queue] : *queues) {
      if (queue.rows > 0) waiting.push_back({served->name, served->version, queue.rows});
    }
  }
  return waiting;
}

void InferenceRunner::RunJobPass(Task& task) {
  const absl::Time start = absl::Now();
  absl::Status status;
  // A job may run for seconds: it stops for the shutdown's grace, and for
  // a caller who stopped waiting, between its chunks of work.
  auto stop = [this, &task] {
    return abandon_passes_.load(std::memory_order_relaxed) || absl::Now() > task.deadline ||
           (task.cancelled && task.cancelled());
  };
  try {  // on an inference thread: nothing may throw past here
    status = std::move(task.job)(stop);
  } catch (const std::bad_alloc&) {
    status = absl::ResourceExhaustedError(
        absl::StrCat("no memory for work of ", task.rows, " rows; send fewer rows"));
  }
  if (absl::IsCancelled(status)) {
    if (abandon_passes_.load()) {
      status = absl::UnavailableError("the server shut down before the work ended; retry");
    } else if (absl::Now() > task.deadline) {
      status = absl::DeadlineExceededError("deadline passed while the work ran");
    } else {
      status = absl::CancelledError("the call was cancelled while its work ran");
    }
  }
  if (!status.ok()) return std::move(task.done)(status);
  Stats ran;
  ran.passes = 1;
  ran.requests = 1;
  ran.rows = task.rows;
  Count(ran);
  PassOutput output;
  output.queued = start - task.queued;
  output.batch_rows = task.rows;
  output.inference = absl::Now() - start;
  output.first_in_pass = true;
  std::move(task.done)(output);
}

}  // namespace seqserve
