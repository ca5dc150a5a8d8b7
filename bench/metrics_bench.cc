// What recording one call's metrics costs (ServingMetrics::OnEnd), on one
// thread and on two at once, against the same loop with nothing recorded.
#include <benchmark/benchmark.h>

#include "observability/serving_metrics.h"

namespace seqserve {
namespace {

CallRecord SampleCall() {
  CallRecord call;
  call.protocol = "grpc";
  call.method = "Classify";
  call.model = "species";
  call.model_known = true;
  call.version = 1;
  call.rows = 1;
  call.batch_rows = 1;
  call.first_in_pass = true;
  call.queued = absl::Microseconds(3);
  call.inference = absl::Microseconds(1);
  call.duration = absl::Microseconds(40);
  return call;
}

ServingMetrics& Shared() {
  static ServingMetrics* metrics = new ServingMetrics();
  return *metrics;
}

void BM_RecordCall(benchmark::State& state) {
  const CallRecord call = SampleCall();
  ServingMetrics& metrics = Shared();
  for (auto _ : state) metrics.OnEnd(call);
}
BENCHMARK(BM_RecordCall)->Threads(1)->Threads(2);

void BM_NothingRecorded(benchmark::State& state) {
  CallRecord call = SampleCall();
  for (auto _ : state) benchmark::DoNotOptimize(call);
}
BENCHMARK(BM_NothingRecorded)->Threads(1)->Threads(2);

}  // namespace
}  // namespace seqserve

BENCHMARK_MAIN();
