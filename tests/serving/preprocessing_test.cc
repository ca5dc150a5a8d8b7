// Preprocessing declared in config.textproto: each transform's float32
// arithmetic, step by step as NumPy or PyTorch computes the same expression,
// what missing and unknown values do, what a config may not declare, and
// a standardize config against the same normalization exported in the
// graph (constant Sub and Div before the first Linear).
#include "serving/preprocessing.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "core/model_file.h"
#include "core/text_loader.h"
#include "nlohmann/json.hpp"
#include "seqserve/v1/model.pb.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

v1::ModelConfig Config(const std::string& text) {
  v1::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

std::shared_ptr<const Preprocessing> Create(const std::string& config, int model_width) {
  auto made = Preprocessing::Create(Config(config), model_width);
  EXPECT_TRUE(made.ok()) << made.status();
  return made.ok() ? *made : nullptr;
}

// Rows of raw values in feature order; `categories`, when given, parallel
// to `numbers` ("" where a number is sent).
absl::StatusOr<std::vector<float>> Prepare(const Preprocessing& p, std::vector<float> numbers,
                                           std::vector<std::string> categories = {}) {
  const size_t rows = numbers.size() / p.raw_width();
  google::protobuf::RepeatedPtrField<std::string> texts(categories.begin(), categories.end());
  std::vector<size_t> order(p.raw_width());
  std::iota(order.begin(), order.end(), 0);
  RawRowsView raw(rows, p.raw_width(), numbers, texts, order);
  std::vector<float> out(rows * p.prepared_width(), -7.0f);
  absl::Status status = p.Prepare(raw, absl::MakeSpan(out));
  if (!status.ok()) return status;
  return out;
}

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void ExpectBits(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(SameBits(got[i], want[i])) << i << ": " << got[i] << " vs " << want[i];
  }
}

void ExpectRefused(const absl::StatusOr<std::vector<float>>& got, const std::string& message) {
  ASSERT_FALSE(got.ok()) << "prepared";
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr(message));
}

// StandardScaler's transform: x - mean_, then / scale_, in float32.
TEST(Preprocessing, StandardizeSubtractsThenDivides) {
  auto p = Create(R"pb(
    feature_names: [ "weight" ]
    preprocessing { feature: "weight" standardize { mean: 2.7 std: 1.3 } }
  )pb", 1);
  ASSERT_NE(p, nullptr);
  const std::vector<float> xs = {0.0f, 1.1f, 2.7f, -3.3f, 1e6f, 0.1f};
  std::vector<float> want;
  for (volatile float x : xs) {
    volatile float centred = x - 2.7f;
    want.push_back(centred / 1.3f);
  }
  auto got = Prepare(*p, xs);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectBits(*got, want);
  EXPECT_FALSE(p->passthrough());
}

// (x - min) / (max - min) * (high - low) + low, each step in float32;
// feature_range defaults to [0, 1].
TEST(Preprocessing, MinMaxMapsTheTrainingRangeOntoTheFeatureRange) {
  auto p = Create(R"pb(
    feature_names: [ "a", "b" ]
    preprocessing { feature: "a" min_max { min: 3 max: 13 } }
    preprocessing { feature: "b" min_max { min: -0.5 max: 0.7 low: -1 high: 1 } }
  )pb", 2);
  ASSERT_NE(p, nullptr);
  auto got = Prepare(*p, {3, -0.5f, 13, 0.7f, 8, 0.1f, 20, -3});
  ASSERT_TRUE(got.ok()) << got.status();
  auto b = [](volatile float x) {
    volatile float shifted = x - -0.5f;
    volatile float range = 0.7f - -0.5f;
    volatile float unit = shifted / range;
    volatile float scaled = unit * 2.0f;
    return scaled + -1.0f;
  };
  ExpectBits(*got, {0, b(-0.5f), 1, b(0.7f), 0.5f, b(0.1f), 1.7f, b(-3)});
  EXPECT_FLOAT_EQ((*got)[1], -1.0f);
  EXPECT_FLOAT_EQ((*got)[3], 1.0f);
}

