// The seam for payload capture and drift statistics: told of every
// answered Classify call's rows, as the caller sent them and as the model
// read them, with the answer. Unlike RequestObserver it sees the data, so
// it is told only of calls that succeeded.
#pragma once

#include <string_view>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "seqserve/v1/classifier.pb.h"
#include "serving/raw_rows.h"
#include "serving/served_model.h"

namespace seqserve {

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
