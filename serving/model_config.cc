#include "serving/model_config.h"

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/text_proto.h"

namespace seqserve {

absl::StatusOr<v1::ModelConfig> LoadModelConfig(const std::string& path) {
  auto text = ReadFileToString(path, kMaxConfigFileBytes);
  if (!text.ok()) return text.status();
  v1::ModelConfig config;
  if (absl::Status parsed = ParseTextProto(*text, &config); !parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.message()));
  }
  return config;
}

}  // namespace seqserve