// Clip bounds the value as sent, before it is scaled.
TEST(Preprocessing, ClipComesBeforeScaling) {
  auto p = Create(R"pb(
    feature_names: [ "age", "income" ]
    preprocessing { feature: "age" clip { min: 0 max: 100 } }
    preprocessing {
      feature: "income"
      clip { max: 1000 }
      standardize { mean: 500 std: 250 }
    }
  )pb", 2);
  ASSERT_NE(p, nullptr);
  auto got = Prepare(*p, {-5, 5000, 130, -4000, 42, 750});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(0, 2, 100, -18, 42, 1));
}

TEST(Preprocessing, OneHotWritesOneColumnPerCategory) {
  auto p = Create(R"pb(
    feature_names: [ "limbs", "species" ]
    preprocessing { feature: "species" one_hot { categories: [ "cat", "dog", "bird" ] } }
  )pb", 4);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->raw_width(), 2u);
  EXPECT_EQ(p->prepared_width(), 4u);
  EXPECT_THAT(p->categories(1), ElementsAre("cat", "dog", "bird"));
  EXPECT_TRUE(p->categories(0).empty());
  auto got = Prepare(*p, {4, kNan, 2, kNan, 4, kNan}, {"", "dog", "", "bird", "", "cat"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(4, 0, 1, 0, 2, 0, 0, 1, 4, 1, 0, 0));
  ExpectRefused(Prepare(*p, {4, kNan}, {"", "fish"}),
                "row 0 feature 'species' is 'fish', not one of its categories (cat, dog, bird)");
}

TEST(Preprocessing, AnUnknownCategoryIsRefusedZerosOrOther) {
  const std::string features = R"pb(feature_names: [ "species" ])pb";
  auto refused = Create(features + R"pb(
    preprocessing { feature: "species" one_hot { categories: [ "cat", "dog" ] unknown: UNKNOWN_ERROR } }
  )pb", 2);
  auto zeros = Create(features + R"pb(
    preprocessing { feature: "species" one_hot { categories: [ "cat", "dog" ] unknown: UNKNOWN_ZEROS } }
  )pb", 2);
  auto other = Create(features + R"pb(
    preprocessing { feature: "species" one_hot { categories: [ "cat", "dog" ] unknown: UNKNOWN_OTHER } }
  )pb", 3);
  ASSERT_TRUE(refused && zeros && other);
  ExpectRefused(Prepare(*refused, {kNan}, {"emu"}), "row 0 feature 'species' is 'emu'");
  auto got = Prepare(*zeros, {kNan, kNan}, {"emu", "dog"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(0, 0, 0, 1));
  got = Prepare(*other, {kNan, kNan}, {"emu", "cat"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(0, 0, 1, 1, 0, 0));
}

// A number sent for a categorical feature is the category of its text;
// text sent for a numeric feature is read as a number.
TEST(Preprocessing, NumbersAndTextCrossOver) {
  auto p = Create(R"pb(
    feature_names: [ "rooms", "floor" ]
    preprocessing { feature: "floor" one_hot { categories: [ "0", "1", "2.5" ] } }
  )pb", 4);
  ASSERT_NE(p, nullptr);
  auto got = Prepare(*p, {kNan, 2.5f, kNan, 1}, {"3.5", "", "7", ""});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(3.5f, 0, 0, 1, 7, 0, 1, 0));
  ExpectRefused(Prepare(*p, {kNan, 1}, {"three", ""}),
                "row 0 feature 'rooms' is a number, got 'three'");
}

TEST(Preprocessing, MissingValuesTakeTheirDefaultOrAreRefused) {
  auto p = Create(R"pb(
    feature_names: [ "age", "height", "species" ]
    preprocessing { feature: "age" missing_value: 30 standardize { mean: 40 std: 10 } }
    preprocessing { feature: "species" one_hot { categories: [ "cat", "dog" ] } missing_category: "dog" }
  )pb", 4);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->may_be_left_out(0));
  EXPECT_FALSE(p->may_be_left_out(1));
  EXPECT_TRUE(p->may_be_left_out(2));
  auto got = Prepare(*p, {kNan, 1.5f, kNan}, {"", "", ""});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(-1, 1.5f, 0, 1));
  ExpectRefused(Prepare(*p, {50, kNan, kNan}, {"", "", "cat"}),
                "row 0 feature 'height' is missing (left out, null or NaN) and its "
                "preprocessing gives no missing_value");
}

TEST(Preprocessing, InfAndOverflowAreRefused) {
  auto p = Create(R"pb(
    feature_names: [ "x" ]
    preprocessing { feature: "x" standardize { mean: 0 std: 1e-30 } }
  )pb", 1);
  ASSERT_NE(p, nullptr);
  ExpectRefused(Prepare(*p, {1, std::numeric_limits<float>::infinity()}),
                "row 1 feature 'x' is Inf");
  ExpectRefused(Prepare(*p, {1e20f}), "row 0 feature 'x' overflows its scaling");
}

TEST(Preprocessing, WithoutTransformsRowsGoToTheModelAsSent) {
  auto p = Create(R"pb(feature_names: [ "a", "b", "c" ])pb", 3);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->passthrough());
  EXPECT_EQ(p->raw_width(), 3u);
  EXPECT_EQ(p->prepared_width(), 3u);
  auto unnamed = Create("", 5);
  ASSERT_NE(unnamed, nullptr);
  EXPECT_TRUE(unnamed->passthrough());
  EXPECT_EQ(unnamed->raw_width(), 5u);
}

