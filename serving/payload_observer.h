// The seam for payload capture and drift statistics: told of every
// answered Classify call's rows, as the caller sent them and as the model
// read them, with the answer. Unlike RequestObserver it sees the data, so
// it is told only of calls that succeeded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "seqserve/v1/classifier.pb.h"
#include "serving/served_model.h"

namespace seqserve {

// A call's rows as the caller sent them, read in the model's feature order
// (its config's feature_names) whatever order the call named them in.
// Valid only during OnPayload: copy what is kept.
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
  bool present(size_t row, size_t feature) const { return order_[feature] != kAbsent; }
  // The number sent for the feature; NaN when left out or sent as missing.
  float number(size_t row, size_t feature) const {
    const size_t column = order_[feature];
    if (column == kAbsent) return std::numeric_limits<float>::quiet_NaN();
    return numbers_[row * width_ + column];
  }
  // The string sent for the feature (a category); empty when a number
  // (or nothing) was sent.
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

// One answered Classify call (for several outputs of one pass, the first).
struct PayloadRecord {
  const ServedModel* served = nullptr;  // the version that answered
  std::string_view protocol;  // "grpc", "http"
  std::string_view request_id;
  std::string_view caller;  // the authenticated name; empty when none
  absl::Time time;  // when the call arrived
  const RawRowsView* raw = nullptr;
  // What the model read: rows x its input width, after preprocessing.
  absl::Span<const float> inputs;
  const v1::ClassifyResponse* response = nullptr;
};

// Called on the inference threads, after the answer is built and before
// it is sent: implementations must be thread-safe and quick (sample, copy
// into a bounded queue or update counters; never block, never fail the
// call). The record only points at the call's data, so telling costs
// nothing until an observer copies.
class PayloadObserver {
 public:
  virtual ~PayloadObserver() = default;
  virtual void OnPayload(const PayloadRecord& record) = 0;
};

}  // namespace seqserve
