// The memory trimmer gives back what a burst freed, once, and leaves memory
// in use alone.
#include "server/memory_trimmer.h"

#include <gtest/gtest.h>

#include <memory>
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

TEST(MemoryTrimmer, GivesBackWhatABurstFreedOnceAndLeavesMemoryInUse) {
  if (!kGlibcHeap) GTEST_SKIP() << "needs glibc's allocator";
  MemoryTrimmer::Options options;
  options.interval = absl::Hours(1);  // looks only when the test asks
  MemoryTrimmer trimmer(options);
  trimmer.LookOnce();  // the mark: what is free now
  const int64_t trims_before = trimmer.trims();

  auto blocks = Allocate();
  trimmer.LookOnce();
  EXPECT_EQ(trimmer.trims(), trims_before) << "memory in use was trimmed";

  blocks.clear();
  trimmer.LookOnce();
  EXPECT_EQ(trimmer.trims(), trims_before + 1);
  EXPECT_GT(trimmer.returned_bytes(), int64_t{32} << 20);

  // Nothing new was freed: no second trim.
  trimmer.LookOnce();
  EXPECT_EQ(trimmer.trims(), trims_before + 1);
}

}  // namespace
}  // namespace seqserve
