// The model manager on a real directory: loading, version policies, hot
// reload, removal, failures that never replace a serving version.
#include "serving/model_manager.h"

#include "absl/strings/str_cat.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

#include "tests/support/onnx_builder.h"
#include "tests/support/reference_data.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::TestRepository;

class ModelManagerTest : public ::testing::Test {
 protected:
  const VersionRecord* Version(const std::string& model, int64_t version) {
    snapshot_ = manager_.Snapshot();
    auto it = snapshot_->models.find(model);
    if (it == snapshot_->models.end()) return nullptr;
    auto entry = it->second.versions.find(version);
    return entry == it->second.versions.end() ? nullptr : &entry->second;
  }

  int64_t ServedVersion(const std::string& model) {
    auto served = manager_.Find(model, 0);
    return served.ok() ? (*served)->version : -1;
  }

  void ExpectFindError(const std::string& model, int64_t version,
                       absl::StatusCode code, const std::string& fragment) {
    auto served = manager_.Find(model, version);
    ASSERT_FALSE(served.ok());
    EXPECT_EQ(served.status().code(), code) << served.status();
    EXPECT_THAT(std::string(served.status().message()), HasSubstr(fragment));
  }

  TestRepository repository_;
  ModelManager manager_{repository_.root()};
  std::shared_ptr<const RepositorySnapshot> snapshot_;
};

TEST_F(ModelManagerTest, LoadsModelsWithTheirConfig) {
  repository_.AddReferenceVersion("species", 1, "species");
  repository_.WriteReferenceConfig("species", "species", "description: 'three kinds'");
  manager_.Refresh();
  auto served = manager_.Find("species", 0);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->version, 1);
  EXPECT_EQ((*served)->config.description(), "three kinds");
  EXPECT_EQ((*served)->config.labels_size(), 3);
  EXPECT_EQ((*served)->default_head, Head::kSoftmax);
  EXPECT_EQ(Version("species", 1)->state, v1::MODEL_STATE_AVAILABLE);
}

// A config's precision rebuilds the loaded version's kernels, at load and
// when the config changes; back in float32 the answers are PyTorch's again.
TEST_F(ModelManagerTest, AConfigsPrecisionRebuildsTheVersionsKernels) {
  auto reference = testing::LoadReference("species");
  ASSERT_TRUE(reference.ok()) << reference.status();
  repository_.AddReferenceVersion("species", 1, "species");
  repository_.WriteReferenceConfig("species", "species", "precision: int8");
  manager_.Refresh();
  auto served = manager_.Find("species", 0);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->model->precision(), Precision::kInt8);
  auto quantized = (*served)->model->Predict(reference->inputs, reference->rows, Head::kLogits);
  ASSERT_TRUE(quantized.ok()) << quantized.status();
  EXPECT_NE(testing::FirstMismatch(*quantized, reference->logits), -1);  // not float32's

  repository_.WriteReferenceConfig("species", "species", "precision: PRECISION_FP32");
  manager_.Refresh();
  served = manager_.Find("species", 0);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->model->precision(), Precision::kFp32);
  auto exact = (*served)->model->Predict(reference->inputs, reference->rows, Head::kLogits);
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(testing::FirstMismatch(*exact, reference->logits), -1);

  repository_.WriteReferenceConfig("species", "species", "precision: 7");
  manager_.Refresh();
  served = manager_.Find("species", 0);  // the version keeps its last good config
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->model->precision(), Precision::kFp32);
}

TEST_F(ModelManagerTest, UnknownModelsAndVersionsAreNotFound) {
  repository_.AddReferenceVersion("species", 1, "species");
  manager_.Refresh();
  ExpectFindError("llama", 0, absl::StatusCode::kNotFound, "model 'llama' is not served");
  ExpectFindError("species", 7, absl::StatusCode::kNotFound,
                  "model 'species' has no version 7 (versions: 1)");
}

// Before the first pass over the repository ends, a model not seen yet may
// still come: retry (a replica just started behind a balancer), not "no
// such model".
TEST_F(ModelManagerTest, BeforeTheFirstPassAModelNotSeenYetIsUnavailable) {
  repository_.AddReferenceVersion("species", 1, "species");
  ExpectFindError("species", 0, absl::StatusCode::kUnavailable,
                  "still loading its model repository");
  manager_.Refresh();
  EXPECT_TRUE(manager_.Find("species", 0).ok());
  ExpectFindError("llama", 0, absl::StatusCode::kNotFound, "model 'llama' is not served");
}

