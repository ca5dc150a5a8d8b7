#include "serving/model_repository.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_util.h"
#include "serving/client_text.h"

namespace seqserve {
namespace {

namespace fs = std::filesystem;

constexpr const char* kConfigFile = "config.textproto";
constexpr const char* kModelFiles[] = {"model.onnx", "model.textproto"};

// The entries of `dir`; `error` says why the listing failed or stopped.
// directory_iterator's increment throws on a failed readdir (an NFS
// volume's ESTALE, say): this never does.
std::vector<fs::path> ListDirectory(const fs::path& dir, std::error_code& error) {
  std::vector<fs::path> entries;
  fs::directory_iterator it(dir, error);
  for (; !error && it != fs::directory_iterator(); it.increment(error)) {
    entries.push_back(it->path());
  }
  return entries;
}

FileStamp StampOf(const fs::path& path) {
  FileStamp stamp;
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return stamp;
  stamp.size = static_cast<int64_t>(info.st_size);
  stamp.mtime_ns = int64_t{info.st_mtim.tv_sec} * 1'000'000'000 + info.st_mtim.tv_nsec;
  stamp.ctime_ns = int64_t{info.st_ctim.tv_sec} * 1'000'000'000 + info.st_ctim.tv_nsec;
  stamp.device = info.st_dev;
  stamp.inode = info.st_ino;
  return stamp;
}

// What kind of entry `path` is, following symlinks; the error says why it
// cannot be told (a symlink loop, no permission).
fs::file_status StatusOf(const fs::path& path, std::error_code& error) {
  fs::file_status status = fs::status(path, error);
  if (error == std::errc::no_such_file_or_directory) error.clear();
  return status;
}

// One hash of every other file in a version directory, by name and stamp.
size_t SiblingsStamp(const fs::path& dir, const std::string& model_file) {
  std::error_code error;
  std::vector<std::pair<std::string, FileStamp>> files;
  for (const fs::path& entry : ListDirectory(dir, error)) {
    const std::string name = entry.filename().string();
    if (name == model_file || name.empty() || name[0] == '.') continue;
    files.emplace_back(name, StampOf(entry));
  }
  if (error) files.emplace_back("\x01unreadable", FileStamp());
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t hash = files.size();
  for (const auto& [name, stamp] : files) {
    hash = absl::Hash<std::tuple<size_t, std::string, int64_t, int64_t, int64_t, uint64_t,
                                 uint64_t>>{}(std::make_tuple(hash, name, stamp.mtime_ns,
                                                              stamp.ctime_ns, stamp.size,
                                                              stamp.device, stamp.inode));
  }
  return hash;
}

VersionOnDisk ReadVersion(const fs::path& dir, int64_t version) {
  VersionOnDisk result;
  result.version = version;
  std::vector<fs::path> found;
  std::vector<std::string> problems;
  for (const char* name : kModelFiles) {
    std::error_code error;
    const fs::file_status status = StatusOf(dir / name, error);
    if (error) {
      problems.push_back(absl::StrCat(name, " cannot be read: ", error.message()));
    } else if (fs::is_regular_file(status)) {
      found.push_back(dir / name);
    } else if (fs::is_directory(status)) {
      problems.push_back(absl::StrCat(name, " is a directory, not a file"));
    } else if (fs::exists(status)) {
      problems.push_back(absl::StrCat(name, " is not a regular file"));
    }
  }
  if (found.size() == 2) {
    result.problem = absl::StrCat(
        dir.string(), ": both model.onnx and model.textproto; keep one");
  } else if (!problems.empty()) {
    result.problem = absl::StrCat(dir.string(), ": ", absl::StrJoin(problems, "; "));
  } else if (found.empty()) {
    result.problem = absl::StrCat(dir.string(), ": no model.onnx or model.textproto");
  } else {
    result.model_path = found[0].string();
    result.stamp = StampOf(found[0]);
    result.stamp.siblings = SiblingsStamp(dir, found[0].filename().string());
  }
  return result;
}

// The versions of one model directory. Two directories that name the same
// number ("1" and "01") give one version with a problem and no file:
// picking either would be a guess.
std::vector<VersionOnDisk> ReadVersions(const fs::path& model_dir,
                                        std::vector<std::string>* problems) {
  std::error_code error;
  const std::vector<fs::path> entries = ListDirectory(model_dir, error);
  if (error) {
    problems->push_back(absl::StrCat("cannot be read: ", error.message()));
    return {};
  }
  std::map<int64_t, std::vector<fs::path>> by_number;
  for (const fs::path& entry : entries) {
    int64_t version;
    if (!absl::SimpleAtoi(entry.filename().string(), &version) || version <= 0) {
      continue;  // config.textproto, notes, anything not a version
    }
    const fs::file_status status = StatusOf(entry, error);
    if (error) {
      problems->push_back(absl::StrCat("version directory ", entry.filename().string(),
                                       " cannot be read: ", error.message()));
      error.clear();
      continue;
    }
    if (fs::is_directory(status)) by_number[version].push_back(entry);
  }
  std::vector<VersionOnDisk> versions;
  for (auto& [number, dirs] : by_number) {
    if (dirs.size() == 1) {
      versions.push_back(ReadVersion(dirs[0], number));
      continue;
    }
    std::vector<std::string> names;
    for (const fs::path& dir : dirs) names.push_back(dir.filename().string());
    std::sort(names.begin(), names.end());
    VersionOnDisk clash;
    clash.version = number;
    clash.problem = absl::StrCat(model_dir.string(), ": directories ",
                                 absl::StrJoin(names, " and "), " all claim version ",
                                 number, "; none is loaded until one is renamed");
    versions.push_back(std::move(clash));
  }
  std::sort(versions.begin(), versions.end(),
            [](const VersionOnDisk& a, const VersionOnDisk& b) {
              return a.version > b.version;
            });
  return versions;
}

}  // namespace

absl::StatusOr<std::vector<ModelOnDisk>> ScanRepository(const std::string& root) {
  std::error_code error;
  const std::vector<fs::path> models = ListDirectory(root, error);
  if (error) {
    // Whether it could not be opened or failed midway: keep what is loaded.
    return absl::NotFoundError(absl::StrCat("model repository ", root,
                                            " cannot be read: ", error.message()));
  }
  std::vector<ModelOnDisk> result;
  for (const fs::path& model_path : models) {
    const std::string name = model_path.filename().string();
    if (name.empty() || name[0] == '.') continue;
    ModelOnDisk model;
    model.name = EscapeInvalidUtf8(name);
    std::vector<std::string> problems;
    if (model.name != name) {
      // A model name travels in proto3 strings: it must be valid UTF-8.
      model.problem = absl::StrCat(model.name, ": the directory name is not valid UTF-8; "
                                               "rename it");
      result.push_back(std::move(model));
      continue;
    }
    const fs::file_status status = StatusOf(model_path, error);
    if (error) {
      // A model directory we cannot look into is reported, not skipped.
      problems.push_back(absl::StrCat("cannot be read: ", error.message()));
      error.clear();
    } else if (!fs::is_directory(status)) {
      continue;  // a stray file beside the models
    } else {
      const fs::path config = model_path / kConfigFile;
      if (fs::is_regular_file(config, error)) {
        model.config_path = config.string();
        model.config_stamp = StampOf(config);
      }
      model.versions = ReadVersions(model_path, &problems);
      if (model.versions.empty() && problems.empty()) {
        problems.push_back(
            "no version directories (expected <model>/<positive integer>/model.onnx)");
      }
    }
    if (!problems.empty()) {
      model.problem = absl::StrCat(model_path.string(), ": ",
                                   absl::StrJoin(problems, "; "));
    }
    result.push_back(std::move(model));
  }
  std::sort(result.begin(), result.end(),
            [](const ModelOnDisk& a, const ModelOnDisk& b) { return a.name < b.name; });
  return result;
}

std::string DescribeVersionPolicy(const v1::VersionPolicy& policy) {
  switch (policy.policy_case()) {
    case v1::VersionPolicy::kAll:
      return "all";
    case v1::VersionPolicy::kSpecific:
      return absl::StrCat("specific [", absl::StrJoin(policy.specific().versions(), ", "),
                          "]");
    case v1::VersionPolicy::kLatest:
      return absl::StrCat("latest ", std::max<uint32_t>(1, policy.latest().num_versions()));
    case v1::VersionPolicy::POLICY_NOT_SET:
      break;
  }
  return "latest 1 (the default)";
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
