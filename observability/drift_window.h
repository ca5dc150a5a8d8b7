// The last N rows one model version answered, as statistics against its
// drift baseline: per feature a histogram over the baseline's bins and a
// running count, mean and variance of the numbers; the predicted classes'
// histogram; and the population stability index (PSI) of each.
//
// Memory is fixed at creation: a ring of `capacity` rows holding each
// feature's value and bin and the row's predicted class, and per-bin
// counts updated as a row enters and as the row it replaces leaves.
// Not thread-safe: DriftMonitor holds it under a mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "seqserve/v1/config.pb.h"

namespace seqserve {

// A proportion below this counts as this in a PSI, so an empty bin on one
// side gives a large but finite term (common practice: 1e-4).
inline constexpr double kPsiProportionFloor = 1e-4;

// sum over bins of (a - e) * ln(a / e), with proportions floored at
// kPsiProportionFloor. `expected` and `actual` are counts of the same bins.
double PopulationStabilityIndex(const std::vector<double>& expected,
                                const std::vector<uint64_t>& actual);

class DriftWindow {
 public:
  // The bin of a value that was not sent (or sent as NaN): not counted.
  static constexpr uint32_t kMissing = UINT32_MAX;

  // `baseline` is checked (serving/drift_baseline.h) and shared; `classes`
  // equals its class_counts size. capacity > 0.
  DriftWindow(std::shared_ptr<const v1::DriftBaseline> baseline, size_t capacity);

  const v1::DriftBaseline& baseline() const { return *baseline_; }
  size_t capacity() const { return capacity_; }
  size_t features() const { return features_.size(); }
  // Rows in the window now (at most capacity()).
  size_t rows() const { return rows_; }

  // The bin a feature's value falls in: a number by the edges (bin i holds
  // edges[i-1] <= x < edges[i]; below the first edge is bin 0, at or above
  // the last the last bin), a category by its place in the list (any other
  // category: the last bin). kMissing for NaN, or for a categorical feature
  // sent as an empty string.
  uint32_t NumberBin(size_t feature, float value) const;
  uint32_t CategoryBin(size_t feature, std::string_view category) const;

  // Adds one row: each feature's value (NaN when missing; for a
  // categorical feature the number is not read) and bin, and the predicted
  // class (>= the class count: not counted). The oldest row leaves once the
  // window is full.
  void Add(const float* values, const uint32_t* bins, uint32_t predicted_class);

  struct FeatureStats {
    uint64_t count = 0;  // rows with a value
    double mean = 0.0;  // numeric features only
    double variance = 0.0;  // population variance over the window
  };
  FeatureStats Stats(size_t feature) const;
  // Window counts per bin of a feature, and of the predicted classes.
  const std::vector<uint64_t>& FeatureCounts(size_t feature) const {
    return features_[feature].counts;
  }
  const std::vector<uint64_t>& ClassCounts() const { return class_counts_; }
  // The baseline's counts as doubles, for PSI and proportions.
  const std::vector<double>& BaselineCounts(size_t feature) const {
    return features_[feature].expected;
  }
  const std::vector<double>& BaselineClassCounts() const { return expected_classes_; }
  // PSI of a feature (its rows with a value) and of the predicted class;
  // 0 when the window has none.
  double FeaturePsi(size_t feature) const;
  double PredictionPsi() const;

  // Bytes this window holds: fixed by the baseline and the capacity.
  size_t MemoryBytes() const;

 private:
  struct Feature {
    bool numeric = false;
    std::vector<uint64_t> counts;
    std::vector<double> expected;
    // Welford's running mean and sum of squared differences, over the
    // numbers in the window.
    uint64_t count = 0;
    double mean = 0.0;
    double m2 = 0.0;
    // The numbers added since the lap began, summed in slot order: at the
    // lap's end they are the ring's, so Recompute needs no pass for the mean.
    uint64_t lap_count = 0;
    double lap_sum = 0.0;
  };
  void Remove(size_t slot);
  // Recomputes the means and variances from the ring, so rounding from
  // adding and removing never accumulates (once a lap: O(1) a row). One
  // pass over the ring in memory order; the sums come from the lap.
  void Recompute();

  std::shared_ptr<const v1::DriftBaseline> baseline_;
  const size_t capacity_;
  std::vector<Feature> features_;
  std::vector<double> expected_classes_;
  std::vector<uint64_t> class_counts_;
  // capacity_ x features, row after row, and capacity_ classes.
  std::vector<float> values_;
  std::vector<uint32_t> bins_;
  std::vector<uint32_t> classes_;
  // Recompute's per-feature means and sums of squares, reused.
  std::vector<double> recompute_mean_;
  std::vector<double> recompute_m2_;
  size_t next_ = 0;  // the slot the next row takes
  size_t rows_ = 0;
};

}  // namespace seqserve
