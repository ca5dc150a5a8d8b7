#include "tests/support/test_repository.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/reference_data.h"

namespace seqserve::testing {

namespace fs = std::filesystem;

TestRepository::TestRepository() {
  std::string pattern = ::testing::TempDir() + "/repository.XXXXXX";
  root_ = mkdtemp(pattern.data()) ? pattern : "";
  EXPECT_FALSE(root_.empty()) << "mkdtemp failed";
}

TestRepository::~TestRepository() {
  std::error_code ignored;
  fs::remove_all(root_, ignored);
}

void TestRepository::WriteFile(const std::string& relative_path,
                               const std::string& contents) {
  const fs::path path = fs::path(root_) / relative_path;
  fs::create_directories(path.parent_path());
  const fs::path temporary = path.parent_path() / ("." + path.filename().string() + ".tmp");
  {
    std::ofstream out(temporary, std::ios::binary);
    out << contents;
  }
  fs::rename(temporary, path);
}

void TestRepository::AddReferenceVersion(const std::string& model,
                                         int64_t version,
                                         const std::string& reference) {
  WriteFile(absl::StrCat(model, "/", version, "/model.onnx"),
            ReadReferenceBytes(reference));
}

void TestRepository::WriteReferenceConfig(const std::string& model,
                                          const std::string& reference,
                                          const std::string& extra) {
  auto data = LoadReference(reference);
  ASSERT_TRUE(data.ok()) << data.status();
  std::string config;
  for (const std::string& label : data->labels) {
    absl::StrAppend(&config, "labels: \"", label, "\"\n");
  }
  WriteFile(absl::StrCat(model, "/config.textproto"), config + extra);
}

void TestRepository::Remove(const std::string& relative_path) {
  // Out of the repository in one rename, then deleted: a poll never sees
  // the half-deleted directory (a model left with no version, say).
  std::error_code ignored;
  const fs::path gone = fs::path(root_ + ".removed");
  fs::remove_all(gone, ignored);
  fs::rename(fs::path(root_) / relative_path, gone, ignored);
  fs::remove_all(gone, ignored);
}

}  // namespace seqserve::testing
