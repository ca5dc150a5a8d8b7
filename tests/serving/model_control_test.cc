// The model manager under each control mode: explicit load, unload and
// index; a failed load that leaves what serves; configs given by a load;
// version labels; traffic shares and the checks of a config's routing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "serving/model_config.h"
#include "serving/model_manager.h"
#include "serving/version_routing.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::TestRepository;

ModelManager::Options Control(ModelControlMode mode, std::vector<std::string> startup = {}) {
  ModelManager::Options options;
  options.control = mode;
  options.startup_models = std::move(startup);
  return options;
}

int64_t ServedVersion(const ModelManager& manager, const std::string& model,
                      VersionRequest asked = {}) {
  auto served = manager.Find(model, asked);
  return served.ok() ? (*served)->version : -1;
}

v1::ModelConfig Config(const std::string& text) {
  v1::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

class ModelControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository_.AddReferenceVersion("species", 1, "species");
    repository_.AddReferenceVersion("mammal", 1, "mammal");
  }
  TestRepository repository_;
};

TEST_F(ModelControlTest, ExplicitLoadsOnlyTheNamedModelsAtStart) {
  ModelManager manager(repository_.root(), Control(ModelControlMode::kExplicit, {"species"}));
  manager.Refresh();
  EXPECT_EQ(ServedVersion(manager, "species"), 1);
  auto mammal = manager.Find("mammal", 0);
  ASSERT_FALSE(mammal.ok());
  EXPECT_EQ(mammal.status().code(), absl::StatusCode::kNotFound);
  // A later pass does not pick up what was not asked for.
  repository_.AddReferenceVersion("species", 2, "species");
  manager.Refresh();
  EXPECT_EQ(ServedVersion(manager, "species"), 1);

  ModelManager all(repository_.root(), Control(ModelControlMode::kExplicit, {"*"}));
  all.Refresh();
  EXPECT_EQ(ServedVersion(all, "species"), 2);
  EXPECT_EQ(ServedVersion(all, "mammal"), 1);
}

TEST_F(ModelControlTest, TheIndexListsModelsOnDiskLoadedOrNot) {
  repository_.WriteFile("broken/1/model.onnx", "not a model");
  ModelManager manager(repository_.root(),
                       Control(ModelControlMode::kExplicit, {"species", "broken"}));
  manager.Refresh();
  auto index = manager.Index(/*ready=*/false);
  ASSERT_TRUE(index.ok()) << index.status();
  std::map<std::string, IndexEntry> by_model;
  for (const IndexEntry& entry : *index) by_model[entry.model] = entry;
  ASSERT_EQ(by_model.size(), 3u);
  EXPECT_EQ(by_model["species"].version, 1);
  EXPECT_EQ(by_model["species"].state, v1::MODEL_STATE_AVAILABLE);
  EXPECT_EQ(by_model["mammal"].version, 0);
  EXPECT_EQ(by_model["mammal"].state, v1::MODEL_STATE_UNLOADED);
  EXPECT_EQ(by_model["broken"].state, v1::MODEL_STATE_FAILED);
  EXPECT_THAT(by_model["broken"].reason, HasSubstr("not an ONNX model"));
  auto ready = manager.Index(/*ready=*/true);
  ASSERT_TRUE(ready.ok());
  ASSERT_EQ(ready->size(), 1u);
  EXPECT_EQ(ready->front().model, "species");
}

TEST_F(ModelControlTest, LoadAndUnloadChangeWhatIsServed) {
  ModelManager manager(repository_.root(), Control(ModelControlMode::kExplicit));
  manager.Refresh();
  EXPECT_FALSE(manager.Find("mammal", 0).ok());
  int changes = 0;
  auto loaded = manager.Load("mammal", std::nullopt,
                             [&changes](const RepositorySnapshot&) { ++changes; });
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->name(), "mammal");
  ASSERT_EQ(loaded->versions_size(), 1);
  EXPECT_EQ(loaded->versions(0).state(), v1::MODEL_STATE_AVAILABLE);
  EXPECT_EQ(ServedVersion(manager, "mammal"), 1);
  EXPECT_EQ(changes, 1);
  auto held = manager.Find("mammal", 0);
  ASSERT_TRUE(manager.Unload("mammal").ok());
  EXPECT_FALSE(manager.Find("mammal", 0).ok());
  // A call that held it still runs on it.
  const float row[] = {4, 0, 1};
  EXPECT_TRUE((*held)->model->Predict(row, 1, Head::kSigmoid).ok());
  auto again = manager.Unload("mammal");
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(again.message()), HasSubstr("'mammal' is not loaded"));
  auto unknown = manager.Load("llama", std::nullopt);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("not in the repository"));
  // A load picks up what changed on disk since.
  ASSERT_TRUE(manager.Load("species", std::nullopt).ok());
  repository_.AddReferenceVersion("species", 2, "species");
  EXPECT_EQ(ServedVersion(manager, "species"), 1);
  ASSERT_TRUE(manager.Load("species", std::nullopt).ok());
  EXPECT_EQ(ServedVersion(manager, "species"), 2);
}

