// A caller's id for its request (gRPC metadata x-request-id, the HTTP
// header X-Request-Id, the Open Inference Protocol's request id): checked
// at the edge, before a traffic split routes by it or a log shows it.
#pragma once

#include <cstddef>

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

}  // namespace seqserve
