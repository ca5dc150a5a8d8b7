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

// Parses a config.textproto; INVALID_ARGUMENT with the path, line and column,
// or what CheckModelConfig finds.
absl::StatusOr<v1::ModelConfig> LoadModelConfig(const std::string& path);

// What a config can be told wrong without its model: version labels,
// traffic shares (positive, on distinct versions, adding up to 100) and the
// shadow (1 to 100 percent, not a version the traffic goes to).
// INVALID_ARGUMENT saying which.
absl::Status CheckModelConfig(const v1::ModelConfig& config);

// Makes the files a config names (capture's directory and sink files, the
// drift baseline) absolute: a relative one is in the model's directory.
// LoadModelConfig does it; a config from elsewhere (a load call) needs it.
void ResolveConfigPaths(const std::string& model_directory, v1::ModelConfig* config);

}  // namespace seqserve
