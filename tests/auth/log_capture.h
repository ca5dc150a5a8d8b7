// Captures what the default spdlog logger writes while it lives, one
// "<level> <message>" line a record, for tests of what is logged.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"

namespace seqserve::testing {

class LogCapture {
 public:
  // Add it before threads that log start, remove it after they end: the
  // logger's list of sinks is not guarded.
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096)) {
    sink_->set_pattern("%l %v");
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Everything, one line a record (the sink reads under its lock).
  std::string text() const {
    std::string all;
    for (const std::string& line : sink_->last_formatted()) all += line;
    return all;
  }
  // The records that contain `piece`.
  std::vector<std::string> Lines(const std::string& piece) const {
    std::vector<std::string> found;
    for (const std::string& line : sink_->last_formatted()) {
      if (line.find(piece) != std::string::npos) {
        found.emplace_back(absl::StripSuffix(line, "\n"));
      }
    }
    return found;
  }
  // Waits until a line contains `piece`; whether one did within `timeout`.
  bool WaitFor(const std::string& piece, absl::Duration timeout) const {
    const absl::Time give_up = absl::Now() + timeout;
    while (Lines(piece).empty()) {
      if (absl::Now() > give_up) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

}  // namespace seqserve::testing
