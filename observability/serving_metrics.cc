#include "observability/serving_metrics.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "observability/process_metrics.h"

namespace seqserve {

// gRPC's 17 codes index the request counters.
constexpr size_t kStatusCodes = 17;

struct ServingMetrics::CallSeries {
  std::array<Counter, kStatusCodes> by_code;
  Histogram duration{DurationBucketsNanos()};
  Histogram request_rows{RowBuckets()};
  Histogram queue{DurationBucketsNanos()};
  Histogram inference{DurationBucketsNanos()};
  Histogram batch_rows{RowBuckets()};
};

namespace {
absl::Span<const int64_t> ScoreDifferenceBuckets();
}  // namespace

struct ServingMetrics::ShadowSeries {
  uint64_t compared_rows = 0;
  uint64_t agreed_rows = 0;
  Histogram score_difference{ScoreDifferenceBuckets()};
};

namespace {

// Score differences are observed in billionths (a histogram counts
// integers); 0 is its own bucket: bit-identical answers.
constexpr double kScoreUnits = 1e9;
absl::Span<const int64_t> ScoreDifferenceBuckets() {
  static const std::vector<int64_t> bounds = {
      0,          100,         1'000,       10'000,      100'000,        1'000'000,
      10'000'000, 50'000'000,  100'000'000, 250'000'000, 500'000'000,    1'000'000'000,
      10'000'000'000};
  return bounds;
}
// Any difference above this (an infinite one included) counts as this.
constexpr double kLargestScoreDifference = 1e12;

const char* DropReason(ShadowRecord::Outcome outcome) {
  switch (outcome) {
    case ShadowRecord::Outcome::kQueueFull: return "queue_full";
    case ShadowRecord::Outcome::kShutdown: return "shutdown";
    case ShadowRecord::Outcome::kFailed: return "failed";
    case ShadowRecord::Outcome::kCompared: break;
  }
  return "";
}

const char* CodeName(size_t code) {
  static constexpr const char* kNames[kStatusCodes] = {
      "OK",          "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS",   "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",        "UNAVAILABLE",      "DATA_LOSS",
      "UNAUTHENTICATED"};
  return kNames[code];
}

int64_t Nanos(absl::Duration duration) { return absl::ToInt64Nanoseconds(duration); }

// "MODEL_STATE_AVAILABLE" -> "available".
std::string StateLabel(v1::ModelState state) {
  std::string name = v1::ModelState_Name(state);
  constexpr absl::string_view kPrefix = "MODEL_STATE_";
  if (absl::StartsWith(name, kPrefix)) name = name.substr(kPrefix.size());
  return absl::AsciiStrToLower(name);
}

}  // namespace

namespace {
std::atomic<uint64_t> next_instance_id{1};
}  // namespace

ServingMetrics::ServingMetrics()
    : id_(next_instance_id.fetch_add(1)),
      load_duration_(std::make_unique<Histogram>(DurationBucketsNanos())) {}

ServingMetrics::~ServingMetrics() = default;

ServingMetrics::CallSeries& ServingMetrics::SeriesFor(const CallRecord& call) {
  const CallKeyView key{
      call.protocol, call.method,
      call.model_known || call.model.empty() ? absl::string_view(call.model) : kUnknownModel,
      call.version};
  // Series live as long as this object: each thread remembers the last one
  // it used, so a steady stream of like calls takes no lock.
  struct LastUsed {
    uint64_t owner = 0;
    CallKey key;
    CallSeries* series = nullptr;
  };
  thread_local LastUsed last;
  if (last.owner == id_ && CallKeyEq()(last.key, key)) return *last.series;
  CallSeries& found = FindOrAddSeries(key);
  last.owner = id_;
  last.key = CallKey{std::string(key.protocol), std::string(key.method),
                     std::string(key.model), key.version};
  last.series = &found;
  return found;
}

ServingMetrics::CallSeries& ServingMetrics::FindOrAddSeries(const CallKeyView& key) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = calls_.find(key);
    if (it != calls_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  auto& series = calls_[CallKey{std::string(key.protocol), std::string(key.method),
                                std::string(key.model), key.version}];
  if (series == nullptr) series = std::make_unique<CallSeries>();
  return *series;
}

void ServingMetrics::OnEnd(const CallRecord& call) {
  CallSeries& series = SeriesFor(call);
  const size_t code = static_cast<size_t>(call.code);
  series.by_code[code < kStatusCodes ? code : 2].Increment();  // 2: UNKNOWN
  series.duration.Observe(Nanos(call.duration));
  if (call.rows > 0) series.request_rows.Observe(static_cast<int64_t>(call.rows));
  if (call.batch_rows > 0) series.queue.Observe(Nanos(call.queued));
  if (call.first_in_pass) {
    series.inference.Observe(Nanos(call.inference));
    series.batch_rows.Observe(static_cast<int64_t>(call.batch_rows));
  }
  if (!call.explanation.empty()) {
    absl::MutexLock lock(&mu_);
    ++explanations_[{call.model, call.explanation, code < kStatusCodes ? code : 2}];
  }
}

void ServingMetrics::OnShadow(const ShadowRecord& shadow) {
  absl::MutexLock lock(&shadow_mu_);
  if (shadow.outcome != ShadowRecord::Outcome::kCompared) {
    ++shadow_drops_[{shadow.model, DropReason(shadow.outcome)}];
    return;
  }
  auto& series = shadows_[{shadow.model, shadow.served_version, shadow.shadow_version}];
  if (series == nullptr) series = std::make_unique<ShadowSeries>();
  series->compared_rows += shadow.rows;
  series->agreed_rows += shadow.agreed_rows;
  for (float difference : shadow.score_differences) {
    // Rounded up: only equal scores land in the 0 bucket.
    const double units = std::ceil(
        std::min(static_cast<double>(difference), kLargestScoreDifference) * kScoreUnits);
    series->score_difference.Observe(static_cast<int64_t>(units));
  }
}

void ServingMetrics::OnModelLoad(const ModelLoadEvent& load) {
  load_duration_->Observe(Nanos(load.duration));
  absl::MutexLock lock(&mu_);
  ++loads_[{load.model, load.ok}];
}

std::string ServingMetrics::Render(const Gauges& gauges) const {
  // Merge the per-version series into each family's own labels.
  using Snapshot = Histogram::Snapshot;
  std::map<std::tuple<std::string, std::string, std::string, std::string, size_t>, uint64_t>
      requests;  // protocol, method, model, version, code
  std::map<std::tuple<std::string, std::string, std::string>, Snapshot> durations;
  std::map<std::string, Snapshot> request_rows, queue, inference, batch_rows;
  std::map<std::pair<std::string, bool>, uint64_t> loads;
  std::map<std::tuple<std::string, std::string, size_t>, uint64_t> explanations;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [key, series] : calls_) {
      const std::string version = key.version > 0 ? absl::StrCat(key.version) : "";
      for (size_t code = 0; code < kStatusCodes; ++code) {
        if (uint64_t n = series->by_code[code].value(); n > 0) {
          requests[{key.protocol, key.method, key.model, version, code}] += n;
        }
      }
      durations[{key.protocol, key.method, key.model}].Merge(series->duration.Read());
      // The calls that run a forward pass, whatever their protocol.
      if (key.method != "Classify" && key.method != "ModelInfer" && key.method != "Predict") {
        continue;
      }
      request_rows[key.model].Merge(series->request_rows.Read());
      queue[key.model].Merge(series->queue.Read());
      inference[key.model].Merge(series->inference.Read());
      batch_rows[key.model].Merge(series->batch_rows.Read());
    }
    loads.insert(loads_.begin(), loads_.end());
    explanations.insert(explanations_.begin(), explanations_.end());
  }

