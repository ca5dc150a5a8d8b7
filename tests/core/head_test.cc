#include "core/head.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

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

// At the boundary: a logit of 0 is probability 0.5 exactly, not above the
// threshold; 1e-9 is too, once it is a float probability; 1e-5 is above.
TEST(Head, LogitsAtTheBoundaryPredictWhatTheirSigmoidPredicts) {
  for (const auto& [logit, expected] :
       std::vector<std::pair<float, int>>{{0.0f, 0}, {1e-9f, 0}, {-1e-9f, 0}, {1e-5f, 1}}) {
    std::vector<float> p = {logit};
    ApplyHead(Head::kSigmoid, 1, absl::MakeSpan(p));
    EXPECT_EQ(PredictedClass(Head::kLogits, std::vector<float>{logit}), expected) << logit;
    EXPECT_EQ(PredictedClass(Head::kSigmoid, p), expected) << logit;
  }
}

// Both heads predict the same class for every logit, at every threshold:
// swept across each threshold's logit, float by float.
TEST(Head, LogitsAndSigmoidPredictTheSameClassEverywhere) {
  int compared = 0;
  for (float threshold : {0.5f, 0.3f, 0.7f, 0.9f, 0.99f, 0.999999f, 1e-6f}) {
    float logit = std::log(threshold / (1.0f - threshold));
    for (int step = 0; step < 200; ++step) logit = std::nextafter(logit, -INFINITY);
    for (int step = 0; step < 400; ++step, logit = std::nextafter(logit, INFINITY)) {
      std::vector<float> p = {logit};
      ApplyHead(Head::kSigmoid, 1, absl::MakeSpan(p));
      ASSERT_EQ(PredictedClass(Head::kLogits, std::vector<float>{logit}, threshold),
                PredictedClass(Head::kSigmoid, p, threshold))
          << "logit " << logit << " threshold " << threshold;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 7 * 400);
}

TEST(Head, OneOutputIsTwoClasses) {
  EXPECT_EQ(ClassCount(1), 2u);
  EXPECT_EQ(ClassCount(3), 3u);
  // Probabilities 1 - p and p; logits -z and z, whose sigmoids they are.
  EXPECT_THAT(ClassScores(Head::kSigmoid, std::vector<float>{0.8f}),
              ElementsAre(ScoredIndex{0, 1.0f - 0.8f}, ScoredIndex{1, 0.8f}));
  EXPECT_THAT(ClassScores(Head::kLogits, std::vector<float>{1.5f}),
              ElementsAre(ScoredIndex{0, -1.5f}, ScoredIndex{1, 1.5f}));
  // A logit of 0 scores +0 for both classes: no -0 to print differently.
  EXPECT_FALSE(std::signbit(ClassScore(Head::kLogits, std::vector<float>{0.0f}, 0)));
  // Several outputs: a class per output, its score as is.
  EXPECT_THAT(ClassScores(Head::kSoftmax, std::vector<float>{0.2f, 0.5f, 0.3f}),
              ElementsAre(ScoredIndex{0, 0.2f}, ScoredIndex{1, 0.5f}, ScoredIndex{2, 0.3f}));
  EXPECT_EQ(ClassScore(Head::kSigmoid, std::vector<float>{0.8f}, 0), 1.0f - 0.8f);
  EXPECT_EQ(ClassScore(Head::kSoftmax, std::vector<float>{0.2f, 0.5f, 0.3f}, 2), 0.3f);
}

TEST(Head, RankedClassesStartWithThePredictedOne) {
  const std::vector<float> p = {0.6f};
  EXPECT_THAT(RankedClasses(Head::kSigmoid, p, 0.5f, 2),
              ElementsAre(ScoredIndex{1, 0.6f}, ScoredIndex{0, 1.0f - 0.6f}));
  // The threshold decides the class, and so which of the two comes first.
  EXPECT_THAT(RankedClasses(Head::kSigmoid, p, 0.7f, 2),
              ElementsAre(ScoredIndex{0, 1.0f - 0.6f}, ScoredIndex{1, 0.6f}));
  EXPECT_THAT(RankedClasses(Head::kSigmoid, p, 0.7f, 1), ElementsAre(ScoredIndex{0, 1.0f - 0.6f}));
  EXPECT_THAT(RankedClasses(Head::kLogits, std::vector<float>{-2.0f}, 0.5f, 5),
              ElementsAre(ScoredIndex{0, 2.0f}, ScoredIndex{1, -2.0f}));
  EXPECT_TRUE(RankedClasses(Head::kSigmoid, p, 0.5f, 0).empty());
  // A probability of exactly 0.5: class 0, first, as ties go to the lower index.
  EXPECT_THAT(RankedClasses(Head::kSigmoid, std::vector<float>{0.5f}, 0.5f, 2),
              ElementsAre(ScoredIndex{0, 0.5f}, ScoredIndex{1, 0.5f}));
  // Several outputs: best first, as TopK.
  const std::vector<float> row = {0.1f, 0.7f, 0.2f};
  EXPECT_EQ(RankedClasses(Head::kSoftmax, row, 0.5f, 2), TopK(row, 2));
}

}  // namespace
}  // namespace seqserve
