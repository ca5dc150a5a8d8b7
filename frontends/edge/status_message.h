// The text of an error as every front end sends it: one cap for gRPC's
// status message, REST's "message" and v2's "error", so a huge error never
// bloats a reply and every protocol says the same words.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace seqserve {

// Longest message a caller is sent.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// The status's message, cut to kMaxStatusMessageBytes ("..." marks a cut).
std::string CappedStatusMessage(const absl::Status& status);

}  // namespace seqserve