TEST(Preprocessing, RefusesConfigsThatCannotBeApplied) {
  struct Case {
    std::string config;
    int width;
    std::string message;
  };
  const std::string two = R"pb(feature_names: [ "a", "b" ] )pb";
  const std::vector<Case> cases = {
      {R"pb(preprocessing { feature: "a" standardize { mean: 0 std: 1 } })pb", 1,
       "config preprocessing needs feature_names"},
      {two + R"pb(preprocessing { feature: "c" standardize { mean: 0 std: 1 } })pb", 2,
       "config preprocessing names feature 'c', which is not one of feature_names (a, b)"},
      {two + R"pb(preprocessing { feature: "a" clip { max: 1 } }
                  preprocessing { feature: "a" clip { min: 0 } })pb",
       2, "feature 'a': given twice"},
      {two + R"pb(preprocessing { feature: "a" standardize { mean: 0 std: 0 } })pb", 2,
       "feature 'a': standardize needs a finite mean and a positive finite std"},
      {two + R"pb(preprocessing { feature: "a" min_max { min: 2 max: 2 } })pb", 2,
       "feature 'a': min_max needs min below max"},
      {two + R"pb(preprocessing { feature: "a" min_max { min: 0 max: 2 low: 1 high: 1 } })pb", 2,
       "feature 'a': min_max needs low below high"},
      {two + R"pb(preprocessing { feature: "b" clip { min: 3 max: 1 } })pb", 2,
       "feature 'b': clip min 3 is above max 1"},
      {two + R"pb(preprocessing { feature: "b" one_hot { } })pb", 2,
       "feature 'b': one_hot needs categories"},
      {two + R"pb(preprocessing { feature: "b" one_hot { categories: [ "x", "" ] } })pb", 3,
       "feature 'b': a one_hot category is empty"},
      {two + R"pb(preprocessing { feature: "b" one_hot { categories: [ "x", "x" ] } })pb", 3,
       "feature 'b': one_hot category 'x' is given twice"},
      {two + R"pb(preprocessing { feature: "b" one_hot { categories: [ "x" ] } clip { max: 1 } })pb",
       2, "feature 'b': a one_hot feature has no clip"},
      {two + R"pb(preprocessing { feature: "b" one_hot { categories: [ "x" ] } missing_value: 1 })pb",
       2, "feature 'b': a one_hot feature's default is missing_category"},
      {two + R"pb(preprocessing { feature: "a" missing_category: "x" })pb", 2,
       "feature 'a': missing_category is for one_hot features"},
      {two + R"pb(preprocessing { feature: "b" one_hot { categories: [ "x", "y" ] } missing_category: "z" })pb",
       3, "feature 'b': missing_category 'z' is not one of its categories"},
      {two + R"pb(preprocessing { feature: "b" one_hot { categories: [ "x", "y", "z" ] } })pb", 3,
       "config preprocessing prepares 4 values from 2 features (one_hot counts one per "
       "category), but the model takes 3 inputs"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.config);
    auto made = Preprocessing::Create(Config(c.config), c.width);
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(made.status().message()), HasSubstr(c.message));
  }
}

