// Which version of a model answers a call that names no version and no
// label, when the model's config splits its traffic between versions.
#pragma once

#include <cstdint>
#include <set>

#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "seqserve/v1/config.pb.h"

namespace seqserve {

// The point in [0, 100) a call falls on: from `routing_key` (a request id or
// the caller) when it is given, so the same key always reaches the same
// version and every replica agrees; at random otherwise.
double TrafficPoint(absl::string_view routing_key);

// The point in [0, 100) a call falls on for its model's shadow sample: from
// `request_id` as TrafficPoint is, at random without one, but from another
// hash, so that a shadow samples every traffic share alike (the calls with
// the lowest traffic points are not the ones copied).
double ShadowPoint(absl::string_view request_id);

// The share `point` falls in, among the shares whose versions are
// `available` (their percents scaled up to fill 100, so a canary that
// failed to load takes no calls); 0 when none is available.
int64_t ChooseShare(const google::protobuf::RepeatedPtrField<v1::TrafficShare>& shares,
                    const std::set<int64_t>& available, double point);

}  // namespace seqserve
