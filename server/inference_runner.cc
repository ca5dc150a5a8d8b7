#include "server/inference_runner.h"

#include <algorithm>
#include <utility>

namespace seqserve {

InferenceRunner::InferenceRunner(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.emplace_back([this] { Work(); });
  }
}

InferenceRunner::~InferenceRunner() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& thread : threads_) thread.join();
}

void InferenceRunner::Run(std::shared_ptr<const ServedModel> served,
                          absl::Span<const float> features, size_t rows,
                          Done done) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(Task{std::move(served), features, rows, std::move(done)});
}

void InferenceRunner::Work() {
  // Reused by every pass on this thread: no allocation once warm.
  std::vector<float> logits;
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    logits.resize(task.rows * task.served->model->output_width());
    absl::Status status =
        task.served->model->Forward(task.features, task.rows, absl::MakeSpan(logits));
    if (status.ok()) {
      std::move(task.done)(absl::MakeSpan(logits));
    } else {
      std::move(task.done)(std::move(status));
    }
  }
}

}  // namespace seqserve
