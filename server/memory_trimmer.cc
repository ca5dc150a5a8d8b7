#include "server/memory_trimmer.h"

#include <unistd.h>

#include <cstdio>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "spdlog/spdlog.h"

namespace seqserve {

MemoryTrimmer::MemoryTrimmer(const Options& options)
    : options_(options), resident_mark_bytes_(ResidentBytes()) {
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
  // Worth a trim when the process grew past what the last trim (or look)
  // left and glibc holds much of it free. Resident size, not the free
  // count, is the mark: a trim leaves freed chunks counted as free (only
  // their pages go back), so a later burst that reuses and frees them again
  // shows only in the resident size.
  const int64_t resident = ResidentBytes();
  if (resident > resident_mark_bytes_ + options_.slack_bytes &&
      static_cast<int64_t>(mallinfo2().fordblks) > options_.slack_bytes) {
    malloc_trim(0);
    const int64_t after = ResidentBytes();
    ++trims_;
    returned_bytes_ += resident - after;
    spdlog::debug("gave {:.1f} MB of freed memory back to the system ({:.1f} MB resident)",
                  (resident - after) / 1e6, after / 1e6);
    resident_mark_bytes_ = after;
  } else if (resident < resident_mark_bytes_) {
    resident_mark_bytes_ = resident;
  }
#endif
}

}  // namespace seqserve
