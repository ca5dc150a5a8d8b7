// The points calls fall on: traffic shares and shadow samples hold over
// ids that count up (as many callers make them), and a shadow's sample is
// independent of the traffic split.
#include "serving/version_routing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace seqserve {
namespace {

// Five sigma of a binomial count.
double FiveSigma(int n, double p) { return 5 * std::sqrt(n * p * (1 - p)); }

TEST(VersionRouting, EveryTenthOfTheRangeTakesItsShareOfIdsThatCountUp) {
  constexpr int kIds = 1000;
  for (const std::string prefix : {"", "r", "request-", "2026-12-04T10:00:00Z-"}) {
    for (int first : {0, 1000, 123456}) {
      int tenths[10] = {};
      for (int i = first; i < first + kIds; ++i) {
        ++tenths[static_cast<int>(TrafficPoint(absl::StrCat(prefix, i)) / 10)];
      }
      for (int tenth = 0; tenth < 10; ++tenth) {
        EXPECT_NEAR(tenths[tenth], kIds / 10, FiveSigma(kIds, 0.1))
            << "ids " << prefix << first << ".. in [" << tenth * 10 << ", " << tenth * 10 + 10
            << ")";
      }
    }
  }
}

TEST(VersionRouting, TheShadowSampleIsIndependentOfTheTrafficSplit) {
  constexpr int kIds = 10000;
  int traffic = 0, shadow = 0, both = 0;
  for (int i = 0; i < kIds; ++i) {
    const std::string id = absl::StrCat("request-", i);
    EXPECT_EQ(ShadowPoint(id), ShadowPoint(id));
    EXPECT_NE(ShadowPoint(id), TrafficPoint(id));
    const bool low_traffic = TrafficPoint(id) < 10, low_shadow = ShadowPoint(id) < 10;
    traffic += low_traffic;
    shadow += low_shadow;
    both += low_traffic && low_shadow;
  }
  EXPECT_NEAR(traffic, kIds / 10, FiveSigma(kIds, 0.1));
  EXPECT_NEAR(shadow, kIds / 10, FiveSigma(kIds, 0.1));
  // A 10% sample of a 10% share: 1% of the ids, not 10%.
  EXPECT_NEAR(both, kIds / 100, FiveSigma(kIds, 0.01));
}

TEST(VersionRouting, WithoutAnIdThePointIsRandom) {
  constexpr int kCalls = 10000;
  int low = 0;
  for (int i = 0; i < kCalls; ++i) low += ShadowPoint("") < 25;
  EXPECT_NEAR(low, kCalls / 4, FiveSigma(kCalls, 0.25));
}

}  // namespace
}  // namespace seqserve
