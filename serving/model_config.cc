#include "serving/model_config.h"

#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/text_proto.h"
#include "serving/client_text.h"

namespace seqserve {

absl::StatusOr<v1::ModelConfig> LoadModelConfig(const std::string& path) {
  auto text = ReadFileToString(path, kMaxConfigFileBytes);
  if (!text.ok()) return text.status();
  v1::ModelConfig config;
  if (absl::Status parsed = ParseTextProto(*text, &config); !parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.message()));
  }
  if (absl::Status checked = CheckModelConfig(config); !checked.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", checked.message()));
  }
  ResolveConfigPaths(std::filesystem::path(path).parent_path().string(), &config);
  return config;
}

void ResolveConfigPaths(const std::string& model_directory, v1::ModelConfig* config) {
  auto resolve = [&model_directory](std::string* file) {
    if (file->empty() || std::filesystem::path(*file).is_absolute()) return;
    *file = (std::filesystem::path(model_directory) / *file).lexically_normal().string();
  };
  if (config->has_capture()) {
    v1::CaptureConfig* capture = config->mutable_capture();
    if (capture->has_files()) resolve(capture->mutable_files()->mutable_directory());
    if (capture->has_http()) {
      v1::CaptureConfig::Http* http = capture->mutable_http();
      resolve(http->mutable_token_file());
      resolve(http->mutable_ca_file());
      resolve(http->mutable_cert_file());
      resolve(http->mutable_key_file());
    }
  }
  if (config->has_drift()) resolve(config->mutable_drift()->mutable_baseline_file());
}

absl::Status CheckModelConfig(const v1::ModelConfig& config) {
  for (const auto& [label, version] : config.version_labels()) {
    if (label.empty()) return absl::InvalidArgumentError("a version label is empty");
    if (version <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "version label '", EscapeInvalidUtf8(label), "' names version ", version,
          "; versions are positive"));
    }
  }
  std::set<int64_t> shared;
  uint32_t percent = 0;
  for (const v1::TrafficShare& share : config.traffic()) {
    if (share.version() <= 0 || share.percent() == 0 || share.percent() > 100) {
      return absl::InvalidArgumentError(absl::StrCat(
          "traffic share { version: ", share.version(), " percent: ", share.percent(),
          " } needs a positive version and 1 to 100 percent"));
    }
    if (!shared.insert(share.version()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("traffic names version ", share.version(), " twice"));
    }
    percent += share.percent();
  }
  if (!shared.empty() && percent != 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("traffic shares add up to ", percent, " percent, not 100"));
  }
  if (config.has_shadow()) {
    const v1::ShadowConfig& shadow = config.shadow();
    if (shadow.version() <= 0 || shadow.percent() == 0 || shadow.percent() > 100) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shadow { version: ", shadow.version(), " percent: ", shadow.percent(),
          " } needs a positive version and 1 to 100 percent"));
    }
    if (shared.count(shadow.version())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shadow version ", shadow.version(),
          " also takes traffic: a shadow's answers are never returned"));
    }
  }
  if (config.has_capture()) {
    const v1::CaptureConfig& capture = config.capture();
    if (!(capture.sample_rate() >= 0 && capture.sample_rate() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "capture sample_rate ", capture.sample_rate(), " is not between 0 and 1"));
    }
    if (capture.has_files() && capture.files().directory().empty()) {
      return absl::InvalidArgumentError("capture files { } needs a directory");
    }
    if (capture.has_http() && !absl::StartsWithIgnoreCase(capture.http().url(), "http://") &&
        !absl::StartsWithIgnoreCase(capture.http().url(), "https://")) {
      // Not quoted: a URL may carry a password or a token.
      return absl::InvalidArgumentError("capture http url is not an http:// or https:// URL");
    }
  }
  return absl::OkStatus();
}

}  // namespace seqserve