// --max_model_bytes reaches the loaders: a version over it fails to load
// (checked before reading) and the others keep serving.
TEST(ModelManagerLimits, AVersionOverMaxModelBytesFailsToLoad) {
  TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.AddReferenceVersion("mammal", 1, "mammal");
  const auto species_bytes = std::filesystem::file_size(repository.root() + "/species/1/model.onnx");
  const auto mammal_bytes = std::filesystem::file_size(repository.root() + "/mammal/1/model.onnx");
  ASSERT_GT(species_bytes, mammal_bytes);
  ModelManager::Options options;
  options.load.max_model_bytes = mammal_bytes;
  ModelManager manager(repository.root(), options);
  manager.Refresh();
  EXPECT_TRUE(manager.Find("mammal", 0).ok());
  auto species = manager.Find("species", 1);
  ASSERT_FALSE(species.ok());
  EXPECT_EQ(species.status().code(), absl::StatusCode::kUnavailable);
  auto snapshot = manager.Snapshot();
  const VersionRecord& record = snapshot->models.at("species").versions.at(1);
  EXPECT_EQ(record.state, v1::MODEL_STATE_FAILED);
  EXPECT_THAT(record.error, HasSubstr(absl::StrCat("species/1/model.onnx: ", species_bytes,
                                                   " bytes is over the limit of ", mammal_bytes,
                                                   " bytes")));
}

TEST_F(ModelManagerTest, AFailedModelDoesNotStopTheOthers) {
  repository_.AddReferenceVersion("species", 1, "species");
  repository_.WriteFile("broken/1/model.onnx", "not a model");
  repository_.WriteFile("empty/1/README", "no model here");
  manager_.Refresh();
  EXPECT_EQ(ServedVersion("species"), 1);
  ExpectFindError("broken", 0, absl::StatusCode::kUnavailable,
                  "model 'broken' has no loadable version: ");
  ExpectFindError("broken", 1, absl::StatusCode::kUnavailable,
                  "version 1 of model 'broken' failed to load");
  EXPECT_EQ(Version("broken", 1)->state, v1::MODEL_STATE_FAILED);
  EXPECT_THAT(Version("broken", 1)->error, HasSubstr("not an ONNX model"));
  EXPECT_THAT(Version("empty", 1)->error, HasSubstr("no model.onnx or model.textproto"));
}

TEST_F(ModelManagerTest, ANewVersionReplacesTheOld) {
  repository_.AddReferenceVersion("species", 1, "species");
  manager_.Refresh();
  auto held = manager_.Find("species", 0);
  ASSERT_TRUE(held.ok());
  repository_.AddReferenceVersion("species", 2, "species");
  manager_.Refresh();
  EXPECT_EQ(ServedVersion("species"), 2);
  ExpectFindError("species", 1, absl::StatusCode::kNotFound, "no version 1");
  // A request holding version 1 still runs on it.
  const float row[] = {4, 0, 1};
  EXPECT_TRUE((*held)->model->Predict(row, 1, Head::kSoftmax).ok());
  EXPECT_EQ((*held)->version, 1);
}

TEST_F(ModelManagerTest, ACorruptNewVersionLeavesTheOldOneServing) {
  repository_.AddReferenceVersion("species", 1, "species");
  manager_.Refresh();
  repository_.WriteFile("species/2/model.onnx", "garbage");
  manager_.Refresh();
  EXPECT_EQ(ServedVersion("species"), 1);
  ASSERT_NE(Version("species", 2), nullptr);
  EXPECT_EQ(Version("species", 2)->state, v1::MODEL_STATE_FAILED);
  EXPECT_EQ(Version("species", 1)->state, v1::MODEL_STATE_AVAILABLE);
  // Fixing the file brings version 2 in on the next pass.
  repository_.AddReferenceVersion("species", 2, "species");
  manager_.Refresh();
  EXPECT_EQ(ServedVersion("species"), 2);
  EXPECT_EQ(Version("species", 1), nullptr);
}

TEST_F(ModelManagerTest, AReplacedFileIsReloaded) {
  repository_.AddReferenceVersion("m", 1, "species");
  manager_.Refresh();
  auto before = manager_.Find("m", 1);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ((*before)->model->output_width(), 3);
  repository_.AddReferenceVersion("m", 1, "multilabel_logits");
  manager_.Refresh();
  auto after = manager_.Find("m", 1);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)->model->output_width(), 4);
  EXPECT_EQ((*before)->model->output_width(), 3);  // the old one lives on
}

