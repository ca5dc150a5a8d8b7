// seqclient classify (answers from a server) and seqmodel run (answers from
// the model file) print the same rows identically in every format, and
// refuse the same requests with the same message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cmd/classification_format.h"
#include "tests/support/sample_server_fixture.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::CommandResult;
using testing::RunCommand;

constexpr char kRows[] = "4,0,1\n2,1,0\n0,1,0\n4,1,0\n0,0,0\n";

class ToolOutputTest : public testing::SampleServerTest {
 protected:
  static std::string WriteFile(const std::string& name, const std::string& contents) {
    const std::string path = ::testing::TempDir() + "/tool_output_" + name;
    std::ofstream(path) << contents;
    return path;
  }
  static CommandResult Seqclient(const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQCLIENT_PATH, " --target=", server_->target(), " ",
                                   arguments));
  }
  static CommandResult Seqmodel(const std::string& arguments) {
    return RunCommand(absl::StrCat(SEQMODEL_PATH, " ", arguments));
  }
  static std::string ModelFile(const std::string& model) {
    return absl::StrCat(SEQSERVE_MODELS_DIR, "/", model, "/1/",
                        model == "mammal" ? "model.textproto" : "model.onnx");
  }
};

TEST_F(ToolOutputTest, BothToolsPrintTheSameRowsTheSameWay) {
  const std::string rows = WriteFile("rows.csv", kRows);
  struct Case {
    const char* model;
    const char* options;
  };
  const Case cases[] = {
      {"species", ""},
      {"species", "--output logits"},
      {"species", "--output sigmoid"},
      {"species", "--output softmax --top_k 2"},
      {"species", "--output log_softmax --top_k 3"},
      {"species", "--output sigmoid --threshold 0.3 --top_k 1"},
      {"mammal", ""},
      {"mammal", "--output logits --top_k 1"},
      {"mammal", "--threshold 0.9"},
  };
  int compared = 0;
  for (const Case& c : cases) {
    for (const char* format : {"table", "csv", "json"}) {
      const std::string options =
          absl::StrCat(c.options, " --format ", format, " --input ", rows);
      const CommandResult client =
          Seqclient(absl::StrCat("classify --model ", c.model, " ", options));
      const CommandResult model =
          Seqmodel(absl::StrCat("run ", ModelFile(c.model), " ", options));
      ASSERT_EQ(client.exit_code, 0) << c.model << " " << options << "\n" << client.output;
      ASSERT_EQ(model.exit_code, 0) << c.model << " " << options << "\n" << model.output;
      EXPECT_EQ(client.output, model.output) << c.model << " " << options;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 27);
}

TEST_F(ToolOutputTest, CsvCarriesTopKAndPositive) {
  const CommandResult top =
      Seqclient("classify --model species --format csv --top_k 2 4,0,1");
  ASSERT_EQ(top.exit_code, 0) << top.output;
  EXPECT_THAT(top.output,
              HasSubstr("row,predicted_index,predicted_label,bird,mammal,reptile,top_k\n"));
  EXPECT_THAT(top.output, HasSubstr(",mammal:1;reptile:"));
  // Sigmoid over three outputs with a low threshold: two positives, by index.
  const CommandResult sigmoid = Seqclient(
      "classify --model species --format csv --output sigmoid --threshold 0.001 4,0,1");
  ASSERT_EQ(sigmoid.exit_code, 0) << sigmoid.output;
  EXPECT_THAT(sigmoid.output, HasSubstr(",reptile,positive\n"));
  EXPECT_THAT(sigmoid.output, HasSubstr(",mammal:1;reptile:0.00606"));
  // A label with the CSV's own separators is quoted as RFC 4180 says.
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
}

// Each refusal is the server's, word for word, from either tool.
TEST_F(ToolOutputTest, BothToolsRefuseTheSameRequestsAlike) {
  const std::string rows = WriteFile("refused.csv", "4,0,1\n");
  struct Case {
    const char* model;
    const char* options;
    const char* message;
  };
  const Case cases[] = {
      {"mammal", "--output softmax", "INVALID_ARGUMENT: model 'mammal' has one output; "
                                     "softmax over it is always 1, ask for sigmoid"},
      {"mammal", "--output log_softmax", "log_softmax over it is always 0"},
      {"species", "--top_k 4", "top_k 4 is more than the 3 outputs of model 'species'"},
      {"species", "--threshold 1.5", "threshold 1.5 is outside (0, 1)"},
      {"species", "--output probits", "unknown --output 'probits' (default, logits, sigmoid, "
                                      "softmax, log_softmax)"},
      {"species", "--format xml", "unknown --format 'xml' (table, csv or json)"},
  };
  for (const Case& c : cases) {
    const std::string options = absl::StrCat(c.options, " --input ", rows);
    const CommandResult client =
        Seqclient(absl::StrCat("classify --model ", c.model, " ", options));
    const CommandResult model =
        Seqmodel(absl::StrCat("run ", ModelFile(c.model), " ", options));
    EXPECT_EQ(client.exit_code, 1) << client.output;
    EXPECT_EQ(model.exit_code, 1) << model.output;
    EXPECT_THAT(client.output, HasSubstr(c.message)) << c.options;
    EXPECT_EQ(absl::StripPrefix(client.output, "seqclient: "),
              absl::StripPrefix(model.output, "seqmodel: "))
        << c.options;
  }
}

// What pandas writes (a header, an unnamed index column) in a shuffled
// column order gives the same scores as the plain rows.
TEST_F(ToolOutputTest, AHeaderRowInAnyColumnOrderGivesTheSameScores) {
  const std::string plain = WriteFile("plain.csv", "4,0,1\n2,1,0\n");
  const std::string shuffled =
      WriteFile("shuffled.csv", ",has_hair,limbs,lays_eggs\n0,1,4,0\n1,0,2,1\n");
  const std::string jsonl = WriteFile(
      "rows.jsonl", "{\"features\": [4, 0, 1]}\n{\"lays_eggs\": 1, \"limbs\": 2, "
                    "\"has_hair\": 0}\n");
  const CommandResult expected =
      Seqclient("classify --model species --format csv --output logits --input " + plain);
  ASSERT_EQ(expected.exit_code, 0) << expected.output;
  for (const std::string& path : {shuffled, jsonl}) {
    const CommandResult client =
        Seqclient("classify --model species --format csv --output logits --input " + path);
    EXPECT_EQ(client.output, expected.output) << path;
    const CommandResult model = Seqmodel(absl::StrCat(
        "run ", ModelFile("species"), " --format csv --output logits --input ", path));
    EXPECT_EQ(model.output, expected.output) << path;
  }
  const std::string bad = WriteFile("bad_header.csv", "limbs,eggs,hair\n4,0,1\n");
  const CommandResult refused = Seqclient("classify --model species --input " + bad);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output,
              HasSubstr("line 1: header has unknown columns 'eggs', 'hair' and missing "
                        "columns 'lays_eggs', 'has_hair'; the model takes "
                        "limbs,lays_eggs,has_hair"));
}

