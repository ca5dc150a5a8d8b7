#include "server/memory_trimmer.h"

#include <unistd.h>

#include <cstdio>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "spdlog/spdlog.h"

namespace seqserve {

MemoryTrimmer::MemoryTrimmer(const Options& options) : options_(options) {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.interval)) LookOnce();
  });
}

MemoryTrimmer::~MemoryTrimmer() {
  stop_.Notify();
  thread_.join();
}

int64_t MemoryTrimmer::ResidentBytes() {
  std::FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  long size = 0, resident = 0;
  const int read = std::fscanf(statm, "%ld %ld", &size, &resident);
  std::fclose(statm);
  return read == 2 ? int64_t{resident} * sysconf(_SC_PAGESIZE) : 0;
}

void MemoryTrimmer::LookOnce() {
#ifdef __GLIBC__
  // What glibc holds free; a trim leaves it counted as free (only its pages
  // go back), so the mark is what the last look saw, and only growth past
  // it by more than the slack is worth another trim.
  const int64_t free_bytes = static_cast<int64_t>(mallinfo2().fordblks);
  if (free_bytes > free_mark_bytes_ + options_.slack_bytes) {
    const int64_t before = ResidentBytes();
    malloc_trim(0);
    const int64_t after = ResidentBytes();
    ++trims_;
    returned_bytes_ += before - after;
    spdlog::debug("gave {:.1f} MB of freed memory back to the system ({:.1f} MB resident)",
                  (before - after) / 1e6, after / 1e6);
  }
  free_mark_bytes_ = free_bytes;
#endif
}

}  // namespace seqserve
