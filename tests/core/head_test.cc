#include "core/head.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

namespace seqserve {
namespace {

using ::testing::ElementsAre;

TEST(Head, NamesRoundTrip) {
  for (Head head : {Head::kLogits, Head::kSigmoid, Head::kSoftmax, Head::kLogSoftmax}) {
    EXPECT_EQ(ParseHeadName(HeadName(head)), head);
  }
  EXPECT_EQ(ParseHeadName("Softmax"), std::nullopt);
  EXPECT_EQ(ParseHeadName(""), std::nullopt);
}

TEST(Head, LogitsAreLeftAlone) {
  std::vector<float> values = {-3.5f, 0.0f, 7.25f};
  ApplyHead(Head::kLogits, 3, absl::MakeSpan(values));
  EXPECT_THAT(values, ElementsAre(-3.5f, 0.0f, 7.25f));
}

TEST(Head, SigmoidIsIndependentPerOutput) {
  std::vector<float> values = {0.0f, 2.0f, -2.0f, -100.0f, 100.0f};
  ApplyHead(Head::kSigmoid, 5, absl::MakeSpan(values));
  EXPECT_FLOAT_EQ(values[0], 0.5f);
  EXPECT_FLOAT_EQ(values[1], 1.0f / (1.0f + std::exp(-2.0f)));
  EXPECT_FLOAT_EQ(values[1] + values[2], 1.0f);
  EXPECT_GE(values[3], 0.0f);
  EXPECT_LT(values[3], 1e-40f);
  EXPECT_EQ(values[4], 1.0f);
}

TEST(Head, SoftmaxRowsSumToOne) {
  std::vector<float> values = {1, 2, 3, -1, 0, 1};
  ApplyHead(Head::kSoftmax, 3, absl::MakeSpan(values));
  EXPECT_NEAR(values[0] + values[1] + values[2], 1.0f, 1e-6);
  EXPECT_NEAR(values[3] + values[4] + values[5], 1.0f, 1e-6);
  // Softmax is shift-invariant: both rows are the same distribution.
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(values[i], values[i + 3], 1e-7);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(values[2], std::exp(3.0) / z, 1e-6);
}

TEST(Head, SoftmaxStaysFiniteForLogitsInTheThousands) {
  std::vector<float> values = {3000.0f, 2999.0f, -4000.0f};
  ApplyHead(Head::kSoftmax, 3, absl::MakeSpan(values));
  for (float v : values) EXPECT_TRUE(std::isfinite(v));
  const double z = 1.0 + std::exp(-1.0);
  EXPECT_NEAR(values[0], 1.0 / z, 1e-6);
  EXPECT_NEAR(values[1], std::exp(-1.0) / z, 1e-6);
  EXPECT_EQ(values[2], 0.0f);
}

// torch.log_softmax of a row holding an extreme logit: the log of a
// probability that softmax rounds to zero stays finite and exact.
TEST(Head, LogSoftmaxIsStableForLogitsInTheThousands) {
  std::vector<float> values = {3000.0f, 2999.0f, -4000.0f, 1.0f, 2.0f, 3.0f};
  ApplyHead(Head::kLogSoftmax, 3, absl::MakeSpan(values));
  const double log_z = std::log1p(std::exp(-1.0));
  EXPECT_NEAR(values[0], -log_z, 1e-6);
  EXPECT_NEAR(values[1], -1.0 - log_z, 1e-6);
  EXPECT_NEAR(values[2], -7000.0 - log_z, 1e-3);
  EXPECT_EQ(HeadName(Head::kLogSoftmax), "log_softmax");
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(values[5], 3.0 - std::log(z), 1e-6);
  EXPECT_EQ(PredictedClass(Head::kLogSoftmax, absl::MakeSpan(values).subspan(3)), 2);
}

TEST(Head, TopKBreaksTiesByLowerIndex) {
  const std::vector<float> row = {0.2f, 0.5f, 0.1f, 0.5f, 0.2f};
  EXPECT_THAT(TopK(row, 4),
              ElementsAre(ScoredIndex{1, 0.5f}, ScoredIndex{3, 0.5f},
                          ScoredIndex{0, 0.2f}, ScoredIndex{4, 0.2f}));
}

TEST(Head, TopKClampsToTheRowWidth) {
  const std::vector<float> row = {1.0f, 3.0f};
  EXPECT_THAT(TopK(row, 10),
              ElementsAre(ScoredIndex{1, 3.0f}, ScoredIndex{0, 1.0f}));
  EXPECT_TRUE(TopK(row, 0).empty());
}

TEST(Head, PredictedClassOfSeveralOutputsIsTheBest) {
  const std::vector<float> row = {0.1f, 0.7f, 0.7f};
  EXPECT_EQ(PredictedClass(Head::kSoftmax, row), 1);
  EXPECT_EQ(PredictedClass(Head::kLogits, row), 1);
}

TEST(Head, PredictedClassOfOneOutputUsesTheThreshold) {
  EXPECT_EQ(PredictedClass(Head::kSigmoid, std::vector<float>{0.6f}), 1);
  EXPECT_EQ(PredictedClass(Head::kSigmoid, std::vector<float>{0.5f}), 0);
  EXPECT_EQ(PredictedClass(Head::kSigmoid, std::vector<float>{0.6f}, 0.7f), 0);
  // Logit 0.1 is probability 0.525: positive at 0.5, negative at 0.6.
  EXPECT_EQ(PredictedClass(Head::kLogits, std::vector<float>{0.1f}), 1);
  EXPECT_EQ(PredictedClass(Head::kLogits, std::vector<float>{0.1f}, 0.6f), 0);
  EXPECT_EQ(PredictedClass(Head::kLogits, std::vector<float>{-0.1f}), 0);
}

}  // namespace
}  // namespace seqserve
