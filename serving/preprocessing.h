// The preparation a model's config declares per raw feature (its
// `preprocessing`): missing values, clipping, standardize, min_max and
// one_hot, turning the rows callers send into the rows the model's first
// layer reads. Built once at load and shared by every call of the version.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "seqserve/v1/config.pb.h"
#include "serving/raw_rows.h"

namespace seqserve {

// One feature's transform as a line for people: "clip to [0, 100], then
// (x - 40) / 10; missing: 30".
std::string DescribeTransform(const v1::FeatureTransform& transform);

class Preprocessing {
 public:
  // From the config's feature_names and preprocessing, for a model whose
  // first layer takes `model_input_width` values. INVALID_ARGUMENT naming
  // the feature: a transform for a feature not in feature_names (or with
  // none), two for one feature, std <= 0, min >= max, low >= high, clip min
  // above max, non-finite numbers, an empty or repeated category, clip or
  // missing_value on a one_hot feature, missing_category on a numeric one,
  // or a prepared width that is not the model's input width. Without
  // preprocessing every feature goes to the model as sent.
  static absl::StatusOr<std::shared_ptr<const Preprocessing>> Create(
      const v1::ModelConfig& config, int model_input_width);

  // Values per row callers send: one per feature.
  size_t raw_width() const { return features_.size(); }
  // Values per row the model reads.
  size_t prepared_width() const { return prepared_width_; }
  // True when no feature is transformed: rows sent in order, all numbers,
  // are the model's inputs as they are.
  bool passthrough() const { return passthrough_; }
  // True when a call may leave the feature out (it has a missing default).
  bool may_be_left_out(size_t feature) const { return features_[feature].has_missing; }
  // The feature's categories when one_hot, else empty.
  const std::vector<std::string>& categories(size_t feature) const {
    return features_[feature].category_names;
  }

  // Writes raw.rows() rows of prepared_width() values to `out`.
  // INVALID_ARGUMENT naming the row and feature: a missing value (left
  // out, NaN) without a default, an infinite number, text that is not a
  // number for a numeric feature, a category not in the list under
  // UNKNOWN_ERROR, or a prepared value that is not finite.
  absl::Status Prepare(const RawRowsView& raw, absl::Span<float> out) const;

  // The same preparation (a shadow version reads the served one's rows
  // only then).
  bool operator==(const Preprocessing& other) const { return key_ == other.key_; }

 private:
  struct Feature {
    std::string name;
    std::optional<float> clip_min, clip_max;
    enum class Scaling { kNone, kStandardize, kMinMax, kOneHot } scaling = Scaling::kNone;
    float mean = 0, std = 1;  // standardize
    float min = 0, max = 1, low = 0, high = 1;  // min_max
    // one_hot: each category's column, counted from the feature's first.
    absl::flat_hash_map<std::string, size_t> category_columns;
    std::vector<std::string> category_names;
    v1::FeatureTransform::OneHot::Unknown unknown = v1::FeatureTransform::OneHot::UNKNOWN_ERROR;
    bool has_missing = false;
    float missing_value = 0;
    std::string missing_category;
    size_t first_column = 0;  // in the prepared row
    size_t columns = 1;
  };

  absl::Status PrepareNumber(const Feature& feature, const RawRowsView& raw, size_t row,
                             size_t f, float* out) const;
  absl::Status PrepareCategory(const Feature& feature, const RawRowsView& raw, size_t row,
                               size_t f, float* out) const;

  std::vector<Feature> features_;
  size_t prepared_width_ = 0;
  bool passthrough_ = true;
  std::string key_;  // the transforms, serialized
};

}  // namespace seqserve
