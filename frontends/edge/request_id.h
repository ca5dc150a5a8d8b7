// A caller's id for its request (gRPC metadata x-request-id, the HTTP
// header X-Request-Id, the Open Inference Protocol's request id): checked
// at the edge, before a traffic split routes by it or a log shows it.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace seqserve {

// Longest request id accepted.
inline constexpr size_t kMaxRequestIdBytes = 128;

// OK for an empty id (none given) or one of at most kMaxRequestIdBytes
// printable ASCII bytes (space to '~'); else INVALID_ARGUMENT naming
// `source` (where the id came from) and what is wrong, never the id's
// bytes.
absl::Status CheckRequestId(absl::string_view id, absl::string_view source);

// An id for a call whose caller gave none: 32 random hex digits.
std::string NewRequestId();

// A call's ids from what its caller sent: `given` (an id already checked
// with CheckRequestId; empty when none came), else a new one; and the trace
// id of `traceparent` (TraceIdOf).
struct CallIds {
  std::string request_id;
  bool made = false;
  std::string trace_id;
};
CallIds AssignCallIds(absl::string_view given, absl::string_view traceparent);

// The trace id of a W3C traceparent header ("00-<32 hex trace id>-<16 hex
// parent id>-<2 hex flags>", lower case; a later version may add fields
// after these), or "" when `traceparent` is not one: the trace context
// specification says to ignore such a header.
std::string TraceIdOf(absl::string_view traceparent);

}  // namespace seqserve
