// A model's config.textproto: read apart from the repository scan, so the
// seqmodel tool reads a config exactly as the server does.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "seqserve/v1/config.pb.h"

namespace seqserve {

// Largest config.textproto read: a config is a few lines.
inline constexpr uint64_t kMaxConfigFileBytes = 1 << 20;

// Parses a config.textproto; INVALID_ARGUMENT with the path, line and column.
absl::StatusOr<v1::ModelConfig> LoadModelConfig(const std::string& path);

}  // namespace seqserve
