// The README's walk-throughs, run: every fenced block marked "sh runnable"
// is run in order, as a reader would, against a live server serving a copy
// of models/ (its HTTP port standing for localhost:8501), so the README
// cannot drift from what the programs do. A runnable block followed by a
// block marked "text output" shows what it prints: the two are compared
// byte for byte. SEQSERVE_README_WRITE=1 writes what was printed into those
// blocks instead (then read the diff before committing it).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
constexpr absl::string_view kOutputFence = "```text output";

// A runnable block, and the output block after it if there is one (only
// blank lines between).
struct Block {
  std::string script;
  bool shows_output = false;
  std::string output;
  // The output block's body in the README's lines: [first, end).
  size_t output_first_line = 0;
  size_t output_end_line = 0;
};

std::vector<Block> RunnableBlocks(const std::vector<std::string>& lines) {
  std::vector<Block> blocks;
  enum { kProse, kRunnable, kOutput, kOther } inside = kProse;
  bool after_runnable = false;  // only blank lines since a runnable block
  for (size_t i = 0; i < lines.size(); ++i) {
    const absl::string_view line = lines[i];
    const absl::string_view fence = absl::StripTrailingAsciiWhitespace(line);
    if (inside == kProse) {
      if (fence == kRunnableFence) {
        inside = kRunnable;
        blocks.emplace_back();
      } else if (fence == kOutputFence) {
        EXPECT_TRUE(after_runnable) << "README line " << i + 1
                                    << ": an output block that follows no runnable block";
        inside = kOutput;
        if (after_runnable) {
          blocks.back().shows_output = true;
          blocks.back().output_first_line = i + 1;
        }
      } else if (absl::StartsWith(line, "```")) {
        inside = kOther;
      }
      if (!fence.empty() && inside != kOutput) after_runnable = false;
    } else if (absl::StartsWith(line, "```")) {
      if (inside == kOutput && !blocks.empty() && blocks.back().output_first_line > 0 &&
          blocks.back().output_end_line == 0) {
        blocks.back().output_end_line = i;
      }
      after_runnable = inside == kRunnable;
      inside = kProse;
    } else if (inside == kRunnable) {
      absl::StrAppend(&blocks.back().script, line, "\n");
    } else if (inside == kOutput && after_runnable) {
      absl::StrAppend(&blocks.back().output, line, "\n");
    }
  }
  EXPECT_EQ(inside, kProse) << "a block is not closed";
  return blocks;
}