  ExpositionWriter out;
  out.Family("seqserve_requests_total", "counter",
             "Calls answered, by protocol, method, model, version and status code.");
  for (const auto& [key, n] : requests) {
    const auto& [protocol, method, model, version, code] = key;
    out.Sample("seqserve_requests_total",
               {{"protocol", protocol}, {"method", method}, {"model", model},
                {"version", version}, {"code", CodeName(code)}},
               n);
  }
  out.Family("seqserve_request_duration_seconds", "histogram",
             "Time from a call's arrival to its answer.");
  for (const auto& [key, data] : durations) {
    const auto& [protocol, method, model] = key;
    out.HistogramSeries("seqserve_request_duration_seconds",
                        {{"protocol", protocol}, {"method", method}, {"model", model}},
                        DurationBucketsNanos(), data, 1e9);
  }
  struct ModelHistogram {
    const char* name;
    const char* help;
    const std::map<std::string, Snapshot>* data;
    absl::Span<const int64_t> bounds;
    double per_unit;
  };
  for (const ModelHistogram& family : {
           ModelHistogram{"seqserve_queue_duration_seconds",
                          "Time an inference call waited for its forward pass.", &queue,
                          DurationBucketsNanos(), 1e9},
           ModelHistogram{"seqserve_inference_duration_seconds",
                          "Time of one forward pass, over all the rows it carried.",
                          &inference, DurationBucketsNanos(), 1e9},
           ModelHistogram{"seqserve_batch_rows", "Rows in one forward pass.", &batch_rows,
                          RowBuckets(), 1.0},
           ModelHistogram{"seqserve_request_rows",
                          "Rows in one inference call (Classify, ModelInfer or Predict).", &request_rows,
                          RowBuckets(), 1.0}}) {
    out.Family(family.name, "histogram", family.help);
    for (const auto& [model, data] : *family.data) {
      out.HistogramSeries(family.name, {{"model", model}}, family.bounds, data, family.per_unit);
    }
  }

