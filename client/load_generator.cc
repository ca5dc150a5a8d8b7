#include "client/load_generator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace seqserve {
namespace {

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(
      sorted.size() - 1, static_cast<size_t>(std::ceil(p / 100.0 * sorted.size())) - 1);
  return sorted[index];
}

// Keeps `concurrency` calls outstanding; each completion starts the next.
class Driver {
 public:
  Driver(Client& client, const LoadOptions& options, int64_t limit, bool record)
      : client_(client), options_(options), limit_(limit), record_(record) {}

  void Run() {
    const int slots = std::max(1, options_.concurrency);
    start_ = absl::Now();
    for (int i = 0; i < slots; ++i) Issue();
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(this, &Driver::Finished),
                                 absl::Milliseconds(500))) {
      if (options_.progress && record_) {
        options_.progress(done_, absl::ToDoubleSeconds(absl::Now() - start_));
      }
    }
    end_ = absl::Now();
  }

  LoadStep Result() {
    absl::MutexLock lock(&mu_);
    LoadStep step;
    step.concurrency = options_.concurrency;
    step.requests = done_;
    step.errors = errors_;
    step.first_error = first_error_;
    step.seconds = absl::ToDoubleSeconds(end_ - start_);
    step.requests_per_second = step.seconds > 0 ? done_ / step.seconds : 0;
    step.rows_per_second =
        step.requests_per_second * std::max<uint32_t>(1, options_.request.rows());
    std::sort(latencies_us_.begin(), latencies_us_.end());
    step.p50_us = Percentile(latencies_us_, 50);
    step.p90_us = Percentile(latencies_us_, 90);
    step.p95_us = Percentile(latencies_us_, 95);
    step.p99_us = Percentile(latencies_us_, 99);
    return step;
  }

 private:
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ == 0 && stopping_;
  }

  // Starts one call if the step still wants calls.
  void Issue() {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      if (issued_ >= limit_ && limit_ > 0) {
        stopping_ = true;
        return;
      }
      if (limit_ == 0 && absl::Now() - start_ >= options_.duration) {
        stopping_ = true;
        return;
      }
      ++issued_;
      ++outstanding_;
    }
    const absl::Time sent = absl::Now();
    auto complete = [this, sent](const absl::Status& status) {
      const double micros = absl::ToDoubleMicroseconds(absl::Now() - sent);
      {
        absl::MutexLock lock(&mu_);
        ++done_;
        if (record_) latencies_us_.push_back(micros);
        if (!status.ok() && errors_++ == 0) first_error_ = status.ToString();
      }
      Issue();
      absl::MutexLock lock(&mu_);
      --outstanding_;
    };
    if (!options_.infer.model_name().empty()) {
      client_.InferAsync(options_.infer,
                         [complete](absl::StatusOr<inference::ModelInferResponse> response) {
                           complete(response.status());
                         });
    } else if (options_.request.model().empty()) {
      client_.HealthAsync(complete);
    } else {
      client_.ClassifyAsync(options_.request,
                            [complete](absl::StatusOr<v1::ClassifyResponse> response) {
                              complete(response.status());
                            });
    }
  }

  Client& client_;
  const LoadOptions& options_;
  const int64_t limit_;
  const bool record_;
  absl::Time start_, end_;
  absl::Mutex mu_;
  int64_t issued_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  std::vector<double> latencies_us_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

LoadStep RunLoad(Client& client, const LoadOptions& options) {
  if (options.warmup_requests > 0) {
    Driver warmup(client, options, options.warmup_requests, false);
    warmup.Run();
  }
  Driver driver(client, options, options.max_requests, true);
  driver.Run();
  return driver.Result();
}

}  // namespace seqserve
