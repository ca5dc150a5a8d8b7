// Payload capture: copies of a sampled share of each model's answered
// Classify calls (its config's capture.sample_rate), written as JSON Lines
// to rotated files and/or POSTed as CloudEvents (capture_files.h,
// capture_sink.h). One per server, told of every answered call through
// the PayloadObserver seam.
//
// On the inference thread a call costs a look at the config and, when
// sampled, one copy pushed onto a queue bounded in records and bytes;
// beyond it the copy is dropped and counted. Never blocks, never fails the
// call. One writer thread formats each record once and hands it to the
// destinations of the record's model, made from the answering version's
// config: a reload that changes the config takes the new destinations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "observability/capture_files.h"
#include "observability/capture_record.h"
#include "observability/capture_sink.h"
#include "observability/metrics.h"
#include "serving/payload_observer.h"

namespace seqserve {

class PayloadCapture : public PayloadObserver {
 public:
  struct Options {
    // Records waiting for the writer, and their bytes (as copied); beyond
    // either, records are dropped.
    size_t max_queued_records = 8192;
    size_t max_queued_bytes = size_t{64} << 20;
    // Each HTTP destination's queue, timeouts and backoff.
    CaptureSink::Options sink;
  };

  explicit PayloadCapture(Options options);
  PayloadCapture() : PayloadCapture(Options{}) {}
  ~PayloadCapture() override;  // Shutdown(now)

  // Samples, copies and queues; thread-safe and quick.
  void OnPayload(const PayloadRecord& record) override;

  // Takes no more records; writes what is queued and lets the sinks send
  // theirs until `deadline`, then drops the rest (counted) and returns,
  // files flushed and closed. Returns by `deadline` (and a POST's poll
  // interval, at most 100 ms) whatever the sinks do.
  void Shutdown(absl::Time deadline);

  // seqserve_capture_dropped_total{model},
  // seqserve_capture_records_total{model,destination} and
  // seqserve_capture_errors_total{model,destination}; nothing before a
  // model with capture has been seen.
  void RenderMetrics(ExpositionWriter& out) const;

  // For tests: the counts behind the metrics.
  uint64_t dropped(const std::string& model) const;
  uint64_t written(const std::string& model, const std::string& destination) const;
  uint64_t errors(const std::string& model, const std::string& destination) const;

 private:
  // A model's destinations, as made from one capture config.
  struct Destinations {
    std::string config;  // the CaptureConfig they were made from, serialized
    // The shape last seen with that config: the same one needs no compare.
    std::shared_ptr<const CaptureShape> shape;
    std::unique_ptr<CaptureFiles> files;
    std::unique_ptr<CaptureSink> sink;
    // A destination that could not be made is tried again after this.
    absl::Time retry_files = absl::InfinitePast();
    absl::Time retry_sink = absl::InfinitePast();
  };

  // The shared shape of `served`'s records of `features` raw features;
  // null when it cannot be told apart from a later version (no
  // preprocessing to pin), and the copy makes its own.
  std::shared_ptr<const CaptureShape> ShapeFor(const ServedModel& served, size_t features);
  void Write();
  void Deliver(const CapturedCall& call, absl::Time now);
  Destinations& DestinationsFor(const CapturedCall& call, absl::Time now);
  CaptureCounters* CountersFor(const std::string& model, const std::string& destination);
  Counter* DroppedFor(const std::string& model);
  const CaptureCounters* FindCounters(const std::string& model,
                                      const std::string& destination) const;

  const Options options_;

  absl::Mutex mu_;
  std::deque<CapturedCall> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();

  // Shapes by served version. A version is known by its address and its
  // preprocessing, held here so that its address cannot be reused while
  // the entry lives; a later version at the same address has another.
  struct ShapeEntry {
    std::shared_ptr<const void> pin;
    std::shared_ptr<const CaptureShape> shape;
  };
  absl::Mutex shapes_mu_;
  std::map<const ServedModel*, ShapeEntry> shapes_ ABSL_GUARDED_BY(shapes_mu_);

  // Counters by model (and destination): made once, never removed, so
  // destinations and the writer hold plain pointers.
  mutable absl::Mutex counters_mu_;
  std::map<std::string, std::unique_ptr<Counter>> dropped_ ABSL_GUARDED_BY(counters_mu_);
  std::map<std::pair<std::string, std::string>, std::unique_ptr<CaptureCounters>> counters_
      ABSL_GUARDED_BY(counters_mu_);

  // The writer thread's own.
  std::map<std::string, Destinations> destinations_;
  std::deque<std::unique_ptr<CaptureSink>> retired_sinks_;

  std::thread writer_;
};

}  // namespace seqserve
