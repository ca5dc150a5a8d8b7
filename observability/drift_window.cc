#include "observability/drift_window.h"

#include <algorithm>
#include <cmath>

namespace seqserve {

double PopulationStabilityIndex(const std::vector<double>& expected,
                                const std::vector<uint64_t>& actual) {
  double expected_total = 0.0, actual_total = 0.0;
  for (double e : expected) expected_total += e;
  for (uint64_t a : actual) actual_total += static_cast<double>(a);
  if (expected_total <= 0.0 || actual_total <= 0.0) return 0.0;
  double psi = 0.0;
  const size_t bins = std::min(expected.size(), actual.size());
  for (size_t i = 0; i < bins; ++i) {
    const double e = std::max(expected[i] / expected_total, kPsiProportionFloor);
    const double a =
        std::max(static_cast<double>(actual[i]) / actual_total, kPsiProportionFloor);
    psi += (a - e) * std::log(a / e);
  }
  return psi;
}

DriftWindow::DriftWindow(std::shared_ptr<const v1::DriftBaseline> baseline, size_t capacity)
    : baseline_(std::move(baseline)), capacity_(std::max<size_t>(capacity, 1)) {
  features_.resize(static_cast<size_t>(baseline_->features_size()));
  for (size_t f = 0; f < features_.size(); ++f) {
    const v1::DriftBaseline::Feature& source = baseline_->features(static_cast<int>(f));
    features_[f].numeric = source.edges_size() > 0;
    features_[f].counts.assign(static_cast<size_t>(source.counts_size()), 0);
    features_[f].expected.assign(source.counts().begin(), source.counts().end());
  }
  expected_classes_.assign(baseline_->class_counts().begin(), baseline_->class_counts().end());
  class_counts_.assign(expected_classes_.size(), 0);
  values_.assign(capacity_ * features_.size(), 0.0f);
  bins_.assign(capacity_ * features_.size(), kMissing);
  classes_.assign(capacity_, kMissing);
  recompute_mean_.assign(features_.size(), 0.0);
  recompute_m2_.assign(features_.size(), 0.0);
}

uint32_t DriftWindow::NumberBin(size_t feature, float value) const {
  if (std::isnan(value)) return kMissing;
  const auto& edges = baseline_->features(static_cast<int>(feature)).edges();
  return static_cast<uint32_t>(std::upper_bound(edges.begin(), edges.end(), value) -
                               edges.begin());
}

uint32_t DriftWindow::CategoryBin(size_t feature, std::string_view category) const {
  if (category.empty()) return kMissing;
  const auto& categories = baseline_->features(static_cast<int>(feature)).categories();
  for (int i = 0; i < categories.size(); ++i) {
    if (categories[i] == category) return static_cast<uint32_t>(i);
  }
  return static_cast<uint32_t>(categories.size());  // every other category
}

void DriftWindow::Remove(size_t slot) {
  const size_t width = features_.size();
  for (size_t f = 0; f < width; ++f) {
    const uint32_t bin = bins_[slot * width + f];
    if (bin == kMissing) continue;
    Feature& feature = features_[f];
    --feature.counts[bin];
    const float value = values_[slot * width + f];
    if (!feature.numeric || std::isnan(value)) continue;  // not in the running stats
    const double x = value;
    if (--feature.count == 0) {
      feature.mean = feature.m2 = 0.0;
    } else {
      const double delta = x - feature.mean;
      feature.mean -= delta / static_cast<double>(feature.count);
      feature.m2 = std::max(0.0, feature.m2 - delta * (x - feature.mean));
    }
  }
  if (classes_[slot] < class_counts_.size()) --class_counts_[classes_[slot]];
}

void DriftWindow::Add(const float* values, const uint32_t* bins, uint32_t predicted_class) {
  const size_t width = features_.size();
  const size_t slot = next_;
  if (rows_ == capacity_) {
    Remove(slot);
  } else {
    ++rows_;
  }
  for (size_t f = 0; f < width; ++f) {
    Feature& feature = features_[f];
    uint32_t bin = bins[f];
    if (bin != kMissing && bin >= feature.counts.size()) bin = kMissing;
    // A number that is not finite has a bin (below or above every edge) but
    // would poison the mean: it counts in the histogram only.
    const bool in_stats = bin != kMissing && feature.numeric && std::isfinite(values[f]);
    bins_[slot * width + f] = bin;
    values_[slot * width + f] = in_stats ? values[f] : std::nanf("");
    if (bin == kMissing) continue;
    ++feature.counts[bin];
    if (!in_stats) continue;
    const double x = values[f];
    ++feature.lap_count;
    feature.lap_sum += x;
    ++feature.count;
    const double delta = x - feature.mean;
    feature.mean += delta / static_cast<double>(feature.count);
    feature.m2 += delta * (x - feature.mean);
  }
  classes_[slot] = predicted_class < class_counts_.size() ? predicted_class : kMissing;
  if (classes_[slot] != kMissing) ++class_counts_[predicted_class];
  next_ = (slot + 1) % capacity_;
  if (next_ == 0) Recompute();
}

void DriftWindow::Recompute() {
  // Called when the lap ends (next_ back at 0): the ring's slots 0..rows_-1
  // were written in this lap in that order, so the lap's sums are the ones
  // a walk of the ring would make, rounding included.
  const size_t width = features_.size();
  std::fill(recompute_mean_.begin(), recompute_mean_.end(), 0.0);
  std::fill(recompute_m2_.begin(), recompute_m2_.end(), 0.0);
  for (size_t f = 0; f < width; ++f) {
    const Feature& feature = features_[f];
    if (feature.lap_count > 0) {
      recompute_mean_[f] = feature.lap_sum / static_cast<double>(feature.lap_count);
    }
  }
  // Row by row, each feature's squares still added in row order: the same
  // sums as a walk down each column, without striding through the ring.
  // A slot out of the stats holds NaN and adds exactly 0.
  const double* mean = recompute_mean_.data();
  double* m2 = recompute_m2_.data();
  for (size_t r = 0; r < rows_; ++r) {
    const float* row = values_.data() + r * width;
    for (size_t f = 0; f < width; ++f) {
      const float x = row[f];
      const double d = x - mean[f];
      m2[f] += std::isnan(x) ? 0.0 : d * d;
    }
  }
  for (size_t f = 0; f < width; ++f) {
    Feature& feature = features_[f];
    if (feature.numeric) {
      feature.count = feature.lap_count;
      feature.mean = recompute_mean_[f];
      feature.m2 = recompute_m2_[f];
    }
    feature.lap_count = 0;
    feature.lap_sum = 0.0;
  }
}

DriftWindow::FeatureStats DriftWindow::Stats(size_t feature) const {
  const Feature& f = features_[feature];
  FeatureStats stats;
  if (!f.numeric) {
    for (uint64_t n : f.counts) stats.count += n;
    return stats;
  }
  stats.count = f.count;
  stats.mean = f.mean;
  stats.variance = f.count > 0 ? f.m2 / static_cast<double>(f.count) : 0.0;
  return stats;
}

double DriftWindow::FeaturePsi(size_t feature) const {
  return PopulationStabilityIndex(features_[feature].expected, features_[feature].counts);
}

double DriftWindow::PredictionPsi() const {
  return PopulationStabilityIndex(expected_classes_, class_counts_);
}

size_t DriftWindow::MemoryBytes() const {
  size_t bytes = sizeof(*this) + values_.capacity() * sizeof(float) +
                 bins_.capacity() * sizeof(uint32_t) + classes_.capacity() * sizeof(uint32_t) +
                 class_counts_.capacity() * sizeof(uint64_t) +
                 expected_classes_.capacity() * sizeof(double) +
                 (recompute_mean_.capacity() + recompute_m2_.capacity()) * sizeof(double);
  for (const Feature& f : features_) {
    bytes += sizeof(Feature) + f.counts.capacity() * sizeof(uint64_t) +
             f.expected.capacity() * sizeof(double);
  }
  return bytes;
}

}  // namespace seqserve
