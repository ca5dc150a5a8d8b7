// Load generation the way Triton's perf_analyzer does it: hold a fixed
// number of calls outstanding on the asynchronous path, for a fixed time or
// number of calls, and report throughput and latency percentiles.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "client/seqserve_client.h"

namespace seqserve {

struct LoadStep {
  int concurrency = 1;
  int64_t requests = 0;  // completed calls, failed ones included
  int64_t errors = 0;
  std::string first_error;
  double seconds = 0;
  double requests_per_second = 0;
  double rows_per_second = 0;
  double p50_us = 0, p90_us = 0, p95_us = 0, p99_us = 0;
};

struct LoadOptions {
  int concurrency = 1;
  // The step ends after `duration`, or after `max_requests` calls when set.
  absl::Duration duration = absl::Seconds(5);
  int64_t max_requests = 0;
  // Calls to make and discard before measuring.
  int64_t warmup_requests = 100;
  // Classify this request; when empty (no model), the empty Health/Check.
  v1::ClassifyRequest request;
  // When it names a model: the Open Inference Protocol's ModelInfer with
  // this request instead of Classify.
  inference::ModelInferRequest infer;
  // Called about twice a second with the calls done so far.
  std::function<void(int64_t done, double elapsed_seconds)> progress;
};

// Runs one step against `client`.
LoadStep RunLoad(Client& client, const LoadOptions& options);

}  // namespace seqserve
