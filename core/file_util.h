// Small file helpers shared by the model loaders.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace seqserve {

// The whole file; NOT_FOUND when it cannot be opened or read.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace seqserve
