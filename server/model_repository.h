// Reads the model repository layout on disk, without loading anything:
//
//   REPO/<model>/config.textproto          optional ModelConfig
//   REPO/<model>/<version>/model.onnx      or model.textproto
//
// A version is a directory named by a positive integer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "seqserve/v1/config.pb.h"

namespace seqserve {

// Enough of a file's identity to notice that it was replaced.
struct FileStamp {
  int64_t mtime_ns = 0;
  int64_t size = -1;  // -1: no file
  bool operator==(const FileStamp& other) const {
    return mtime_ns == other.mtime_ns && size == other.size;
  }
  bool operator!=(const FileStamp& other) const { return !(*this == other); }
};

struct VersionOnDisk {
  int64_t version = 0;
  // The model file; empty when the directory holds none (or two).
  std::string model_path;
  // Why model_path is empty.
  std::string problem;
  FileStamp stamp;
};

struct ModelOnDisk {
  std::string name;
  std::string config_path;  // empty when the model has no config file
  FileStamp config_stamp;
  std::vector<VersionOnDisk> versions;  // highest first
};

// Every model directory under `root`, by name. NOT_FOUND when `root` is not
// a readable directory.
absl::StatusOr<std::vector<ModelOnDisk>> ScanRepository(const std::string& root);

// Parses a config.textproto; INVALID_ARGUMENT with line and column.
absl::StatusOr<v1::ModelConfig> LoadModelConfig(const std::string& path);

// The versions `policy` asks for among `on_disk` (highest first); the
// default policy is the single highest version.
std::vector<int64_t> SelectVersions(const v1::VersionPolicy& policy,
                                    const std::vector<VersionOnDisk>& on_disk);

}  // namespace seqserve
