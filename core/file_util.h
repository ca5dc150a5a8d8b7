// Small file helpers shared by the model loaders.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace seqserve {

// Protobuf cannot parse a message of 2 GiB or more: no model file is larger.
inline constexpr uint64_t kMaxModelFileBytes = (uint64_t{1} << 31) - 1;

// The whole file, read into one buffer sized from the file's size.
// NOT_FOUND when it cannot be opened or read, FAILED_PRECONDITION when it is
// not a regular file (a directory named like a model file, say),
// RESOURCE_EXHAUSTED when it is larger than `max_bytes`.
absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             uint64_t max_bytes = kMaxModelFileBytes);

}  // namespace seqserve
