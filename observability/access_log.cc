#include "observability/access_log.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace seqserve {

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(std::string path) {
  FILE* file = path == "-" ? stdout : std::fopen(path.c_str(), "ae");
  if (file == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the access log ", path, " for appending"));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(std::move(path), file));
}

AccessLog::AccessLog(std::string path, FILE* file)
    : path_(std::move(path)), file_(file), writer_([this] { Write(); }) {}

AccessLog::~AccessLog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  writer_.join();
  if (file_ != stdout && file_ != nullptr) std::fclose(file_);
}

std::string AccessLog::FormatLine(const CallRecord& call) {
  nlohmann::json line = {
      {"time", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", call.start, absl::UTCTimeZone())},
      {"protocol", call.protocol},
      {"method", call.method},
      {"model", call.model},
      {"version", call.version},
      {"rows", call.rows},
      {"code", absl::StatusCodeToString(call.code)},
      {"duration_seconds", absl::ToDoubleSeconds(call.duration)},
      {"peer", call.peer},
      {"caller", call.caller}};
  // A model name is client text: invalid UTF-8 is replaced, not fatal.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void AccessLog::OnEnd(const CallRecord& call) {
  std::string line = FormatLine(call);
  absl::MutexLock lock(&mu_);
  if (lines_.size() >= kMaxQueuedLines) {
    ++dropped_;
    return;
  }
  lines_.push_back(std::move(line));
}

void AccessLog::Reopen() {
  absl::MutexLock lock(&mu_);
  reopen_ = true;
}

uint64_t AccessLog::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

void AccessLog::Write() {
  std::vector<std::string> batch;
  for (;;) {
    bool reopen, stop;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return !lines_.empty() || reopen_ || stop_;
      };
      mu_.Await(absl::Condition(&has_work));
      batch.assign(std::make_move_iterator(lines_.begin()),
                   std::make_move_iterator(lines_.end()));
      lines_.clear();
      reopen = std::exchange(reopen_, false);
      stop = stop_;
    }
    for (const std::string& line : batch) {
      std::fwrite(line.data(), 1, line.size(), file_);
      std::fputc('\n', file_);
    }
    std::fflush(file_);
    if (reopen && file_ != stdout) {
      if (FILE* fresh = std::fopen(path_.c_str(), "ae")) {
        std::fclose(file_);
        file_ = fresh;
      } else {
        spdlog::error("cannot reopen the access log {}: still writing the old file", path_);
      }
    }
    if (stop) return;
  }
}

}  // namespace seqserve
