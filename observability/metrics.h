// The few metric types seqserve exports and the Prometheus text format
// (exposition format 0.0.4) they are written in. Debian packages no
// Prometheus client library for C++, so this stays small: counters and
// histograms of integers updated with relaxed atomics (no lock on the hot
// path), and one writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace seqserve {

// A count that only goes up. Thread-safe, lock-free.
class Counter {
 public:
  void Increment(uint64_t by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A histogram of integer observations (nanoseconds, rows) with fixed upper
// bucket bounds in the same unit. Thread-safe, lock-free; a reader may see
// the sum one observation behind or ahead of the buckets.
class Histogram {
 public:
  // `bounds` ascending, in the observed unit.
  explicit Histogram(absl::Span<const int64_t> bounds);

  void Observe(int64_t value);

  // A consistent-enough copy for writing out: counts per bucket (not
  // cumulative), the last one for values above every bound.
  struct Snapshot {
    std::vector<uint64_t> buckets;
    uint64_t count = 0;
    int64_t sum = 0;
    // Adds another histogram's snapshot with the same bounds.
    void Merge(const Snapshot& other);
  };
  Snapshot Read() const;
  absl::Span<const int64_t> bounds() const { return bounds_; }

 private:
  const std::vector<int64_t> bounds_;
  // bounds_.size() + 1; the count is their sum, read on a scrape, so an
  // observation costs two atomic adds.
  std::vector<std::atomic<uint64_t>> buckets_;
  std::atomic<int64_t> sum_{0};
};

// Bucket bounds for durations, 50 µs to 10 s, in nanoseconds.
absl::Span<const int64_t> DurationBucketsNanos();
// Bucket bounds for row counts: powers of two to 65536.
absl::Span<const int64_t> RowBuckets();

// Label names and values of one series, in order.
using Labels = std::vector<std::pair<std::string, std::string>>;

// Writes the text exposition format. Each family starts with Family(), then
// its samples; label values are escaped here.
class ExpositionWriter {
 public:
  // `type`: "counter", "gauge" or "histogram".
  void Family(absl::string_view name, absl::string_view type, absl::string_view help);
  void Sample(absl::string_view name, const Labels& labels, double value);
  void Sample(absl::string_view name, const Labels& labels, uint64_t value);
  // The _bucket, _sum and _count series of one histogram; `per_unit`
  // observed units make one exported unit (1e9 nanoseconds in a second).
  void HistogramSeries(absl::string_view name, const Labels& labels,
                       absl::Span<const int64_t> bounds, const Histogram::Snapshot& data,
                       double per_unit);

  const std::string& text() const { return text_; }

 private:
  void SeriesName(absl::string_view name, const Labels& labels,
                  const std::pair<std::string, std::string>* extra = nullptr);
  std::string text_;
};

// The text format's content type.
inline constexpr absl::string_view kExpositionContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace seqserve