TEST_F(ModelControlTest, PollAndNoneRefuseLoadAndUnloadNamingTheFlag) {
  for (ModelControlMode mode : {ModelControlMode::kPoll, ModelControlMode::kNone}) {
    ModelManager manager(repository_.root(), Control(mode));
    manager.Refresh();
    auto load = manager.Load("species", std::nullopt);
    EXPECT_EQ(load.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(load.status().message()),
                HasSubstr(absl::StrCat("needs --model_control_mode=explicit; this server runs "
                                       "with --model_control_mode=",
                                       ModelControlModeName(mode))));
    EXPECT_EQ(manager.Unload("species").code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(ServedVersion(manager, "species"), 1);
  }
}

TEST_F(ModelControlTest, AFailedLoadLeavesTheServingVersionUntouched) {
  ModelManager manager(repository_.root(), Control(ModelControlMode::kExplicit, {"species"}));
  manager.Refresh();
  repository_.WriteFile("species/2/model.onnx", "garbage");
  auto load = manager.Load("species", std::nullopt);
  ASSERT_FALSE(load.ok());
  EXPECT_EQ(load.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(load.status().message()),
              HasSubstr("model 'species' failed to load: version 2: "));
  EXPECT_THAT(std::string(load.status().message()), HasSubstr("(still serving version 1)"));
  EXPECT_EQ(ServedVersion(manager, "species"), 1);
}

TEST_F(ModelControlTest, ALoadsConfigStandsInForTheFileUntilUnloaded) {
  repository_.WriteReferenceConfig("species", "species", "description: 'from the file'");
  ModelManager manager(repository_.root(), Control(ModelControlMode::kExplicit, {"species"}));
  manager.Refresh();
  auto before = manager.Find("species", 0);
  ASSERT_TRUE(before.ok());
  auto loaded = manager.Load("species", Config("description: 'from the call'"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto after = manager.Find("species", 0);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)->config.description(), "from the call");
  // The same weights: a config alone does not reload the file.
  EXPECT_EQ((*after)->model, (*before)->model);
  // A config that does not fit the model is refused, and the one before
  // stays.
  auto misfit = manager.Load("species", Config("labels: ['a', 'b']"));
  ASSERT_FALSE(misfit.ok());
  EXPECT_THAT(std::string(misfit.status().message()), HasSubstr("2 labels for 3 outputs"));
  EXPECT_EQ((*manager.Find("species", 0))->config.description(), "from the call");
  auto bad = manager.Load("species", Config("traffic { version: 1 percent: 50 }"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("config: traffic shares add up to 50 percent, not 100"));
  // A load without a config goes back to the file.
  ASSERT_TRUE(manager.Load("species", std::nullopt).ok());
  EXPECT_EQ((*manager.Find("species", 0))->config.description(), "from the file");
}

TEST_F(ModelControlTest, LabelsNameVersions) {
  repository_.AddReferenceVersion("species", 2, "species");
  repository_.WriteFile("species/config.textproto",
                        "version_policy { all {} }\n"
                        "version_labels { key: 'stable' value: 1 }\n"
                        "version_labels { key: 'canary' value: 2 }\n");
  ModelManager manager(repository_.root());
  manager.Refresh();
  EXPECT_EQ(ServedVersion(manager, "species", {0, "stable", ""}), 1);
  EXPECT_EQ(ServedVersion(manager, "species", {0, "canary", ""}), 2);
  auto unknown = manager.Find("species", VersionRequest{0, "beta", ""});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("has no version label 'beta' (labels: canary, stable)"));
  auto both = manager.Find("species", VersionRequest{1, "stable", ""});
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelControlTest, ALoadMayNotLabelAVersionThatIsNotAvailable) {
  ModelManager manager(repository_.root(), Control(ModelControlMode::kExplicit, {"species"}));
  manager.Refresh();
  auto load = manager.Load("species", Config("version_labels { key: 'canary' value: 2 }"));
  ASSERT_FALSE(load.ok());
  EXPECT_THAT(std::string(load.status().message()),
              HasSubstr("version label 'canary' names version 2, which is not available"));
  auto canary = manager.Find("species", VersionRequest{0, "canary", ""});
  EXPECT_EQ(canary.status().code(), absl::StatusCode::kNotFound);  // the label went back

  ModelManager::Options allowing = Control(ModelControlMode::kExplicit, {"species"});
  allowing.allow_labels_for_unavailable = true;
  ModelManager allowed(repository_.root(), allowing);
  allowed.Refresh();
  EXPECT_TRUE(allowed.Load("species", Config("version_labels { key: 'canary' value: 2 }")).ok());
}

TEST_F(ModelControlTest, TrafficSharesSplitCallsThatNameNoVersion) {
  repository_.AddReferenceVersion("species", 2, "species");
  repository_.WriteFile("species/config.textproto",
                        "version_policy { all {} }\n"
                        "traffic { version: 1 percent: 90 }\n"
                        "traffic { version: 2 percent: 10 }\n");
  ModelManager manager(repository_.root());
  manager.Refresh();
  std::map<int64_t, int> calls;
  for (int i = 0; i < 10000; ++i) ++calls[ServedVersion(manager, "species")];
  EXPECT_NEAR(calls[1], 9000, 200);
  EXPECT_NEAR(calls[2], 1000, 200);
  // Keyed calls: the same key, the same version; the shares hold over keys.
  std::map<int64_t, int> keyed;
  for (int i = 0; i < 10000; ++i) {
    const std::string key = absl::StrCat("request-", i);
    const int64_t version = ServedVersion(manager, "species", {0, "", key});
    EXPECT_EQ(ServedVersion(manager, "species", {0, "", key}), version);
    ++keyed[version];
  }
  EXPECT_NEAR(keyed[1], 9000, 200);
  // A named version is not split.
  EXPECT_EQ(ServedVersion(manager, "species", {2, "", ""}), 2);
}

TEST_F(ModelControlTest, AShareWhoseVersionFailedTakesNoCalls) {
  repository_.WriteFile("species/2/model.onnx", "garbage");
  repository_.WriteFile("species/config.textproto",
                        "version_policy { all {} }\n"
                        "traffic { version: 1 percent: 50 }\n"
                        "traffic { version: 2 percent: 50 }\n");
  ModelManager manager(repository_.root());
  manager.Refresh();
  for (int i = 0; i < 200; ++i) EXPECT_EQ(ServedVersion(manager, "species"), 1);
}

TEST(ModelConfigCheck, RoutingMistakesAreNamed) {
  const std::map<std::string, std::string> refused = {
      {"traffic { version: 1 percent: 60 } traffic { version: 2 percent: 60 }",
       "traffic shares add up to 120 percent, not 100"},
      {"traffic { version: 1 percent: 50 } traffic { version: 1 percent: 50 }",
       "traffic names version 1 twice"},
      {"traffic { version: 1 percent: 0 } traffic { version: 2 percent: 100 }",
       "needs a positive version and 1 to 100 percent"},
      {"version_labels { key: 'stable' value: 0 }", "names version 0; versions are positive"},
      {"shadow { version: 2 }", "shadow { version: 2 percent: 0 } needs"},
      {"traffic { version: 2 percent: 100 } shadow { version: 2 percent: 10 }",
       "shadow version 2 also takes traffic"},
  };
  for (const auto& [text, message] : refused) {
    absl::Status checked = CheckModelConfig(Config(text));
    EXPECT_EQ(checked.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(checked.message()), HasSubstr(message)) << text;
  }
  EXPECT_TRUE(CheckModelConfig(Config("traffic { version: 1 percent: 90 } "
                                      "traffic { version: 2 percent: 10 } "
                                      "shadow { version: 3 percent: 5 } "
                                      "version_labels { key: 'stable' value: 1 }"))
                  .ok());
}

TEST(VersionRouting, KeysFallOnFixedPointsAndSharesScaleOverAvailableVersions) {
  // The same on every replica: FNV-1a of the key.
  EXPECT_EQ(TrafficPoint("request-1"), TrafficPoint("request-1"));
  EXPECT_NE(TrafficPoint("request-1"), TrafficPoint("request-2"));
  v1::ModelConfig config = Config("traffic { version: 1 percent: 90 } "
                                  "traffic { version: 2 percent: 10 }");
  EXPECT_EQ(ChooseShare(config.traffic(), {1, 2}, 0.0), 1);
  EXPECT_EQ(ChooseShare(config.traffic(), {1, 2}, 89.99), 1);
  EXPECT_EQ(ChooseShare(config.traffic(), {1, 2}, 90.0), 2);
  EXPECT_EQ(ChooseShare(config.traffic(), {1, 2}, 99.99), 2);
  EXPECT_EQ(ChooseShare(config.traffic(), {2}, 0.0), 2);
  EXPECT_EQ(ChooseShare(config.traffic(), {}, 50.0), 0);
}

TEST_F(ModelControlTest, PolicyMissesOfLabelsSharesAndShadowAreTheModelsError) {
  repository_.WriteFile("species/config.textproto",
                        "version_labels { key: 'canary' value: 5 }\n"
                        "shadow { version: 6 percent: 10 }\n");
  ModelManager manager(repository_.root());
  manager.Refresh();
  const ModelRecord& record = manager.Snapshot()->models.at("species");
  EXPECT_THAT(record.error, HasSubstr("version label 'canary' names version 5, which the "
                                      "version policy does not serve"));
  EXPECT_THAT(record.error, HasSubstr("shadow version 6 is not one the version policy serves"));
  EXPECT_EQ(ServedVersion(manager, "species"), 1);
}

}  // namespace
}  // namespace seqserve