  out.Family("seqserve_queued_rows", "gauge", "Rows waiting for a forward pass.");
  std::map<std::string, uint64_t> queued;
  for (const auto& waiting : gauges.queued_rows) queued[waiting.model] += waiting.rows;
  if (gauges.repository != nullptr) {
    for (const auto& [name, record] : gauges.repository->models) queued.emplace(name, 0);
  }
  for (const auto& [model, rows] : queued) {
    out.Sample("seqserve_queued_rows", {{"model", model}}, rows);
  }
  out.Family("seqserve_inflight_requests", "gauge", "Calls received and not yet answered.");
  out.Sample("seqserve_inflight_requests", {},
             static_cast<uint64_t>(std::max(gauges.inflight_requests, 0)));
  out.Family("seqserve_http_body_bytes", "gauge",
             "Request body bytes the HTTP port holds (see --max_buffered_request_bytes).");
  out.Sample("seqserve_http_body_bytes", {}, static_cast<uint64_t>(gauges.http_body_bytes));
  out.Family("seqserve_http_bodies_refused_total", "counter",
             "HTTP request bodies refused for --max_buffered_request_bytes: answered 503, "
             "or closed as they arrived.");
  out.Sample("seqserve_http_bodies_refused_total", {}, gauges.http_bodies_refused);

  out.Family("seqserve_model_versions", "gauge", "Model versions by state.");
  if (gauges.repository != nullptr) {
    for (const auto& [name, record] : gauges.repository->models) {
      std::map<std::string, uint64_t> states;
      for (v1::ModelState state :
           {v1::MODEL_STATE_LOADING, v1::MODEL_STATE_AVAILABLE, v1::MODEL_STATE_FAILED}) {
        states[StateLabel(state)] = 0;
      }
      for (const auto& [version, entry] : record.versions) ++states[StateLabel(entry.state)];
      for (const auto& [state, n] : states) {
        out.Sample("seqserve_model_versions", {{"model", name}, {"state", state}}, n);
      }
    }
  }
  out.Family("seqserve_model_loads_total", "counter",
             "Attempts to load a model version's file, by result.");
  for (const auto& [key, n] : loads) {
    out.Sample("seqserve_model_loads_total",
               {{"model", key.first}, {"result", key.second ? "ok" : "failed"}}, n);
  }
  out.Family("seqserve_explanations_total", "counter",
             "Explain calls, by model, attribution method and status code.");
  for (const auto& [key, n] : explanations) {
    const auto& [model, method, code] = key;
    out.Sample("seqserve_explanations_total",
               {{"model", model}, {"method", method}, {"code", CodeName(code)}}, n);
  }
  out.Family("seqserve_model_load_duration_seconds", "histogram",
             "Time to read, check and prepare one model version.");
  out.HistogramSeries("seqserve_model_load_duration_seconds", {}, DurationBucketsNanos(),
                      load_duration_->Read(), 1e9);