TEST(Preprocessing, EqualWhenTheTransformsAreEqual) {
  const std::string config = R"pb(
    feature_names: [ "a" ]
    preprocessing { feature: "a" standardize { mean: 1 std: 2 } }
  )pb";
  auto a = Create(config, 1);
  auto b = Create(config, 1);
  auto c = Create(R"pb(
    feature_names: [ "a" ]
    preprocessing { feature: "a" standardize { mean: 1 std: 3 } }
  )pb", 1);
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(*a == *b);
  EXPECT_FALSE(*a == *c);
}

// The standardize model exported with its normalization in the graph
// (constant Sub then Div before the first Linear): the same layers without
// that prefix, behind a config that standardizes with the same constants,
// answer with the same bits, and NumPy's numbers.
TEST(Preprocessing, StandardizeGivesTheBitsOfTheNormalizationInTheGraph) {
  const std::string folder = testing::ReferenceDir() + "/normalize/standardize_init";
  std::ifstream text_file(folder + "/model.textproto");
  ASSERT_TRUE(text_file);
  const std::string text((std::istreambuf_iterator<char>(text_file)), {});
  v1::SequentialModel layers;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &layers));
  ASSERT_TRUE(layers.layers(0).has_elementwise());
  const auto& steps = layers.layers(0).elementwise().steps();
  ASSERT_EQ(steps.size(), 2);
  ASSERT_EQ(steps[0].op(), v1::Elementwise::OP_SUB);
  ASSERT_EQ(steps[1].op(), v1::Elementwise::OP_DIV);

  v1::ModelConfig config;
  for (int f = 0; f < layers.input_width(); ++f) {
    const std::string name = "x" + std::to_string(f);
    config.add_feature_names(name);
    v1::FeatureTransform* t = config.add_preprocessing();
    t->set_feature(name);
    t->mutable_standardize()->set_mean(steps[0].value(f));
    t->mutable_standardize()->set_std(steps[1].value(f));
  }
  layers.mutable_layers()->DeleteSubrange(0, 1);
  std::string stripped;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(layers, &stripped));
  auto model = ParseTextModel(stripped, "stripped");
  ASSERT_TRUE(model.ok()) << model.status();
  auto exported = LoadModelFile(folder + "/model.onnx");
  ASSERT_TRUE(exported.ok()) << exported.status();
  auto p = Preprocessing::Create(config, layers.input_width());
  ASSERT_TRUE(p.ok()) << p.status();

  std::ifstream reference_file(folder + "/reference.json");
  const nlohmann::json reference = nlohmann::json::parse(reference_file);
  std::vector<float> inputs;
  for (const auto& row : reference["inputs"]) {
    for (double v : row) inputs.push_back(static_cast<float>(v));
  }
  const size_t rows = reference["inputs"].size();
  auto prepared = Prepare(**p, inputs);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  auto got = (*model)->Predict(*prepared, rows, Head::kLogits);
  auto want = (*exported)->Predict(inputs, rows, Head::kLogits);
  ASSERT_TRUE(got.ok() && want.ok());
  ExpectBits(*got, *want);
  std::vector<float> numpy;
  for (const auto& row : reference["output"]) {
    for (double v : row) numpy.push_back(static_cast<float>(v));
  }
  ASSERT_EQ(got->size(), numpy.size());
  for (size_t i = 0; i < numpy.size(); ++i) {
    EXPECT_TRUE(testing::CloseToReference((*got)[i], numpy[i])) << i;
  }
}

}  // namespace
}  // namespace seqserve
