// Gives memory freed after a burst of large calls back to the system.
//
// glibc keeps what a burst freed in its arenas (one per thread that
// allocated), so a process that once held 200 requests of 15 MB stays at
// that size: what Kubernetes bills and OOM-kills on. A thread of its own
// looks once per interval: when the resident size grew by more than
// `slack` past what the last trim left (or the lowest seen since) and
// glibc holds more than `slack` free (mallinfo2), it calls malloc_trim(0),
// which hands the free pages back. Memory in use is never trimmed, and
// calls of steady size do not trigger it. Elsewhere than glibc it does
// nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace seqserve {

class MemoryTrimmer {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(1);
    int64_t slack_bytes = int64_t{8} << 20;
  };
  explicit MemoryTrimmer(const Options& options);
  ~MemoryTrimmer();  // stops the thread

  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  // Trims done so far, and the resident bytes they gave back (from the
  // resident size just before and after each).
  int64_t trims() const { return trims_.load(); }
  int64_t returned_bytes() const { return returned_bytes_.load(); }

  // One look, as the thread takes it; for tests, with an interval long
  // enough that the thread never looks at the same time.
  void LookOnce();

  // The process's resident bytes now; 0 where it cannot be read.
  static int64_t ResidentBytes();

 private:
  const Options options_;
  int64_t resident_mark_bytes_ = 0;  // what the last trim left, or lower
  std::atomic<int64_t> trims_{0}, returned_bytes_{0};
  absl::Notification stop_;
  std::thread thread_;  // last: starts once the rest exists
};

}  // namespace seqserve