TEST(Readme, RunnableBlocksRunAgainstALiveServer) {
  std::ifstream file(SEQSERVE_README);
  ASSERT_TRUE(file.good()) << SEQSERVE_README;
  std::stringstream markdown;
  markdown << file.rdbuf();
  std::vector<std::string> lines = absl::StrSplit(markdown.str(), '\n');
  const std::vector<Block> blocks = RunnableBlocks(lines);
  ASSERT_GE(blocks.size(), 6u);
  const char* write = std::getenv("SEQSERVE_README_WRITE");
  const bool write_outputs = write != nullptr && std::string(write) == "1";

  const std::filesystem::path work = std::filesystem::path(::testing::TempDir()) /
                                     absl::StrCat("readme.", getpid());
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work);
  std::filesystem::copy(SEQSERVE_MODELS_DIR, work / "models",
                        std::filesystem::copy_options::recursive);
  ServerProcess server(SEQSERVE_PATH, {"--model_repository=" + (work / "models").string(),
                                       "--poll_seconds=0.2"});
  ASSERT_TRUE(server.ready()) << server.output();
  // The README's second server, under explicit model control, on the same
  // repository: its ports stand for localhost:8600 and localhost:8601.
  ServerProcess control(SEQSERVE_PATH, {"--model_repository=" + (work / "models").string(),
                                        "--model_control_mode=explicit",
                                        "--load_model=species"});
  ASSERT_TRUE(control.ready()) << control.output();

  const std::string path =
      absl::StrCat(std::filesystem::path(SEQCLIENT_PATH).parent_path().string(), ":",
                   std::filesystem::path(SEQMODEL_PATH).parent_path().string(), ":",
                   std::getenv("PATH"));
  std::string all_output;
  // What each block showing its output printed, for SEQSERVE_README_WRITE.
  std::vector<std::pair<const Block*, std::string>> printed;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string script = (work / absl::StrCat("block", i, ".sh")).string();
    // The README's ports are these servers'.
    std::ofstream(script) << absl::StrReplaceAll(
        blocks[i].script,
        {{"localhost:8501", absl::StrCat("127.0.0.1:", server.http_port())},
         {"localhost:8600", control.target()},
         {"localhost:8601", absl::StrCat("127.0.0.1:", control.http_port())}});
    const auto result = RunCommand(absl::StrCat(
        "cd ", work.string(), " && PATH=", path, " SEQSERVE_TARGET=", server.target(),
        " timeout 60 bash -euo pipefail ", script, " 2>&1"));
    ASSERT_EQ(result.exit_code, 0) << "README block " << i << ":\n"
                                   << blocks[i].script << "printed:\n"
                                   << result.output;
    absl::StrAppend(&all_output, "--- block ", i, "\n", result.output);
    if (!blocks[i].shows_output) continue;
    if (write_outputs) {
      printed.emplace_back(&blocks[i], result.output);
    } else {
      EXPECT_EQ(result.output, blocks[i].output)
          << "README block " << i << " prints other bytes than its output block shows:\n"
          << blocks[i].script << "(SEQSERVE_README_WRITE=1 writes them into the README)";
    }
  }
  if (write_outputs) {
    // From the last block up, so that earlier line numbers stay right.
    for (auto it = printed.rbegin(); it != printed.rend(); ++it) {
      std::vector<std::string> output = absl::StrSplit(it->second, '\n');
      if (!output.empty() && output.back().empty()) output.pop_back();
      lines.erase(lines.begin() + it->first->output_first_line,
                  lines.begin() + it->first->output_end_line);
      lines.insert(lines.begin() + it->first->output_first_line, output.begin(), output.end());
    }
    std::ofstream(SEQSERVE_README) << absl::StrJoin(lines, "\n");
    GTEST_SKIP() << "wrote the outputs into " << SEQSERVE_README;
  }
  // What the walk-through says happens, happened.
  EXPECT_THAT(all_output, HasSubstr("species                  2        available"));
  EXPECT_THAT(all_output, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(all_output, HasSubstr("exit code 1"));
  EXPECT_THAT(all_output, HasSubstr("not mammal"));
  // The canary took its label and then every call; the second server
  // loaded through the API, and a failed load left version 1 serving.
  EXPECT_THAT(all_output, HasSubstr("2 available (canary, stable)"));
  EXPECT_THAT(all_output, HasSubstr("loaded mammal"));
  EXPECT_THAT(all_output, HasSubstr("(still serving version 1)"));
  EXPECT_THAT(all_output, HasSubstr("batching:       256 rows per pass"));
  // TF Serving's REST API, as the README shows it.
  EXPECT_THAT(all_output, HasSubstr(R"({"model_version_status":[{"state":"AVAILABLE","status":)"
                                    R"({"error_code":"OK","error_message":""},"version":"1"}]})"));
  EXPECT_THAT(all_output, HasSubstr("{'features': {'dtype': 'DT_FLOAT'"));
  EXPECT_THAT(all_output, HasSubstr("['limbs', 'lays_eggs', 'has_hair']"));
  EXPECT_THAT(all_output, HasSubstr(R"({"predictions":[[)"));
  EXPECT_THAT(all_output, HasSubstr(R"({"outputs":[[)"));
  EXPECT_THAT(all_output, HasSubstr(R"({"result":[[["not mammal",)"));
  server.CollectOutput();
  EXPECT_THAT(server.output(), HasSubstr("model species version 1 unloaded: the version "
                                         "policy, latest 1 (the default), no longer selects it"));
  std::filesystem::remove_all(work);
}

}  // namespace
}  // namespace seqserve