  WriteShadowMetrics(out);

  if (gauges.tokens_file.has_value()) {
    out.Family("seqserve_auth_tokens_file_valid", "gauge",
               "1 when the tokens in force are the tokens file on disk; 0 while a change to it "
               "is refused (unreadable, a bad line) and the tokens before it stay.");
    out.Sample("seqserve_auth_tokens_file_valid", {},
               uint64_t{gauges.tokens_file->valid ? 1u : 0u});
    out.Family("seqserve_auth_tokens_reload_failures_total", "counter",
               "Changes of the tokens file refused (unreadable, a bad line), each counted once.");
    out.Sample("seqserve_auth_tokens_reload_failures_total", {},
               gauges.tokens_file->reload_failures);
  }
  if (gauges.access_log_dropped_lines.has_value()) {
    out.Family("seqserve_access_log_dropped_lines_total", "counter",
               "Access log lines dropped because the file could not be written as fast as "
               "calls ended.");
    out.Sample("seqserve_access_log_dropped_lines_total", {}, *gauges.access_log_dropped_lines);
  }
  if (gauges.tls_certificate_expiry.has_value()) {
    out.Family("seqserve_tls_certificate_expiry_timestamp_seconds", "gauge",
               "notAfter of the TLS certificate served, in Unix seconds.");
    out.Sample("seqserve_tls_certificate_expiry_timestamp_seconds", {},
               static_cast<double>(absl::ToUnixSeconds(*gauges.tls_certificate_expiry)));
  }

  out.Family("seqserve_build_info", "gauge", "Always 1; the labels say what is running.");
  out.Sample("seqserve_build_info",
             {{"version", SEQSERVE_VERSION}, {"grpc_version", grpc::Version()}}, uint64_t{1});
  WriteProcessMetrics(out);
  return out.text();
}

void ServingMetrics::WriteShadowMetrics(ExpositionWriter& out) const {
  absl::MutexLock lock(&shadow_mu_);
  auto labels = [](const std::tuple<std::string, int64_t, int64_t>& key) {
    const auto& [model, served, shadow] = key;
    return Labels{{"model", model},
                  {"served_version", absl::StrCat(served)},
                  {"shadow_version", absl::StrCat(shadow)}};
  };
  out.Family("seqserve_shadow_compared_rows_total", "counter",
             "Rows of served calls copied to the model's shadow version and compared.");
  for (const auto& [key, series] : shadows_) {
    out.Sample("seqserve_shadow_compared_rows_total", labels(key), series->compared_rows);
  }
  out.Family("seqserve_shadow_agreed_rows_total", "counter",
             "Compared rows whose predicted class is the same on the served and the shadow "
             "version, under the served version's default head.");
  for (const auto& [key, series] : shadows_) {
    out.Sample("seqserve_shadow_agreed_rows_total", labels(key), series->agreed_rows);
  }
  out.Family("seqserve_shadow_agreement_ratio", "gauge",
             "Agreed rows over compared rows, since the start.");
  for (const auto& [key, series] : shadows_) {
    out.Sample("seqserve_shadow_agreement_ratio", labels(key),
               static_cast<double>(series->agreed_rows) /
                   static_cast<double>(std::max<uint64_t>(series->compared_rows, 1)));
  }
  out.Family("seqserve_shadow_score_difference", "histogram",
             "Per compared row, the largest absolute difference between the served and the "
             "shadow version's scores under the served version's default head.");
  for (const auto& [key, series] : shadows_) {
    out.HistogramSeries("seqserve_shadow_score_difference", labels(key),
                        ScoreDifferenceBuckets(), series->score_difference.Read(), kScoreUnits);
  }
  out.Family("seqserve_shadow_dropped_total", "counter",
             "Copies of served calls for the model's shadow version dropped: queue_full (too "
             "many waiting), shutdown (the server stopped first), failed (the shadow could "
             "not answer).");
  for (const auto& [key, n] : shadow_drops_) {
    out.Sample("seqserve_shadow_dropped_total", {{"model", key.first}, {"reason", key.second}},
               n);
  }
}

}  // namespace seqserve
