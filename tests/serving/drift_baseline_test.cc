// The drift baseline read at load: each way a baseline can fail to fit the
// model's config refuses the load with INVALID_ARGUMENT naming the file and
// the feature.
#include "serving/drift_baseline.h"

#include <google/protobuf/text_format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "core/onnx_loader.h"
#include "serving/served_model.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;

v1::ModelConfig Config(const std::string& baseline_file) {
  v1::ModelConfig config;
  config.add_feature_names("limbs");
  config.add_feature_names("lays_eggs");
  config.add_feature_names("colour");
  config.mutable_drift()->set_baseline_file(baseline_file);
  return config;
}

constexpr const char* kGood = R"pb(
  features { name: "limbs" edges: [ 1, 3 ] counts: [ 5, 10, 5 ] }
  features { name: "lays_eggs" edges: [ 0.5 ] counts: [ 10, 10 ] }
  features { name: "colour" categories: [ "red", "green" ] counts: [ 4, 4, 1 ] }
  class_counts: [ 7, 7, 6 ]
)pb";

v1::DriftBaseline Baseline(const std::string& text) {
  v1::DriftBaseline baseline;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &baseline)) << text;
  return baseline;
}

void ExpectRefused(const v1::DriftBaseline& baseline, const v1::ModelConfig& config,
                   int classes, const std::string& piece) {
  const absl::Status status = CheckDriftBaseline(baseline, config, classes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(piece));
}

TEST(DriftBaseline, AcceptsABaselineThatFitsTheConfig) {
  EXPECT_TRUE(CheckDriftBaseline(Baseline(kGood), Config("b"), 3).ok());
}

TEST(DriftBaseline, RefusesBaselinesThatDoNotFitTheConfig) {
  v1::ModelConfig no_names = Config("b");
  no_names.clear_feature_names();
  ExpectRefused(Baseline(kGood), no_names, 3, "drift needs the config's feature_names");

  v1::DriftBaseline fewer = Baseline(kGood);
  fewer.mutable_features()->RemoveLast();
  ExpectRefused(fewer, Config("b"), 3, "baseline has 2 features; the config's feature_names has 3");

  v1::DriftBaseline renamed = Baseline(kGood);
  renamed.mutable_features(1)->set_name("eggs");
  ExpectRefused(renamed, Config("b"), 3,
                "baseline feature 1 is 'eggs'; the config's feature_names has 'lays_eggs'");

  v1::DriftBaseline both = Baseline(kGood);
  both.mutable_features(2)->add_edges(1.0f);
  ExpectRefused(both, Config("b"), 3, "feature 'colour' needs either edges (numeric) or "
                                      "categories, not both");
  v1::DriftBaseline neither = Baseline(kGood);
  neither.mutable_features(1)->clear_edges();
  ExpectRefused(neither, Config("b"), 3, "feature 'lays_eggs' needs either edges");

  v1::DriftBaseline unordered = Baseline(kGood);
  unordered.mutable_features(0)->set_edges(1, 1.0f);
  ExpectRefused(unordered, Config("b"), 3, "feature 'limbs' edges are not increasing at edge 1");
  v1::DriftBaseline infinite = Baseline(kGood);
  infinite.mutable_features(0)->set_edges(1, std::numeric_limits<float>::infinity());
  ExpectRefused(infinite, Config("b"), 3, "feature 'limbs' edge 1 is not finite");

  v1::DriftBaseline twice = Baseline(kGood);
  twice.mutable_features(2)->set_categories(1, "red");
  ExpectRefused(twice, Config("b"), 3, "feature 'colour' lists category 'red' twice");

  v1::DriftBaseline short_counts = Baseline(kGood);
  short_counts.mutable_features(0)->mutable_counts()->RemoveLast();
  ExpectRefused(short_counts, Config("b"), 3,
                "feature 'limbs' has 2 counts for 2 edges; it needs 3");
  v1::DriftBaseline category_counts = Baseline(kGood);
  category_counts.mutable_features(2)->add_counts(1);
  ExpectRefused(category_counts, Config("b"), 3,
                "feature 'colour' has 4 counts for 2 categories; it needs 3");

  ExpectRefused(Baseline(kGood), Config("b"), 2,
                "baseline has 3 class_counts; the model has 2 classes");
}

TEST(DriftBaseline, MayLeaveThePredictedClassesOut) {
  v1::DriftBaseline no_classes = Baseline(kGood);
  no_classes.clear_class_counts();
  EXPECT_TRUE(CheckDriftBaseline(no_classes, Config("b"), 3).ok());
}

class DriftBaselineFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(DriftBaselineFileTest, ReadsTheFileTheConfigNames) {
  const std::string path = Write("good_baseline.textproto", kGood);
  auto baseline = LoadDriftBaseline(Config(path), 3);
  ASSERT_TRUE(baseline.ok()) << baseline.status();
  ASSERT_NE(*baseline, nullptr);
  EXPECT_EQ((*baseline)->features(2).categories(1), "green");
  v1::ModelConfig none = Config(path);
  none.clear_drift();
  auto nothing = LoadDriftBaseline(none, 3);
  ASSERT_TRUE(nothing.ok());
  EXPECT_EQ(*nothing, nullptr);
}

TEST_F(DriftBaselineFileTest, NamesTheFileInEveryError) {
  const std::string missing = ::testing::TempDir() + "/no_such_baseline.textproto";
  auto absent = LoadDriftBaseline(Config(missing), 3);
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(absent.status().message()),
              HasSubstr("drift baseline " + missing + ": "));

  const std::string garbled = Write("garbled_baseline.textproto", "features { name: \n");
  auto parsed = LoadDriftBaseline(Config(garbled), 3);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()),
              HasSubstr("drift baseline " + garbled + ": line"));

  auto empty = LoadDriftBaseline(Config(""), 3);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("no baseline_file"));
}

TEST_F(DriftBaselineFileTest, ABadBaselineRefusesTheLoad) {
  auto model = LoadOnnxModel(testing::ReferenceDir() + "/species.onnx");
  ASSERT_TRUE(model.ok()) << model.status();
  std::shared_ptr<const Sequential> shared = std::move(*model);
  // species has three outputs: three classes.
  const std::string bad = Write("two_classes.textproto",
                                std::string(kGood).replace(std::string(kGood).find("[ 7, 7, 6 ]"),
                                                           11, "[ 7, 7 ]"));
  auto refused = MakeServedModel("species", 1, shared, Config(bad));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("drift baseline " + bad +
                        ": baseline has 2 class_counts; the model has 3 classes"));

  const std::string good = Write("three_classes.textproto", kGood);
  auto served = MakeServedModel("species", 1, shared, Config(good));
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_NE((*served)->drift_baseline, nullptr);
  EXPECT_EQ((*served)->drift_baseline->class_counts_size(), 3);
}

}  // namespace
}  // namespace seqserve
