// The access log: one JSON line per call (time, protocol, method, model,
// version, rows, code, duration, peer, and the request id when the caller
// gave one), whatever its protocol. Lines are
// queued and written by a thread of its own, so a slow disk never holds a
// call; when the queue is full (in lines or in bytes), lines are dropped
// and counted. Client text in a line (model, method, peer, caller, ...) is
// cut and escaped, so a line stays under kMaxLineBytes whatever a client
// sends. Reopen() (on SIGHUP) starts a new file after logrotate moved the
// old one.
#pragma once

#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "serving/request_observer.h"

namespace seqserve {

class AccessLog : public RequestObserver {
 public:
  // Lines waiting for the writer, and their bytes; beyond either, lines are
  // dropped. The bytes bound what a stalled disk can make the queue hold.
  static constexpr size_t kMaxQueuedLines = 65536;
  static constexpr size_t kMaxQueuedBytes = size_t{16} << 20;
  // The longest line (without its newline): six text fields of at most
  // kMaxQuotedClientBytes escaped bytes each, and the fixed fields.
  static constexpr size_t kMaxLineBytes = 1200;

  struct Options {
    size_t max_queued_lines = kMaxQueuedLines;
    size_t max_queued_bytes = kMaxQueuedBytes;
  };

  // `path` "-" writes to standard output. FAILED_PRECONDITION when the file
  // cannot be opened for appending.
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(std::string path, Options options);
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(std::string path);
  ~AccessLog() override;  // writes what is queued, then closes

  void OnStart(const CallRecord&) override {}
  void OnEnd(const CallRecord& call) override;

  // Reopens the file at its path; thread-safe, cheap, for a signal thread.
  void Reopen();

  // Lines dropped because the writer fell behind (the queue was full).
  uint64_t dropped() const;

  // One call as its JSON line (without the newline).
  static std::string FormatLine(const CallRecord& call);

 private:
  AccessLog(std::string path, FILE* file, Options options);
  void Write();

  const std::string path_;
  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<std::string> lines_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of lines_
  bool reopen_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  FILE* file_;  // the writer's only
  std::thread writer_;
};

}  // namespace seqserve
