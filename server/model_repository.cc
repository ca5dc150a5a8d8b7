#include "server/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/text_proto.h"

namespace seqserve {
namespace {

namespace fs = std::filesystem;

constexpr const char* kConfigFile = "config.textproto";
constexpr const char* kModelFiles[] = {"model.onnx", "model.textproto"};

FileStamp StampOf(const fs::path& path) {
  std::error_code error;
  FileStamp stamp;
  const auto size = fs::file_size(path, error);
  if (error) return stamp;
  const auto mtime = fs::last_write_time(path, error);
  if (error) return stamp;
  stamp.size = static_cast<int64_t>(size);
  stamp.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       mtime.time_since_epoch())
                       .count();
  return stamp;
}

VersionOnDisk ReadVersion(const fs::path& dir, int64_t version) {
  VersionOnDisk result;
  result.version = version;
  std::vector<fs::path> found;
  for (const char* name : kModelFiles) {
    std::error_code error;
    if (fs::is_regular_file(dir / name, error)) found.push_back(dir / name);
  }
  if (found.size() == 1) {
    result.model_path = found[0].string();
    result.stamp = StampOf(found[0]);
  } else if (found.empty()) {
    result.problem = absl::StrCat(dir.string(),
                                  ": no model.onnx or model.textproto");
  } else {
    result.problem = absl::StrCat(
        dir.string(), ": both model.onnx and model.textproto; keep one");
  }
  return result;
}

}  // namespace

absl::StatusOr<std::vector<ModelOnDisk>> ScanRepository(const std::string& root) {
  std::error_code error;
  fs::directory_iterator models(root, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat("model repository ", root,
                                            " cannot be read: ", error.message()));
  }
  std::vector<ModelOnDisk> result;
  for (const auto& model_dir : models) {
    const std::string name = model_dir.path().filename().string();
    if (name.empty() || name[0] == '.' || !model_dir.is_directory(error)) continue;
    ModelOnDisk model;
    model.name = name;
    const fs::path config = model_dir.path() / kConfigFile;
    if (fs::is_regular_file(config, error)) {
      model.config_path = config.string();
      model.config_stamp = StampOf(config);
    }
    fs::directory_iterator versions(model_dir.path(), error);
    if (!error) {
      for (const auto& version_dir : versions) {
        int64_t version;
        if (!version_dir.is_directory(error) ||
            !absl::SimpleAtoi(version_dir.path().filename().string(), &version) ||
            version <= 0) {
          continue;
        }
        model.versions.push_back(ReadVersion(version_dir.path(), version));
      }
    }
    std::sort(model.versions.begin(), model.versions.end(),
              [](const VersionOnDisk& a, const VersionOnDisk& b) {
                return a.version > b.version;
              });
    result.push_back(std::move(model));
  }
  std::sort(result.begin(), result.end(),
            [](const ModelOnDisk& a, const ModelOnDisk& b) { return a.name < b.name; });
  return result;
}

absl::StatusOr<v1::ModelConfig> LoadModelConfig(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  v1::ModelConfig config;
  if (absl::Status parsed = ParseTextProto(*text, &config); !parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.message()));
  }
  return config;
}

std::vector<int64_t> SelectVersions(const v1::VersionPolicy& policy,
                                    const std::vector<VersionOnDisk>& on_disk) {
  std::vector<int64_t> selected;
  switch (policy.policy_case()) {
    case v1::VersionPolicy::kAll:
      for (const auto& version : on_disk) selected.push_back(version.version);
      break;
    case v1::VersionPolicy::kSpecific: {
      std::set<int64_t> wanted(policy.specific().versions().begin(),
                               policy.specific().versions().end());
      for (const auto& version : on_disk) {
        if (wanted.count(version.version)) selected.push_back(version.version);
      }
      break;
    }
    case v1::VersionPolicy::kLatest:
    case v1::VersionPolicy::POLICY_NOT_SET: {
      const size_t count = std::max<uint32_t>(1, policy.latest().num_versions());
      for (size_t i = 0; i < on_disk.size() && i < count; ++i) {
        selected.push_back(on_disk[i].version);
      }
      break;
    }
  }
  return selected;
}

}  // namespace seqserve
