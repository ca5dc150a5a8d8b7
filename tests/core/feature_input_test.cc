#include "core/feature_input.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace seqserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

FeatureInputOptions Named() {
  FeatureInputOptions options;
  options.feature_names = {"limbs", "lays_eggs", "has_hair"};
  return options;
}

TEST(FeatureInput, PlainCsvIsReadInOrder) {
  auto rows = ParseFeatureInput("4,0,1\n2,1,0\n", {});
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->rows, 2u);
  EXPECT_THAT(rows->values, ElementsAre(4, 0, 1, 2, 1, 0));
}

TEST(FeatureInput, AHeaderIsMatchedByNameInAnyOrder) {
  auto rows = ParseFeatureInput("has_hair,limbs,lays_eggs\n1,4,0\n0,2,1\n", Named());
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->rows, 2u);
  EXPECT_EQ(rows->width, 3u);
  EXPECT_THAT(rows->values, ElementsAre(4, 0, 1, 2, 1, 0));
}

TEST(FeatureInput, PandasIndexColumnAndQuotedNamesAreAccepted) {
  auto rows = ParseFeatureInput(",\"lays_eggs\",has_hair,limbs\n0,0,1,4\n1,1,0,2\n", Named());
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_THAT(rows->values, ElementsAre(4, 0, 1, 2, 1, 0));
}

TEST(FeatureInput, WithoutFeatureNamesAHeaderIsSkipped) {
  FeatureInputOptions options;
  options.width = 3;
  auto rows = ParseFeatureInput("a,b,c\n4,0,1\n", options);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_THAT(rows->values, ElementsAre(4, 0, 1));
  auto narrow = ParseFeatureInput("a,b\n4,0\n", options);
  EXPECT_EQ(narrow.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(narrow.status().message(),
              HasSubstr("line 1: header has 2 columns ('a', 'b'), the model takes 3 features"));
}

// pandas' df.to_csv() writes its index first under an empty name: skipped
// whether or not the model names its features.
TEST(FeatureInput, PandasIndexColumnIsSkippedWithoutFeatureNames) {
  FeatureInputOptions options;
  options.width = 3;
  auto rows = ParseFeatureInput(",limbs,eggs,hair\n0,4,0,1\n1,2,1,0\n", options);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->width, 3u);
  EXPECT_THAT(rows->values, ElementsAre(4, 0, 1, 2, 1, 0));
  options.width = 0;  // the width left to the server
  rows = ParseFeatureInput("\"\",limbs,eggs,hair\n7,4,0,1\n", options);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_THAT(rows->values, ElementsAre(4, 0, 1));
}

TEST(FeatureInput, CountErrorsNameTheColumns) {
  FeatureInputOptions options;
  options.width = 3;
  auto wide = ParseFeatureInput("id,limbs,eggs,hair\n0,4,0,1\n", options);
  EXPECT_EQ(wide.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wide.status().message(),
              HasSubstr("line 1: header has 4 columns ('id', 'limbs', 'eggs', 'hair'), the "
                        "model takes 3 features"));
  auto narrow = ParseFeatureInput(",limbs,eggs\n0,4,0\n", options);
  EXPECT_THAT(narrow.status().message(),
              HasSubstr("line 1: header has 2 columns after pandas' index ('limbs', 'eggs'), "
                        "the model takes 3 features"));
  auto short_row = ParseFeatureInput(",limbs,eggs,hair\n0,4,0,1\n1,2,1\n", options);
  EXPECT_THAT(short_row.status().message(),
              HasSubstr("line 3 has 3 values, expected 4 ('', 'limbs', 'eggs', 'hair')"));
  auto named = ParseFeatureInput("4,0,1\n2,1\n", Named());
  EXPECT_THAT(named.status().message(),
              HasSubstr("line 2 has 2 values, expected 3 ('limbs', 'lays_eggs', 'has_hair')"));
}

TEST(FeatureInput, InputThatNamesItsColumnsNeedsTheFeatureNames) {
  EXPECT_FALSE(InputNamesFeatures("4,0,1\n2,1,0\n"));
  EXPECT_FALSE(InputNamesFeatures("{\"features\": [4, 0, 1]}\n"));
  EXPECT_FALSE(InputNamesFeatures(""));
  EXPECT_TRUE(InputNamesFeatures("# animals\nlimbs,lays_eggs,has_hair\n4,0,1\n"));
  EXPECT_TRUE(InputNamesFeatures(",a,b,c\n0,4,0,1\n"));
  EXPECT_TRUE(InputNamesFeatures("{\"features\": [4, 0, 1]}\n{\"limbs\": 2}\n"));
}

