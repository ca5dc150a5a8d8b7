#include "observability/capture_files.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace fs = std::filesystem;

namespace {

constexpr absl::string_view kSuffix = ".jsonl";
constexpr size_t kBufferBytes = size_t{256} << 10;

// The part between "<model>-" and ".jsonl": 20261205T131500.123456Z-000001.
bool MatchesStamp(absl::string_view middle) {
  // Eight digits, T, six digits, '.', six digits, Z, '-', then digits.
  if (middle.size() < 26) return false;
  for (size_t i = 0; i < middle.size(); ++i) {
    const char c = middle[i];
    const bool digit = absl::ascii_isdigit(static_cast<unsigned char>(c));
    if (i < 8 || (i > 8 && i < 15) || (i > 15 && i < 22) || i >= 24) {
      if (!digit) return false;
    } else if ((i == 8 && c != 'T') || (i == 15 && c != '.') || (i == 22 && c != 'Z') ||
               (i == 23 && c != '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool CaptureFiles::IsCaptureFile(absl::string_view model, absl::string_view file_name) {
  if (!absl::StartsWith(file_name, model) || !absl::EndsWith(file_name, kSuffix)) return false;
  absl::string_view rest = file_name.substr(model.size());
  if (!absl::ConsumePrefix(&rest, "-")) return false;
  rest.remove_suffix(kSuffix.size());
  return MatchesStamp(rest);
}

CaptureFiles::CaptureFiles(std::string model, std::string directory, uint64_t max_file_bytes,
                           absl::Duration max_file_age, uint64_t max_total_bytes)
    : model_(std::move(model)),
      directory_(std::move(directory)),
      max_file_bytes_(max_file_bytes),
      max_file_age_(max_file_age),
      max_total_bytes_(max_total_bytes) {}

absl::StatusOr<std::unique_ptr<CaptureFiles>> CaptureFiles::Create(
    const std::string& model, const v1::CaptureConfig::Files& config) {
  if (config.directory().empty()) {
    return absl::InvalidArgumentError("capture files: no directory");
  }
  std::error_code error;
  fs::create_directories(config.directory(), error);
  if (!fs::is_directory(config.directory())) {
    return absl::FailedPreconditionError(
        absl::StrCat("capture directory ", config.directory(),
                     " cannot be created: ", error ? error.message() : "not a directory"));
  }
  auto files = std::unique_ptr<CaptureFiles>(new CaptureFiles(
      model, config.directory(),
      config.max_file_bytes() ? config.max_file_bytes() : kDefaultMaxFileBytes,
      absl::Seconds(config.max_file_seconds() ? config.max_file_seconds() : kDefaultMaxFileSeconds),
      config.max_total_bytes() ? config.max_total_bytes() : kDefaultMaxTotalBytes));
  files->EnforceTotal();
  return files;
}

CaptureFiles::~CaptureFiles() { Close(); }

absl::Status CaptureFiles::Begin(absl::Time now) {
  Close();
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%E6SZ", now, absl::UTCTimeZone());
  // "x": never another writer's file (a second server on the same
  // directory, a clock step back); the sequence moves on instead.
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string path = (fs::path(directory_) /
                        absl::StrFormat("%s-%s-%06d%s", model_, stamp, ++sequence_, kSuffix))
                           .string();
    if (std::FILE* file = std::fopen(path.c_str(), "wxe")) {
      // The writer flushes after each batch; a larger buffer than the
      // default 4 KiB saves write calls within a batch.
      std::setvbuf(file, nullptr, _IOFBF, kBufferBytes);
      file_ = file;
      path_ = std::move(path);
      bytes_ = 0;
      opened_ = now;
      EnforceTotal();
      return absl::OkStatus();
    }
    if (errno != EEXIST) {
      return absl::UnavailableError(
          absl::StrCat("cannot create capture file ", path, ": ", std::strerror(errno)));
    }
  }
  return absl::UnavailableError(
      absl::StrCat("cannot create a capture file in ", directory_, ": names taken"));
}

absl::Status CaptureFiles::Write(absl::string_view line, absl::Time now) {
  const uint64_t size = line.size() + 1;
  if (file_ != nullptr &&
      ((bytes_ > 0 && bytes_ + size > max_file_bytes_) || now - opened_ >= max_file_age_)) {
    Close();
  }
  if (file_ == nullptr) {
    if (absl::Status begun = Begin(now); !begun.ok()) return begun;
  }
  const bool written = std::fwrite(line.data(), 1, line.size(), file_) == line.size() &&
                       std::fputc('\n', file_) != EOF;
  bytes_ += size;
  if (!written) {
    const std::string path = path_;
    Close();
    return absl::UnavailableError(absl::StrCat("cannot write capture file ", path));
  }
  return absl::OkStatus();
}

void CaptureFiles::Flush() {
  if (file_ != nullptr) std::fflush(file_);
}

void CaptureFiles::Tick(absl::Time now) {
  if (file_ != nullptr && now - opened_ >= max_file_age_) Close();
}

void CaptureFiles::Close() {
  if (file_ == nullptr) return;
  if (std::fclose(file_) != 0) {
    spdlog::error("capture file {}: closing failed; its last lines may be lost", path_);
  }
  file_ = nullptr;
  path_.clear();
}

void CaptureFiles::EnforceTotal() {
  std::vector<std::pair<std::string, uint64_t>> files;  // name, size
  uint64_t total = 0;
  std::error_code error;
  for (fs::directory_iterator it(directory_, error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (!IsCaptureFile(model_, name)) continue;
    std::error_code size_error;
    uint64_t size = it->file_size(size_error);
    if (size_error) continue;
    if (it->path().string() == path_) size = std::max(size, bytes_);
    files.emplace_back(name, size);
    total += size;
  }
  if (total <= max_total_bytes_) return;
  std::sort(files.begin(), files.end());
  for (const auto& [name, size] : files) {
    if (total <= max_total_bytes_) break;
    const fs::path path = fs::path(directory_) / name;
    if (path.string() == path_) continue;  // the file being written stays
    std::error_code removed;
    if (fs::remove(path, removed)) {
      total -= size;
    } else {
      spdlog::warn("capture: cannot remove {} past the total cap: {}", path.string(),
                   removed.message());
    }
  }
}

}  // namespace seqserve
