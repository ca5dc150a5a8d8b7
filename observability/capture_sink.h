// Payload capture's HTTP destination: each captured call POSTed to a URL
// as a CloudEvent in binary content mode, as KServe's payload logger sends
// them (ce-* headers, the record as the JSON body). One event per call,
// of type kCaptureEventType, carrying request and answer together: seqserve
// knows both at once, so a consumer needs no pairing of a request event
// with its response event by ce-id. KServe's extension attributes are set
// so brokers and triggers route these as they route its events:
// ce-inferenceservicename (the model), ce-component ("predictor") and
// ce-endpoint (KServe's default or canary; here the answering version, as
// seqserve splits traffic by version), with ce-modelversion beside them.
//
// A thread of its own sends, so a slow or stalled sink never holds the
// capture writer (nor, through it, the files). Events wait in a bounded
// queue; beyond it they are dropped and counted. A failed POST (no
// connection, a timeout, 5xx, 408, 429) is retried with exponential backoff
// while events keep queuing; another 4xx drops the event (counted as an
// error). The bearer token is read once, at creation, and never logged.
// libcurl does TLS, mutual TLS and the http(s)_proxy / no_proxy variables.
#pragma once

#include <curl/curl.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "observability/metrics.h"
#include "seqserve/v1/config.pb.h"

namespace seqserve {

// A destination's counts, kept by the capture for as long as it runs
// (they outlive a destination replaced on reload).
struct CaptureCounters {
  Counter written;  // records the destination took
  Counter errors;   // failed writes or POSTs (each attempt)
  Counter dropped;  // records lost for it: its queue full, or the shutdown
};

inline constexpr absl::string_view kCaptureEventType = "org.seqserve.capture.payload";

// One event's attributes and data.
struct CaptureEvent {
  std::string id;  // the call's request id
  std::string model;
  int64_t version = 0;
  absl::Time time;   // when the call arrived
  std::string data;  // the record's JSON line
};

class CaptureSink {
 public:
  struct Options {
    // Events waiting to be sent, and their bytes; beyond either, dropped.
    size_t max_queued_events = 4096;
    size_t max_queued_bytes = size_t{16} << 20;
    // One POST's limits: short, so a stalled sink costs one timeout, then
    // the backoff.
    absl::Duration connect_timeout = absl::Seconds(2);
    absl::Duration request_timeout = absl::Seconds(5);
    // Waits after a failure: doubling from the first to the longest.
    absl::Duration first_backoff = absl::Milliseconds(100);
    absl::Duration longest_backoff = absl::Seconds(10);
  };

  // INVALID_ARGUMENT for a URL that is not http:// or https://;
  // FAILED_PRECONDITION when the token file cannot be read or is empty (the
  // message names the file, never its contents) or libcurl cannot start.
  // `counters` is not owned and outlives the sink.
  static absl::StatusOr<std::unique_ptr<CaptureSink>> Create(const v1::CaptureConfig::Http& config,
                                                             Options options,
                                                             CaptureCounters* counters);
  ~CaptureSink();  // Close(now) and Join()

  // Never blocks: queues the event, or drops and counts it.
  void Enqueue(CaptureEvent event);
  // Takes no more events; what is queued is sent until `deadline`, then a
  // POST under way is abandoned and the rest counted dropped. Returns at
  // once.
  void Close(absl::Time deadline);
  // Waits for the sending thread (which ends by the Close deadline).
  void Join();

  // ce-source: seqserve://<host name>/models/<model>.
  static std::string SourceFor(const CaptureEvent& event);

 private:
  CaptureSink(const v1::CaptureConfig::Http& config, Options options, CaptureCounters* counters,
              std::string token, CURLM* multi, CURL* easy);
  void Send();
  // One POST; OK on 2xx. `retry` says whether a failure may succeed later.
  absl::Status Post(const CaptureEvent& event, bool* retry);

  const v1::CaptureConfig::Http config_;
  const Options options_;
  CaptureCounters* const counters_;
  const std::string token_;
  CURLM* const multi_;
  CURL* const easy_;

  mutable absl::Mutex mu_;
  std::deque<CaptureEvent> events_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread sender_;
};

}  // namespace seqserve
