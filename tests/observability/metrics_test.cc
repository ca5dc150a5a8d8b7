// The metric types, the text format writer and ServingMetrics, without a
// server: bucket placement, escaping, and what one call records.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "observability/metrics.h"
#include "observability/serving_metrics.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Histogram, PutsEachValueInTheFirstBucketItFits) {
  const std::vector<int64_t> bounds = {10, 100};
  Histogram histogram(bounds);
  for (int64_t value : {0, 10, 11, 100, 101, 5000}) histogram.Observe(value);
  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_THAT(snapshot.buckets, ::testing::ElementsAre(2, 2, 2));
  EXPECT_EQ(snapshot.count, 6u);
  EXPECT_EQ(snapshot.sum, 0 + 10 + 11 + 100 + 101 + 5000);
}

TEST(Histogram, CountsEveryObservationFromManyThreads) {
  Histogram histogram(RowBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&histogram] {
      for (int i = 0; i < 10000; ++i) histogram.Observe(i % 300);
    });
  }
  for (auto& thread : threads) thread.join();
  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.count, 40000u);
  uint64_t in_buckets = 0;
  for (uint64_t n : snapshot.buckets) in_buckets += n;
  EXPECT_EQ(in_buckets, 40000u);
}

TEST(ExpositionWriter, EscapesLabelValuesAndWritesCumulativeBuckets) {
  ExpositionWriter out;
  out.Family("demo_total", "counter", "A help line with a \\ backslash.");
  out.Sample("demo_total", {{"model", "a\"b\\c\nd"}}, uint64_t{3});
  const std::vector<int64_t> bounds = {50'000, 1'000'000'000};
  Histogram histogram(bounds);
  histogram.Observe(10'000);
  histogram.Observe(60'000);
  histogram.Observe(2'000'000'000);
  out.Family("demo_seconds", "histogram", "Durations.");
  out.HistogramSeries("demo_seconds", {{"m", "x"}}, bounds, histogram.Read(), 1e9);
  EXPECT_EQ(out.text(),
            "# HELP demo_total A help line with a \\\\ backslash.\n"
            "# TYPE demo_total counter\n"
            "demo_total{model=\"a\\\"b\\\\c\\nd\"} 3\n"
            "# HELP demo_seconds Durations.\n"
            "# TYPE demo_seconds histogram\n"
            "demo_seconds_bucket{m=\"x\",le=\"5e-05\"} 1\n"
            "demo_seconds_bucket{m=\"x\",le=\"1\"} 2\n"
            "demo_seconds_bucket{m=\"x\",le=\"+Inf\"} 3\n"
            "demo_seconds_sum{m=\"x\"} 2.00007\n"
            "demo_seconds_count{m=\"x\"} 3\n");
}

CallRecord Call(const std::string& model, bool known, absl::StatusCode code) {
  CallRecord call;
  call.protocol = "grpc";
  call.method = "Classify";
  call.model = model;
  call.model_known = known;
  call.version = known ? 2 : 0;
  call.code = code;
  call.rows = known ? 3 : 0;
  call.duration = absl::Microseconds(120);
  return call;
}

TEST(ServingMetrics, NamesAModelOnlyWhenTheRepositoryHasIt) {
  ServingMetrics metrics;
  metrics.OnEnd(Call("species", true, absl::StatusCode::kOk));
  for (int i = 0; i < 3; ++i) {
    metrics.OnEnd(Call("made-up-" + std::to_string(i), false, absl::StatusCode::kNotFound));
  }
  const std::string text = metrics.Render({});
  EXPECT_THAT(text, HasSubstr("seqserve_requests_total{protocol=\"grpc\",method=\"Classify\","
                              "model=\"species\",version=\"2\",code=\"OK\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_requests_total{protocol=\"grpc\",method=\"Classify\","
                              "model=\"_unknown\",version=\"\",code=\"NOT_FOUND\"} 3\n"));
  EXPECT_THAT(text, Not(HasSubstr("made-up")));
}

TEST(ServingMetrics, CountsAForwardPassOnceWhateverItCarried) {
  ServingMetrics metrics;
  for (int i = 0; i < 3; ++i) {
    CallRecord call = Call("species", true, absl::StatusCode::kOk);
    call.batch_rows = 9;
    call.queued = absl::Microseconds(10);
    call.inference = absl::Microseconds(70);
    call.first_in_pass = i == 0;
    metrics.OnEnd(call);
  }
  const std::string text = metrics.Render({});
  EXPECT_THAT(text, HasSubstr("seqserve_batch_rows_count{model=\"species\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_batch_rows_sum{model=\"species\"} 9\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_inference_duration_seconds_count{model=\"species\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_queue_duration_seconds_count{model=\"species\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_request_rows_sum{model=\"species\"} 9\n"));
}

TEST(ServingMetrics, ReportsLoadsAndModelStates) {
  ServingMetrics metrics;
  metrics.OnModelLoad({"species", 1, true, absl::Milliseconds(3)});
  metrics.OnModelLoad({"species", 2, false, absl::Milliseconds(1)});
  ServingMetrics::Gauges gauges;
  auto repository = std::make_shared<RepositorySnapshot>();
  repository->models["species"].versions[1].state = v1::MODEL_STATE_AVAILABLE;
  repository->models["species"].versions[2].state = v1::MODEL_STATE_FAILED;
  gauges.repository = repository;
  gauges.inflight_requests = 4;
  gauges.queued_rows = {{"species", 1, 7}, {"species", 2, 1}};
  gauges.http_body_bytes = 1234;
  gauges.http_bodies_refused = 5;
  const std::string text = metrics.Render(gauges);
  EXPECT_THAT(text, HasSubstr("seqserve_model_loads_total{model=\"species\",result=\"ok\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("seqserve_model_loads_total{model=\"species\",result=\"failed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_model_load_duration_seconds_count 2\n"));
  EXPECT_THAT(text,
              HasSubstr("seqserve_model_versions{model=\"species\",state=\"available\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_model_versions{model=\"species\",state=\"failed\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("seqserve_model_versions{model=\"species\",state=\"loading\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_queued_rows{model=\"species\"} 8\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_inflight_requests 4\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_http_body_bytes 1234\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_http_bodies_refused_total 5\n"));
  EXPECT_THAT(text, HasSubstr("seqserve_build_info{version=\""));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("process_open_fds "));
}

TEST(ServingMetrics, ReportsTheTokensFileCertificateAndAccessLogOnlyWhenTheServerHasThem) {
  ServingMetrics metrics;
  const std::string without = metrics.Render({});
  EXPECT_THAT(without, Not(HasSubstr("seqserve_auth_tokens")));
  EXPECT_THAT(without, Not(HasSubstr("seqserve_tls_certificate_expiry")));
  EXPECT_THAT(without, Not(HasSubstr("seqserve_access_log")));

  ServingMetrics::Gauges gauges;
  gauges.tokens_file = ServingMetrics::Gauges::TokensFile{false, 3};
  gauges.tls_certificate_expiry = absl::FromUnixSeconds(1798761600);  // 2027-01-01
  gauges.access_log_dropped_lines = 12;
  const std::string text = metrics.Render(gauges);
  EXPECT_THAT(text, HasSubstr("# TYPE seqserve_auth_tokens_file_valid gauge\n"
                              "seqserve_auth_tokens_file_valid 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE seqserve_auth_tokens_reload_failures_total counter\n"
                              "seqserve_auth_tokens_reload_failures_total 3\n"));
  // Whole seconds, not an exponent a reader has to expand.
  EXPECT_THAT(text, HasSubstr("# TYPE seqserve_tls_certificate_expiry_timestamp_seconds gauge\n"
                              "seqserve_tls_certificate_expiry_timestamp_seconds 1798761600\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE seqserve_access_log_dropped_lines_total counter\n"
                              "seqserve_access_log_dropped_lines_total 12\n"));
}

}  // namespace
}  // namespace seqserve