TEST_F(ModelManagerTest, ACorruptReplacementKeepsThePreviousFileServing) {
  repository_.AddReferenceVersion("species", 1, "species");
  manager_.Refresh();
  repository_.WriteFile("species/1/model.onnx", "garbage!");
  manager_.Refresh();
  EXPECT_EQ(ServedVersion("species"), 1);
  EXPECT_EQ(Version("species", 1)->state, v1::MODEL_STATE_AVAILABLE);
  EXPECT_THAT(Version("species", 1)->error,
              HasSubstr("replacement failed to load, still serving the previous file"));
}

TEST_F(ModelManagerTest, RemovedModelsAndVersionsAreUnloaded) {
  repository_.AddReferenceVersion("species", 1, "species");
  repository_.AddReferenceVersion("mammal", 1, "mammal");
  repository_.AddReferenceVersion("mammal", 2, "mammal");
  repository_.WriteFile("mammal/config.textproto", "version_policy { all {} }");
  manager_.Refresh();
  EXPECT_TRUE(manager_.Find("mammal", 1).ok());
  repository_.Remove("species");
  repository_.Remove("mammal/1");
  manager_.Refresh();
  ExpectFindError("species", 0, absl::StatusCode::kNotFound, "not served");
  ExpectFindError("mammal", 1, absl::StatusCode::kNotFound, "no version 1");
  EXPECT_EQ(ServedVersion("mammal"), 2);
}

TEST_F(ModelManagerTest, VersionPoliciesPickVersions) {
  for (int version : {1, 2, 3}) repository_.AddReferenceVersion("m", version, "mammal");
  auto versions = [&] {
    std::vector<int64_t> numbers;
    for (const auto& [number, entry] : manager_.Snapshot()->models.at("m").versions) {
      if (entry.state == v1::MODEL_STATE_AVAILABLE) numbers.push_back(number);
    }
    return numbers;
  };
  manager_.Refresh();
  EXPECT_THAT(versions(), ::testing::ElementsAre(3));
  repository_.WriteFile("m/config.textproto", "version_policy { latest { num_versions: 2 } }");
  manager_.Refresh();
  EXPECT_THAT(versions(), ::testing::ElementsAre(3, 2));
  repository_.WriteFile("m/config.textproto", "version_policy { all {} }");
  manager_.Refresh();
  EXPECT_THAT(versions(), ::testing::ElementsAre(3, 2, 1));
  repository_.WriteFile("m/config.textproto",
                        "version_policy { specific { versions: [1, 3] } }");
  manager_.Refresh();
  EXPECT_THAT(versions(), ::testing::ElementsAre(3, 1));
}

TEST_F(ModelManagerTest, AConfigChangeAppliesWithoutReloadingWeights) {
  repository_.AddReferenceVersion("species", 1, "species");
  manager_.Refresh();
  auto before = manager_.Find("species", 0);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ((*before)->config.labels_size(), 0);
  repository_.WriteReferenceConfig("species", "species", "default_output: OUTPUT_MODE_LOGITS");
  manager_.Refresh();
  auto after = manager_.Find("species", 0);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)->config.labels(1), "mammal");
  EXPECT_EQ((*after)->default_head, Head::kLogits);
  EXPECT_EQ((*after)->model, (*before)->model);  // same weights, shared
}

TEST_F(ModelManagerTest, ABadConfigIsReportedAndKeepsTheLastGoodOne) {
  repository_.WriteFile("new/config.textproto", "labels: [unterminated");
  repository_.AddReferenceVersion("new", 1, "species");
  repository_.AddReferenceVersion("species", 1, "species");
  repository_.WriteReferenceConfig("species", "species");
  manager_.Refresh();
  EXPECT_THAT(manager_.Snapshot()->models.at("new").error,
              HasSubstr("config.textproto: line 1"));
  ExpectFindError("new", 0, absl::StatusCode::kUnavailable, "no loadable version");

  repository_.WriteFile("species/config.textproto", "labels: 'only one'");
  manager_.Refresh();
  auto served = manager_.Find("species", 0);
  ASSERT_TRUE(served.ok());
  EXPECT_EQ((*served)->config.labels_size(), 3);  // the last config that fit
  EXPECT_THAT(manager_.Snapshot()->models.at("species").error,
              HasSubstr("config gives 1 labels for 3 outputs"));
}

TEST_F(ModelManagerTest, AMissingRepositoryServesNothingAndKeepsWhatWasLoaded) {
  ModelManager missing("/nonexistent/repository");
  missing.Refresh();
  EXPECT_TRUE(missing.Snapshot()->models.empty());

  // A repository that goes away after a load: what was loaded keeps serving.
  repository_.AddReferenceVersion("species", 1, "species");
  manager_.Refresh();
  ASSERT_EQ(ServedVersion("species"), 1);
  const std::string moved = repository_.root() + ".moved";
  std::filesystem::rename(repository_.root(), moved);
  manager_.Refresh();
  EXPECT_EQ(ServedVersion("species"), 1);
  std::filesystem::rename(moved, repository_.root());
}

