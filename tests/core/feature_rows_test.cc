#include "core/feature_rows.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

namespace seqserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(FeatureRows, ReadsRowsSkippingBlankAndCommentLines) {
  auto rows = ParseFeatureRows("# limbs,eggs,hair\n4,0,1\n\n 2 , 1, 0 \r\n");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->rows, 2u);
  EXPECT_EQ(rows->width, 3u);
  EXPECT_THAT(rows->values, ElementsAre(4, 0, 1, 2, 1, 0));
}

TEST(FeatureRows, NamesTheLineAndColumnOfABadField) {
  auto rows = ParseFeatureRows("4,0,1\n2,x,0\n");
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rows.status().message()),
              HasSubstr("line 2 column 2: 'x' is not a finite number"));
}

TEST(FeatureRows, RefusesNonFiniteValues) {
  auto rows = ParseFeatureRows("nan,1\n");
  ASSERT_FALSE(rows.ok());
  EXPECT_THAT(std::string(rows.status().message()), HasSubstr("line 1 column 1"));
}

TEST(FeatureRows, RefusesRowsOfTheWrongWidth) {
  auto rows = ParseFeatureRows("1,2,3\n1,2\n");
  ASSERT_FALSE(rows.ok());
  EXPECT_THAT(std::string(rows.status().message()),
              HasSubstr("line 2 has 2 values, expected 3"));
  auto fixed = ParseFeatureRows("1,2\n", 3);
  ASSERT_FALSE(fixed.ok());
  EXPECT_THAT(std::string(fixed.status().message()),
              HasSubstr("line 1 has 2 values, expected 3"));
}

TEST(FeatureRows, FormatFloatRoundTripsExactly) {
  for (float value : {0.1f, 1.4593553e-06f, 9.766318e-20f, -13.437514f, 1.0f}) {
    const std::string text = FormatFloat(value);
    EXPECT_EQ(std::strtof(text.c_str(), nullptr), value) << text;
  }
  EXPECT_EQ(FormatFloat(1.0f), "1");
}

}  // namespace
}  // namespace seqserve