TEST(FeatureInput, UnknownAndMissingColumnsAreNamed) {
  auto rows = ParseFeatureInput("limbs,eggs,has_hair\n4,0,1\n", Named());
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rows.status().message(),
              HasSubstr("line 1: header has unknown column 'eggs' and missing column "
                        "'lays_eggs'; the model takes limbs,lays_eggs,has_hair"));
  rows = ParseFeatureInput("limbs,limbs,has_hair\n4,0,1\n", Named());
  EXPECT_THAT(rows.status().message(), HasSubstr("header names column 'limbs' twice"));
}

TEST(FeatureInput, BadValuesUnderAHeaderNameTheirLineOfTheFile) {
  FeatureInputOptions options = Named();
  options.line_word = "rows.csv line";
  auto rows = ParseFeatureInput("# animals\nlimbs,lays_eggs,has_hair\n4,0,1\n2,x,0\n", options);
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rows.status().message(),
              HasSubstr("rows.csv line 4 column 2: 'x' is not a finite number"));
}

TEST(FeatureInput, JsonLinesByArrayOrByName) {
  auto rows = ParseFeatureInput(
      "{\"features\": [4, 0, 1]}\n\n{\"has_hair\": 0, \"limbs\": 2, \"lays_eggs\": 1}\n",
      Named());
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->rows, 2u);
  EXPECT_THAT(rows->values, ElementsAre(4, 0, 1, 2, 1, 0));
}

// Text is a category and null a missing value, both NaN among the values,
// for the model's preprocessing to read; rows before the first text get
// empty categories.
TEST(FeatureInput, JsonLinesByNameCarryTextAndNull) {
  auto rows = ParseFeatureInput(
      "{\"features\": [4, 0, 1]}\n"
      "{\"has_hair\": \"yes\", \"limbs\": null, \"lays_eggs\": 1}\n"
      "{\"has_hair\": 1, \"limbs\": 6, \"lays_eggs\": \"no\"}\n",
      Named());
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->rows, 3u);
  ASSERT_EQ(rows->values.size(), 9u);
  EXPECT_THAT(rows->categories, ElementsAre("", "", "", "", "", "yes", "", "no", ""));
  for (size_t i : {3u, 5u, 7u}) EXPECT_TRUE(std::isnan(rows->values[i])) << i;
  EXPECT_EQ(rows->values[4], 1.0f);
  EXPECT_EQ(rows->values[6], 6.0f);
  EXPECT_EQ(rows->values[8], 1.0f);

  rows = ParseFeatureInput("{\"has_hair\": 0, \"limbs\": 2, \"lays_eggs\": 1}\n", Named());
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_TRUE(rows->categories.empty());
  rows = ParseFeatureInput("{\"has_hair\": [1], \"limbs\": 2, \"lays_eggs\": 1}\n", Named());
  EXPECT_THAT(rows.status().message(),
              HasSubstr("line 1: 'has_hair' is not a finite number, text or null"));
}

TEST(FeatureInput, JsonLinesRefusalsNameTheLine) {
  auto rows = ParseFeatureInput("{\"features\": [4, 0, 1]}\n{\"features\": [4, 0\n", Named());
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rows.status().message(), HasSubstr("line 2: not a JSON object"));
  rows = ParseFeatureInput("{\"limbs\": 4, \"eggs\": 0}\n", Named());
  EXPECT_THAT(rows.status().message(),
              HasSubstr("line 1: features unknown 'eggs' and missing 'lays_eggs', "
                        "'has_hair'"));
  rows = ParseFeatureInput("{\"features\": [4, \"0\", 1]}\n", Named());
  EXPECT_THAT(rows.status().message(), HasSubstr("line 1: feature 1 is not a finite number"));
  rows = ParseFeatureInput("{\"features\": [4, 1e300, 1]}\n", Named());
  EXPECT_THAT(rows.status().message(), HasSubstr("line 1: feature 1 is not a finite number"));
  rows = ParseFeatureInput("{\"limbs\": 4}\n", {});
  EXPECT_THAT(rows.status().message(), HasSubstr("need the model's feature_names"));
  rows = ParseFeatureInput("{\"features\": [4, 0, 1]}\n{\"features\": [4]}\n", {});
  EXPECT_THAT(rows.status().message(), HasSubstr("line 2: has 1 values, expected 3"));
}

TEST(FeatureInput, NoRowsIsRefused) {
  for (const char* text : {"", "\n# nothing\n", "limbs,lays_eggs,has_hair\n"}) {
    auto rows = ParseFeatureInput(text, Named());
    EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(rows.status().message(), HasSubstr("no feature rows given")) << text;
  }
}

}  // namespace
}  // namespace seqserve
