// Payload capture's files destination: one model's JSON Lines in a
// directory, as <model>-<UTC time>-<sequence>.jsonl (names sort oldest
// first). A file is closed and the next begun past max_file_bytes or
// max_file_seconds; when the model's files there pass max_total_bytes
// (checked as a file is begun), its oldest closed files are removed. Used
// by one thread (the capture writer); not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "seqserve/v1/config.pb.h"

namespace seqserve {

class CaptureFiles {
 public:
  // The config's zeros taken as these.
  static constexpr uint64_t kDefaultMaxFileBytes = uint64_t{64} << 20;
  static constexpr uint32_t kDefaultMaxFileSeconds = 3600;
  static constexpr uint64_t kDefaultMaxTotalBytes = uint64_t{1} << 30;

  // Creates the directory when missing. FAILED_PRECONDITION when it cannot
  // be, or is not a directory; INVALID_ARGUMENT without a directory.
  static absl::StatusOr<std::unique_ptr<CaptureFiles>> Create(
      const std::string& model, const v1::CaptureConfig::Files& config);
  ~CaptureFiles();  // Close()

  // Appends `line` and a newline, beginning a new file first when the
  // current one is full or old. UNAVAILABLE when the write failed (the
  // file is closed and the next write begins another).
  absl::Status Write(absl::string_view line, absl::Time now);
  // Hands buffered lines to the system.
  void Flush();
  // Closes the current file once it is older than max_file_seconds, so an
  // idle model's last file is finished without waiting for a new record.
  void Tick(absl::Time now);
  void Close();

  // Whether `file_name` is one of `model`'s capture files.
  static bool IsCaptureFile(absl::string_view model, absl::string_view file_name);
  const std::string& current_path() const { return path_; }

 private:
  CaptureFiles(std::string model, std::string directory, uint64_t max_file_bytes,
               absl::Duration max_file_age, uint64_t max_total_bytes);
  absl::Status Begin(absl::Time now);
  // Removes the oldest closed files while the model's files exceed the cap.
  void EnforceTotal();

  const std::string model_;
  const std::string directory_;
  const uint64_t max_file_bytes_;
  const absl::Duration max_file_age_;
  const uint64_t max_total_bytes_;
  std::FILE* file_ = nullptr;
  std::string path_;
  uint64_t bytes_ = 0;
  absl::Time opened_;
  uint64_t sequence_ = 0;
};

}  // namespace seqserve
