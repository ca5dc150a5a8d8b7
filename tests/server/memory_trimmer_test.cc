// The memory trimmer gives back what each burst freed, once per burst, and
// leaves memory in use alone.
#include "server/memory_trimmer.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace seqserve {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__GLIBC__)
constexpr bool kGlibcHeap = false;  // a sanitizer's allocator, or not glibc's
#else
constexpr bool kGlibcHeap = true;
#endif

// 64 MiB in 64 KiB blocks: below glibc's mmap threshold, so they come
// from its heap and stay there when freed.
std::vector<std::unique_ptr<char[]>> Allocate() {
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < 1024; ++i) {
    blocks.emplace_back(new char[64 * 1024]);
    for (int j = 0; j < 64 * 1024; j += 4096) blocks.back()[j] = 1;  // touched: resident
  }
  return blocks;
}

// On a thread of its own, as a call's memory is: such threads allocate from
// arenas of their own, which keep what is freed (the main arena gives much
// of it back by itself).
void BurstsOnAThreadOfTheirOwn() {
  MemoryTrimmer::Options options;
  options.interval = absl::Hours(1);  // looks only when the test asks
  MemoryTrimmer trimmer(options);
  trimmer.LookOnce();
  const int64_t start = MemoryTrimmer::ResidentBytes();
  // Back near the start: what the slack allows, and a little.
  const int64_t near_start = start + options.slack_bytes + (int64_t{8} << 20);

  auto blocks = Allocate();
  const int64_t trims = trimmer.trims();
  trimmer.LookOnce();
  EXPECT_EQ(trimmer.trims(), trims) << "memory in use was trimmed";
  EXPECT_GT(MemoryTrimmer::ResidentBytes(), start + (int64_t{48} << 20));

  // Two bursts, each freed between two looks: after each look the process
  // is back near where it started, whether glibc gave the pages back by
  // itself or kept them for a trim (its arenas for threads keep them,
  // and a second burst reuses the chunks the first freed, which glibc
  // still counts as free after a trim).
  for (int burst = 0; burst < 2; ++burst) {
    if (burst > 0) blocks = Allocate();
    blocks.clear();
    trimmer.LookOnce();
    EXPECT_LT(MemoryTrimmer::ResidentBytes(), near_start) << "burst " << burst;
  }
  // Nothing new was freed: no trim.
  const int64_t settled = trimmer.trims();
  trimmer.LookOnce();
  EXPECT_EQ(trimmer.trims(), settled);
}

TEST(MemoryTrimmer, GivesBackWhatEachBurstFreedAndLeavesMemoryInUse) {
  if (!kGlibcHeap) GTEST_SKIP() << "needs glibc's allocator";
  std::thread bursts(BurstsOnAThreadOfTheirOwn);
  bursts.join();
}

}  // namespace
}  // namespace seqserve
