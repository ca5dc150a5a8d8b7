// A call's rows as the caller sent them: numbers, the strings of
// categorical features, and which column holds which of the model's
// features. Preprocessing reads them into the model's inputs; payload
// observers read them as sent.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace seqserve {

// A call's rows as the caller sent them, read in the model's feature order
// (its config's feature_names) whatever order the call named them in.
// Points into the request: copy what is kept beyond the call.
class RawRowsView {
 public:
  // Rows of `width` values in `numbers` (and `categories`, parallel or
  // empty); `order[f]` is the column that holds the model's feature f, or
  // kAbsent when the call left it out.
  static constexpr size_t kAbsent = std::numeric_limits<size_t>::max();
  RawRowsView(size_t rows, size_t width, absl::Span<const float> numbers,
              const google::protobuf::RepeatedPtrField<std::string>& categories,
              std::vector<size_t> order)
      : rows_(rows), width_(width), numbers_(numbers), categories_(categories),
        order_(std::move(order)) {}

  size_t rows() const { return rows_; }
  // The model's features (its feature_names, else its input width).
  size_t features() const { return order_.size(); }
  // False when the call left the feature out or sent it as missing (NaN,
  // a JSON null).
  bool present(size_t row, size_t feature) const {
    if (order_[feature] == kAbsent) return false;
    return !category(row, feature).empty() || !std::isnan(number(row, feature));
  }
  // The number sent for the feature; NaN when left out or sent as missing.
  float number(size_t row, size_t feature) const {
    const size_t column = order_[feature];
    if (column == kAbsent) return std::numeric_limits<float>::quiet_NaN();
    return numbers_[row * width_ + column];
  }
  // The string sent for the feature (a category, or a number as text);
  // empty when a number (or nothing) was sent.
  std::string_view category(size_t row, size_t feature) const {
    const size_t column = order_[feature];
    if (column == kAbsent || categories_.empty()) return {};
    return categories_[row * width_ + column];
  }

 private:
  size_t rows_;
  size_t width_;
  absl::Span<const float> numbers_;
  const google::protobuf::RepeatedPtrField<std::string>& categories_;
  std::vector<size_t> order_;
};

}  // namespace seqserve