// A 3-in, 3-out text model whose first logit is `first`, always 3 digits.
std::string ConstantModel(const std::string& first) {
  return "input_width: 3\n"
         "layers { linear { in_features: 3 out_features: 3 weight: [0,0,0,0,0,0,0,0,0] "
         "bias: [" + first + ", 0, 0] } }\n";
}

float FirstLogit(const ServedModel& served) {
  const float row[] = {1, 2, 3};
  auto logits = served.model->Predict(row, 1, Head::kLogits);
  return logits.ok() ? (*logits)[0] : -1.0f;
}

// `cp -p`, `rsync -a` and `tar x` keep the mtime, and a retrained model of
// the same shape keeps the size: the file is still new.
TEST_F(ModelManagerTest, AReplacementWithTheSameSizeAndMtimeIsReloaded) {
  repository_.WriteFile("constant/1/model.textproto", ConstantModel("1.5"));
  manager_.Refresh();
  auto before = manager_.Find("constant", 0);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(FirstLogit(**before), 1.5f);
  const std::filesystem::path path = repository_.root() + "/constant/1/model.textproto";
  const auto mtime = std::filesystem::last_write_time(path);
  const auto size = std::filesystem::file_size(path);
  struct stat original;
  ASSERT_EQ(stat(path.c_str(), &original), 0);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << ConstantModel("2.5");
  std::filesystem::last_write_time(path, mtime);
  ASSERT_EQ(std::filesystem::file_size(path), size);
  // Kernels with coarse timestamps (a jiffy) may give the rewrite the same
  // ctime: touch the mtime back again until the ctime moves, as it does
  // for any copy that lands a tick later.
  for (int i = 0; i < 100; ++i) {
    struct stat after;
    ASSERT_EQ(stat(path.c_str(), &after), 0);
    if (after.st_ctim.tv_sec != original.st_ctim.tv_sec ||
        after.st_ctim.tv_nsec != original.st_ctim.tv_nsec) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::filesystem::last_write_time(path, mtime);
  }
  manager_.Refresh();
  auto after = manager_.Find("constant", 0);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(FirstLogit(**after), 2.5f);
}

// Today's exporter writes model.onnx and model.onnx.data: replacing the
// data file alone is a new model too.
TEST_F(ModelManagerTest, AVersionWithExternalDataReloadsWhenOnlyTheDataChanges) {
  const std::string source = testing::ReferenceDir() + "/modern/species_o20_static/";
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  repository_.WriteFile("modern/1/model.onnx", read(source + "model.onnx"));
  std::string data = read(source + "model.onnx.data");
  repository_.WriteFile("modern/1/model.onnx.data", data);
  manager_.Refresh();
  auto before = manager_.Find("modern", 0);
  ASSERT_TRUE(before.ok()) << before.status();
  // Other weights of the same size: the last bias doubled.
  float last;
  std::memcpy(&last, data.data() + data.size() - 4, 4);
  last = last * 2 + 1;
  std::memcpy(data.data() + data.size() - 4, &last, 4);
  repository_.WriteFile("modern/1/model.onnx.data", data);
  manager_.Refresh();
  auto after = manager_.Find("modern", 0);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE((*after)->model, (*before)->model);
  const float row[] = {4, 0, 1};
  EXPECT_NE(*(*after)->model->Predict(row, 1, Head::kLogits),
            *(*before)->model->Predict(row, 1, Head::kLogits));
}

TEST_F(ModelManagerTest, TwoDirectoriesClaimingOneVersionLoadNeither) {
  repository_.AddReferenceVersion("species", 1, "species");
  manager_.Refresh();
  ASSERT_EQ(ServedVersion("species"), 1);
  repository_.AddReferenceVersion("species", 2, "species");
  repository_.WriteFile("species/02/model.textproto", ConstantModel("1.5"));
  manager_.Refresh();
  EXPECT_EQ(ServedVersion("species"), 1);  // not a guess between 2 and 02
  const VersionRecord* clash = Version("species", 2);
  ASSERT_NE(clash, nullptr);
  EXPECT_EQ(clash->state, v1::MODEL_STATE_FAILED);
  EXPECT_THAT(clash->error, HasSubstr("directories 02 and 2 all claim version 2"));
}

