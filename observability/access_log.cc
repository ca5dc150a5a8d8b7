#include "observability/access_log.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "serving/client_text.h"
#include "spdlog/spdlog.h"

namespace seqserve {

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(std::string path,
                                                          Options options) {
  FILE* file = path == "-" ? stdout : std::fopen(path.c_str(), "ae");
  if (file == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the access log ", path, " for appending"));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(std::move(path), file, options));
}

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(std::string path) {
  return Open(std::move(path), Options());
}

AccessLog::AccessLog(std::string path, FILE* file, Options options)
    : path_(std::move(path)),
      options_(options),
      file_(file),
      writer_([this] { Write(); }) {}

AccessLog::~AccessLog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  writer_.join();
  if (file_ != stdout && file_ != nullptr) std::fclose(file_);
}

std::string AccessLog::FormatLine(const CallRecord& call) {
  // Written by hand, keys in the order nlohmann::json sorted them, so that
  // each text field is cut after escaping (a 15 MiB model name, or one of
  // control bytes that escape to six times their size, still takes at most
  // kMaxQuotedClientBytes) and the line's length has a bound.
  return absl::StrCat(
      "{\"caller\":", JsonQuoteClientText(call.caller),
      ",\"code\":\"", absl::StatusCodeToString(call.code),
      "\",\"duration_seconds\":", nlohmann::json(absl::ToDoubleSeconds(call.duration)).dump(),
      ",\"method\":", JsonQuoteClientText(call.method),
      ",\"model\":", JsonQuoteClientText(call.model),
      ",\"peer\":", JsonQuoteClientText(call.peer),
      ",\"protocol\":", JsonQuoteClientText(call.protocol),
      // Checked at the edge (printable, short), or made there.
      call.request_id.empty()
          ? ""
          : absl::StrCat(",\"request_id\":", JsonQuoteClientText(call.request_id)),
      ",\"rows\":", call.rows,
      ",\"time\":\"", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", call.start, absl::UTCTimeZone()),
      "\"", call.trace_id.empty() ? "" : absl::StrCat(",\"trace_id\":", JsonQuoteClientText(call.trace_id)),
      ",\"version\":", call.version, "}");
}

void AccessLog::OnEnd(const CallRecord& call) {
  std::string line = FormatLine(call);
  absl::MutexLock lock(&mu_);
  if (lines_.size() >= options_.max_queued_lines ||
      queued_bytes_ + line.size() > options_.max_queued_bytes) {
    ++dropped_;
    return;
  }
  queued_bytes_ += line.size();
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
      queued_bytes_ = 0;
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
