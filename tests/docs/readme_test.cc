// The README's walk-throughs, run: every fenced block marked "sh runnable"
// is run in order, as a reader would, against a live server serving a copy
// of models/ (its HTTP port standing for localhost:8501), so the README
// cannot drift from what the programs do.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/support/server_process.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;

constexpr absl::string_view kRunnableFence = "```sh runnable";

// The bodies of the README's runnable blocks, in order.
std::vector<std::string> RunnableBlocks(const std::string& markdown) {
  std::vector<std::string> blocks;
  bool inside = false;
  for (absl::string_view line : absl::StrSplit(markdown, '\n')) {
    if (!inside && absl::StripTrailingAsciiWhitespace(line) == kRunnableFence) {
      inside = true;
      blocks.emplace_back();
    } else if (inside && absl::StartsWith(line, "```")) {
      inside = false;
    } else if (inside) {
      absl::StrAppend(&blocks.back(), line, "\n");
    }
  }
  EXPECT_FALSE(inside) << "a runnable block is not closed";
  return blocks;
}

TEST(Readme, RunnableBlocksRunAgainstALiveServer) {
  std::ifstream file(SEQSERVE_README);
  ASSERT_TRUE(file.good()) << SEQSERVE_README;
  std::stringstream markdown;
  markdown << file.rdbuf();
  const std::vector<std::string> blocks = RunnableBlocks(markdown.str());
  ASSERT_GE(blocks.size(), 6u);

  const std::filesystem::path work = std::filesystem::path(::testing::TempDir()) /
                                     absl::StrCat("readme.", getpid());
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work);
  std::filesystem::copy(SEQSERVE_MODELS_DIR, work / "models",
                        std::filesystem::copy_options::recursive);
  ServerProcess server(SEQSERVE_PATH, {"--model_repository=" + (work / "models").string(),
                                       "--poll_seconds=0.2"});
  ASSERT_TRUE(server.ready()) << server.output();

  const std::string path =
      absl::StrCat(std::filesystem::path(SEQCLIENT_PATH).parent_path().string(), ":",
                   std::filesystem::path(SEQMODEL_PATH).parent_path().string(), ":",
                   std::getenv("PATH"));
  std::string all_output;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string script = (work / absl::StrCat("block", i, ".sh")).string();
    // The README's HTTP port is this server's.
    std::ofstream(script) << absl::StrReplaceAll(
        blocks[i], {{"localhost:8501", absl::StrCat("127.0.0.1:", server.http_port())}});
    const auto result = RunCommand(absl::StrCat(
        "cd ", work.string(), " && PATH=", path, " SEQSERVE_TARGET=", server.target(),
        " timeout 60 bash -euo pipefail ", script, " 2>&1"));
    ASSERT_EQ(result.exit_code, 0) << "README block " << i << ":\n"
                                   << blocks[i] << "printed:\n"
                                   << result.output;
    absl::StrAppend(&all_output, "--- block ", i, "\n", result.output);
  }
  // What the walk-through says happens, happened.
  EXPECT_THAT(all_output, HasSubstr("species                  2        available"));
  EXPECT_THAT(all_output, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(all_output, HasSubstr("exit code 1"));
  EXPECT_THAT(all_output, HasSubstr("not mammal"));
  EXPECT_THAT(all_output, HasSubstr("batching:       256 rows per pass"));
  // TF Serving's REST API, as the README shows it.
  EXPECT_THAT(all_output, HasSubstr(R"({"model_version_status":[{"state":"AVAILABLE","status":)"
                                    R"({"error_code":"OK","error_message":""},"version":"1"}]})"));
  EXPECT_THAT(all_output, HasSubstr("{'features': {'dtype': 'DT_FLOAT'"));
  EXPECT_THAT(all_output, HasSubstr("['limbs', 'lays_eggs', 'has_hair']"));
  EXPECT_THAT(all_output, HasSubstr(R"({"predictions":[[)"));
  EXPECT_THAT(all_output, HasSubstr(R"({"outputs":[[)"));
  EXPECT_THAT(all_output, HasSubstr(R"({"result":[[["not mammal",)"));
  EXPECT_THAT(all_output, HasSubstr("has no version label 'stable'"));
  server.CollectOutput();
  EXPECT_THAT(server.output(), HasSubstr("model species version 1 unloaded: the version "
                                         "policy, latest 1 (the default), no longer selects it"));
  std::filesystem::remove_all(work);
}

}  // namespace
}  // namespace seqserve