TEST_F(ModelManagerTest, RepositoryAmbiguitiesAreReportedWithTheirReason) {
  // A version policy naming versions that are not there.
  repository_.AddReferenceVersion("species", 1, "species");
  repository_.WriteFile("species/config.textproto",
                        "version_policy { specific { versions: [1, 3, 5] } }");
  // A model directory with no versions.
  std::filesystem::create_directories(repository_.root() + "/empty");
  // A directory named like the model file.
  std::filesystem::create_directories(repository_.root() + "/dir/1/model.onnx");
  // A symlink loop as a model and as a version.
  std::filesystem::create_symlink("loop", repository_.root() + "/loop");
  repository_.AddReferenceVersion("looped", 1, "species");
  std::filesystem::create_symlink("2", repository_.root() + "/looped/2");
  manager_.Refresh();
  const auto snapshot = manager_.Snapshot();
  EXPECT_EQ(ServedVersion("species"), 1);
  EXPECT_THAT(snapshot->models.at("species").error,
              HasSubstr("version_policy names versions that are not on disk: 3, 5"));
  EXPECT_THAT(snapshot->models.at("empty").error, HasSubstr("no version directories"));
  ExpectFindError("empty", 0, absl::StatusCode::kUnavailable, "no version directories");
  const VersionRecord* dir = Version("dir", 1);
  ASSERT_NE(dir, nullptr);
  EXPECT_THAT(dir->error, HasSubstr("model.onnx is a directory, not a file"));
  EXPECT_THAT(snapshot->models.at("loop").error,
              HasSubstr("Too many levels of symbolic links"));
  EXPECT_EQ(ServedVersion("looped"), 1);
  EXPECT_THAT(snapshot->models.at("looped").error,
              HasSubstr("version directory 2 cannot be read: Too many levels"));
}

// Names from files and directories reach ListModels' proto3 strings: bytes
// that are not UTF-8 are escaped, so the answer still serializes.
TEST_F(ModelManagerTest, ErrorsAndNamesThatAreNotUtf8AreEscaped) {
  repository_.WriteFile("bad\xff/1/model.onnx", "not onnx");
  repository_.WriteFile("ok/1/model.onnx", "not onnx \xfe");
  testing::OnnxBuilder builder(3);
  builder.Weight("w\xff", {6}, std::vector<float>(6, 0.1f));  // rank 1: refused by name
  testing::SetInt(builder.Node("Gemm", {"features", "w\xff"}, {"scores"}), "transB", 1);
  builder.Output("scores", 2);
  repository_.WriteFile("named/1/model.onnx", builder.Serialize());
  manager_.Refresh();
  const auto snapshot = manager_.Snapshot();
  v1::ListModelsResponse response;
  for (const auto& [name, record] : snapshot->models) {
    auto* model = response.add_models();
    model->set_name(name);
    model->set_error(record.error);
    for (const auto& [version, entry] : record.versions) {
      model->add_versions()->set_error(entry.error);
    }
  }
  std::string bytes;
  ASSERT_TRUE(response.SerializeToString(&bytes));
  v1::ListModelsResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_THAT(snapshot->models.at("bad\\xff").error, HasSubstr("not valid UTF-8"));
  ASSERT_EQ(snapshot->models.at("named").versions.size(), 1u);
  EXPECT_THAT(snapshot->models.at("named").versions.begin()->second.error,
              HasSubstr("w\\xff"));
}

// A broken config is reported once, and again only when its file changes.
TEST_F(ModelManagerTest, ABrokenConfigIsLoggedOncePerChange) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log, /*force_flush=*/true);
  spdlog::default_logger()->sinks().push_back(sink);
  repository_.AddReferenceVersion("species", 1, "species");
  repository_.WriteFile("species/config.textproto", "labels: [unterminated");
  for (int i = 0; i < 3; ++i) manager_.Refresh();
  auto count = [&] {
    const std::string text = log.str();
    size_t n = 0;
    for (size_t at = text.find("config.textproto: line"); at != std::string::npos;
         at = text.find("config.textproto: line", at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(count(), 1u);
  repository_.WriteFile("species/config.textproto", "labels: [still unterminated");
  for (int i = 0; i < 3; ++i) manager_.Refresh();
  EXPECT_EQ(count(), 2u);
  spdlog::default_logger()->sinks().pop_back();
}

TEST_F(ModelManagerTest, PollingPicksUpNewVersions) {
  repository_.AddReferenceVersion("species", 1, "species");
  manager_.Refresh();
  manager_.StartPolling(absl::Milliseconds(20));
  repository_.AddReferenceVersion("species", 2, "species");
  for (int i = 0; i < 500 && ServedVersion("species") != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ServedVersion("species"), 2);
  manager_.StopPolling();
}

}  // namespace
}  // namespace seqserve
