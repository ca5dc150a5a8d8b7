// Small file helpers shared by the model loaders.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace seqserve {

// Protobuf cannot parse a message of 2 GiB or more: no model file is larger.
inline constexpr uint64_t kMaxModelFileBytes = (uint64_t{1} << 31) - 1;

// How the loaders may use memory.
struct ModelLoadOptions {
  // The graph file plus every external data file it names, by their sizes
  // on disk, checked with fstat before anything is read. Over it a load is
  // RESOURCE_EXHAUSTED, naming the file and both sizes.
  uint64_t max_model_bytes = uint64_t{1} << 30;
};

// The whole file, read into one buffer sized from the file's size.
// NOT_FOUND when it cannot be opened or read, FAILED_PRECONDITION when it is
// not a regular file (a directory named like a model file, say),
// RESOURCE_EXHAUSTED when it is larger than `max_bytes`.
absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             uint64_t max_bytes = kMaxModelFileBytes);

}  // namespace seqserve
