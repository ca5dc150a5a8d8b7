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
#include "serving/model_config.h"

namespace seqserve {

// Enough of a file's identity to notice that it was replaced: a copy that
// keeps size and mtime (`cp -p`, `rsync -a`, `tar x`) still changes the
// inode or the ctime.
struct FileStamp {
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  int64_t size = -1;  // -1: no file
  uint64_t device = 0;
  uint64_t inode = 0;
  // The other files beside a model file (its external data), by name and
  // stamp: replacing model.onnx.data alone reloads the version too.
  size_t siblings = 0;
  bool operator==(const FileStamp& other) const {
    return mtime_ns == other.mtime_ns && ctime_ns == other.ctime_ns &&
           size == other.size && device == other.device && inode == other.inode &&
           siblings == other.siblings;
  }
  bool operator!=(const FileStamp& other) const { return !(*this == other); }
};

struct VersionOnDisk {
  int64_t version = 0;
  // The model file; empty when the directory holds none (or two), or when
  // two directories claim this version.
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
  // What is wrong with the model's directory as a whole (no versions, an
  // entry that cannot be read); empty when nothing is.
  std::string problem;
};

// Every model directory under `root`, by name. NOT_FOUND when `root` is not
// a readable directory. A model directory that cannot be read (a symlink
// loop, say) is listed with its problem.
absl::StatusOr<std::vector<ModelOnDisk>> ScanRepository(const std::string& root);

// How `policy` reads in a log line: "latest 1 (the default)", "latest 2",
// "all", "specific [1, 3]".
std::string DescribeVersionPolicy(const v1::VersionPolicy& policy);

// The versions `policy` asks for among `on_disk` (highest first); the
// default policy is the single highest version.
std::vector<int64_t> SelectVersions(const v1::VersionPolicy& policy,
                                    const std::vector<VersionOnDisk>& on_disk);

}  // namespace seqserve
