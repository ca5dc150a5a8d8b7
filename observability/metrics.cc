#include "observability/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace seqserve {

Histogram::Histogram(absl::Span<const int64_t> bounds)
    : bounds_(bounds.begin(), bounds.end()), buckets_(bounds.size() + 1) {}

void Histogram::Observe(int64_t value) {
  const size_t bucket =
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  snapshot.buckets.reserve(buckets_.size());
  for (const auto& bucket : buckets_) {
    snapshot.buckets.push_back(bucket.load(std::memory_order_relaxed));
    snapshot.count += snapshot.buckets.back();  // _count equals the +Inf bucket
  }
  return snapshot;
}

void Histogram::Snapshot::Merge(const Snapshot& other) {
  if (buckets.empty()) buckets.assign(other.buckets.size(), 0);
  for (size_t i = 0; i < buckets.size() && i < other.buckets.size(); ++i) {
    buckets[i] += other.buckets[i];
  }
  count += other.count;
  sum += other.sum;
}

absl::Span<const int64_t> DurationBucketsNanos() {
  static const std::vector<int64_t> bounds = {
      50'000,      100'000,     250'000,     500'000,       1'000'000,
      2'500'000,   5'000'000,   10'000'000,  25'000'000,    50'000'000,
      100'000'000, 250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000,
      5'000'000'000, 10'000'000'000};
  return bounds;
}

absl::Span<const int64_t> RowBuckets() {
  static const std::vector<int64_t> bounds = {1,   2,    4,    8,    16,   32,    64,   128,
                                              256, 512,  1024, 2048, 4096, 8192, 16384,
                                              32768, 65536};
  return bounds;
}

namespace {

// Label values may hold any UTF-8; the format escapes these three.
std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Shortest text that reads back as the same double; +Inf as the format says.
std::string FormatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return absl::StrFormat("%.0f", value);
  }
  for (int precision = 1; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

}  // namespace

void ExpositionWriter::Family(absl::string_view name, absl::string_view type,
                              absl::string_view help) {
  absl::StrAppend(&text_, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ",
                  type, "\n");
}

void ExpositionWriter::SeriesName(absl::string_view name, const Labels& labels,
                                  const std::pair<std::string, std::string>* extra) {
  absl::StrAppend(&text_, name);
  if (labels.empty() && extra == nullptr) return;
  text_ += '{';
  bool first = true;
  auto add = [&](const std::pair<std::string, std::string>& label) {
    if (!first) text_ += ',';
    first = false;
    absl::StrAppend(&text_, label.first, "=\"", EscapeLabelValue(label.second), "\"");
  };
  for (const auto& label : labels) add(label);
  if (extra != nullptr) add(*extra);
  text_ += '}';
}

void ExpositionWriter::Sample(absl::string_view name, const Labels& labels, double value) {
  SeriesName(name, labels);
  absl::StrAppend(&text_, " ", FormatValue(value), "\n");
}

void ExpositionWriter::Sample(absl::string_view name, const Labels& labels,
                              uint64_t value) {
  SeriesName(name, labels);
  absl::StrAppend(&text_, " ", value, "\n");
}

void ExpositionWriter::HistogramSeries(absl::string_view name, const Labels& labels,
                                       absl::Span<const int64_t> bounds,
                                       const Histogram::Snapshot& data, double per_unit) {
  const std::string bucket = absl::StrCat(name, "_bucket");
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < data.buckets.size() ? data.buckets[i] : 0;
    const std::pair<std::string, std::string> le = {
        "le", i < bounds.size() ? FormatValue(static_cast<double>(bounds[i]) / per_unit)
                                : std::string("+Inf")};
    SeriesName(bucket, labels, &le);
    absl::StrAppend(&text_, " ", cumulative, "\n");
  }
  SeriesName(absl::StrCat(name, "_sum"), labels);
  absl::StrAppend(&text_, " ", FormatValue(static_cast<double>(data.sum) / per_unit), "\n");
  SeriesName(absl::StrCat(name, "_count"), labels);
  absl::StrAppend(&text_, " ", cumulative, "\n");
}

}  // namespace seqserve