TEST_F(ToolOutputTest, DashMeansStdinInBothSpellingsWithoutAWarning) {
  for (const char* flag : {"--input -", "--input=-"}) {
    const CommandResult client = RunCommand(
        absl::StrCat("printf 'limbs,lays_eggs,has_hair\\n4,0,1\\n' | ", SEQCLIENT_PATH,
                     " --target=", server_->target(), " classify --model species --format csv ",
                     flag));
    EXPECT_EQ(client.exit_code, 0) << flag << client.output;
    EXPECT_EQ(client.output.rfind("row,predicted_index,predicted_label,bird", 0), 0u)
        << flag << "\n" << client.output;
    EXPECT_THAT(client.output, HasSubstr("\n0,1,mammal,")) << flag;
    const CommandResult model = RunCommand(absl::StrCat(
        "printf '4,0,1\\n' | ", SEQMODEL_PATH, " run ", ModelFile("species"),
        " --format csv ", flag));
    EXPECT_EQ(model.exit_code, 0) << flag << model.output;
    EXPECT_EQ(model.output.rfind("row,predicted_index", 0), 0u) << flag << model.output;
  }
}

TEST_F(ToolOutputTest, EveryCommandHonoursOrRefusesFormat) {
  CommandResult result = Seqclient("models --format json");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // The API's ListModelsResponse, as REST answers it.
  EXPECT_THAT(result.output, HasSubstr("{\"name\":\"mammal\",\"versions\":[{\"version\":\"1\","
                                       "\"state\":\"MODEL_STATE_AVAILABLE\",\"error\":\"\","
                                       "\"labels\":[]}]"));
  result = Seqclient("models --format csv");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("model,version,state,error\n"));
  EXPECT_THAT(result.output, HasSubstr("\nspecies,1,available,\n"));
  result = Seqclient("metadata species --format json");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("\"labels\":[\"bird\",\"mammal\",\"reptile\"]"));
  EXPECT_THAT(result.output,
              HasSubstr("\"feature_names\":[\"limbs\",\"lays_eggs\",\"has_hair\"]"));
  result = Seqclient("metadata species --format csv");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("metadata does not print --format csv"));
  result = Seqclient("health --format json");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("health does not print --format json"));
  result = Seqclient("bench --model species --requests 10 --concurrency 1 --format json");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("bench does not print --format json"));
  result = Seqclient("bench --model species --requests 10 --concurrency 1 --format csv");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("\nclassify,1,10,0,"));
  result = Seqmodel(absl::StrCat("inspect ", ModelFile("species"), " --format json"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("inspect prints text only"));
}

}  // namespace
}  // namespace seqserve
