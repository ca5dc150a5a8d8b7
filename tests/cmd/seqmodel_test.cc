// seqmodel end to end: the built binary on the reference models.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/support/reference_data.h"
#include "tests/support/server_process.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;

using Result = testing::CommandResult;

// Runs seqmodel with `arguments`, feeding `input` on stdin.
Result RunSeqmodel(const std::string& arguments, const std::string& input = "") {
  // One file per test: ctest runs tests in parallel.
  const std::string stdin_path =
      absl::StrCat(::testing::TempDir(), "/",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                   ".stdin");
  std::ofstream(stdin_path) << input;
  return testing::RunCommand(
      absl::StrCat(SEQMODEL_PATH, " ", arguments, " < ", stdin_path));
}

std::string WriteRows(const testing::ReferenceCase& reference) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/", absl::StrReplaceAll(reference.name, {{"/", "_"}}),
                   "_rows.csv");
  std::ofstream out(path);
  for (size_t r = 0; r < reference.rows; ++r) {
    std::vector<std::string> fields;
    for (size_t c = 0; c < reference.input_width; ++c) {
      fields.push_back(absl::StrCat(reference.inputs[r * reference.input_width + c]));
    }
    out << absl::StrJoin(fields, ",") << "\n";
  }
  return path;
}

TEST(Seqmodel, InspectPrintsLayersWidthsHeadAndParameters) {
  const Result result = RunSeqmodel(testing::ReferenceDir() + "/species.onnx inspect");
  // Positional order is "inspect FILE"; the reversed call is a usage error.
  EXPECT_EQ(result.exit_code, 2);
  const Result ok = RunSeqmodel("inspect " + testing::ReferenceDir() + "/species.onnx");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("input width:  3"));
  EXPECT_THAT(ok.output, HasSubstr("output width: 3"));
  EXPECT_THAT(ok.output, HasSubstr("default head: softmax"));
  EXPECT_THAT(ok.output, HasSubstr("parameters:   115"));
  EXPECT_THAT(ok.output, HasSubstr("(0) Linear(3, 16)"));
  EXPECT_THAT(ok.output, HasSubstr("(2) Linear(16, 3)"));
}

// With a config, inspect lists the features a call sends and how each is
// prepared; a preprocessing that does not fit the model is refused.
TEST(Seqmodel, InspectShowsTheConfigsPreprocessing) {
  const std::string config = ::testing::TempDir() + "/inspect_config.textproto";
  std::ofstream(config) << R"pb(
    feature_names: [ "limbs", "lays_eggs", "has_hair" ]
    preprocessing { feature: "limbs" clip { max: 8 } standardize { mean: 3.5 std: 1.25 } }
    preprocessing { feature: "has_hair" min_max { min: 0 max: 2 } missing_value: 1 }
  )pb";
  const std::string model = testing::ReferenceDir() + "/species.onnx";
  const Result ok = RunSeqmodel("inspect " + model + " --config " + config);
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("features:\n"
                                   "  limbs: clip to (-inf, 8], then (x - 3.5) / 1.25; missing: "
                                   "refused\n"
                                   "  lays_eggs: as sent\n"
                                   "  has_hair: min_max [0, 2] to [0, 1]; missing: 1\n"));
  EXPECT_THAT(ok.output, HasSubstr("input width:  3"));

  std::ofstream(config) << R"pb(
    feature_names: [ "limbs", "lays_eggs", "has_hair" ]
    preprocessing { feature: "limbs" one_hot { categories: [ "2", "4" ] } }
  )pb";
  const Result refused = RunSeqmodel("inspect " + model + " --config " + config);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("config preprocessing prepares 4 values from 3 features"));
}

// JSON Lines by name with a category's text and a null run through the
// config's preprocessing: the species sample behind limbs (default 4) and
// a coat one-hot over feathers and hair answers species' own rows.
TEST(Seqmodel, RunReadsCategoriesAndMissingValuesThroughThePreprocessing) {
  const std::string config = ::testing::TempDir() + "/categorical_config.textproto";
  std::ofstream(config) << R"pb(
    labels: [ "bird", "mammal", "reptile" ]
    feature_names: [ "limbs", "coat" ]
    preprocessing { feature: "limbs" missing_value: 4 }
    preprocessing { feature: "coat" one_hot { categories: [ "feathers", "hair" ] } }
  )pb";
  const std::string model = testing::ReferenceDir() + "/species.onnx";
  const Result pets = RunSeqmodel("run " + model + " --config " + config + " --format csv",
                                  "{\"coat\": \"hair\", \"limbs\": null}\n"
                                  "{\"limbs\": 2, \"coat\": \"feathers\"}\n");
  ASSERT_EQ(pets.exit_code, 0) << pets.output;
  const Result species = RunSeqmodel("run " + model + " --format csv", "4,0,1\n2,1,0\n");
  ASSERT_EQ(species.exit_code, 0) << species.output;
  // Species has no labels without a config: compare the score columns.
  auto scores = [](const std::string& csv) {
    std::vector<std::string> rows;
    for (absl::string_view line : absl::StrSplit(csv, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
      rows.push_back(absl::StrJoin(fields.end() - 3, fields.end(), ","));
    }
    return rows;
  };
  const auto pets_scores = scores(pets.output), species_scores = scores(species.output);
  ASSERT_EQ(pets_scores.size(), 3u) << pets.output;
  EXPECT_EQ(std::vector<std::string>(pets_scores.begin() + 1, pets_scores.end()),
            std::vector<std::string>(species_scores.begin() + 1, species_scores.end()))
      << pets.output << species.output;

  const Result unknown = RunSeqmodel("run " + model + " --config " + config,
                                     "{\"coat\": \"scales\", \"limbs\": 4}\n");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("'scales'"));
}

TEST(Seqmodel, InspectReportsTheLoadError) {
  const std::string path = ::testing::TempDir() + "/garbage.onnx";
  std::ofstream(path) << "not a model";
  const Result result = RunSeqmodel("inspect " + path);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(result.output, HasSubstr("not an ONNX model"));
}

// A model ending in LogSoftmax answers log-probabilities by default, and
// any multi-output model does when asked.
TEST(Seqmodel, RunGivesLogSoftmaxAsTorchDoes) {
  auto reference = testing::LoadReference("layers/log_softmax_t9");
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const char* output : {"default", "log_softmax"}) {
    const Result result =
        RunSeqmodel(absl::StrCat("run ", reference->onnx_path, " --format csv --output ", output,
                                 " --input ", WriteRows(*reference)));
    ASSERT_EQ(result.exit_code, 0) << result.output;
    std::vector<std::string> lines = absl::StrSplit(result.output, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), reference->rows + 1) << result.output;
    for (size_t r = 0; r < reference->rows; ++r) {
      std::vector<std::string> fields = absl::StrSplit(lines[r + 1], ',');
      ASSERT_EQ(fields.size(), 6u) << lines[r + 1];
      for (size_t c = 0; c < 3; ++c) {
        const float value = std::strtof(fields[3 + c].c_str(), nullptr);
        EXPECT_TRUE(testing::CloseToReference(value, reference->log_softmax[r * 3 + c]))
            << output << " row " << r << ": " << lines[r + 1];
      }
    }
  }
}

// A 2.5 GB sparse model.onnx under a 512 MB address-space limit: refused by
// its size before any of it is read, no std::bad_alloc, no crash.
TEST(Seqmodel, AHugeSparseModelIsRefusedUnderAMemoryLimit) {
#ifdef SEQSERVE_SANITIZED
  GTEST_SKIP() << "sanitizer runtimes reserve terabytes of shadow memory: no ulimit -v";
#endif
  const std::string dir = absl::StrCat(::testing::TempDir(), "/huge.", getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/model.onnx";
  std::ofstream(path).close();
  std::filesystem::resize_file(path, (uint64_t{5} << 30) / 2);
  const Result result = testing::RunCommand(
      absl::StrCat("ulimit -v 524288 && ", SEQMODEL_PATH, " inspect ", path));
  std::filesystem::remove_all(dir);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("model.onnx: 2684354560 bytes is over the limit of 1073741824 bytes"));
}

TEST(Seqmodel, RunCsvGivesOneLinePerRowWithPyTorchsScores) {
  for (const char* name : {"species", "mammal", "multilabel_logits"}) {
    auto reference = testing::LoadReference(name);
    ASSERT_TRUE(reference.ok()) << reference.status();
    for (auto [output, expected] :
         {std::pair{"default", &reference->output},
          std::pair{"logits", &reference->logits},
          std::pair{"sigmoid", &reference->sigmoid},
          std::pair{"softmax", &reference->softmax}}) {
      const Result result =
          RunSeqmodel(absl::StrCat("run ", reference->onnx_path, " --format csv --output ",
                           output, " --input ", WriteRows(*reference)));
      if (reference->output_width == 1 && std::string(output) == "softmax") {
        // Always 1: refused, as the server refuses it.
        EXPECT_EQ(result.exit_code, 1);
        EXPECT_THAT(result.output, HasSubstr("has one output; softmax over it is always 1"));
        continue;
      }
      ASSERT_EQ(result.exit_code, 0) << result.output;
      std::vector<std::string> lines =
          absl::StrSplit(result.output, '\n', absl::SkipEmpty());
      ASSERT_EQ(lines.size(), reference->rows + 1) << result.output;
      EXPECT_EQ(lines[0].rfind("row,predicted_index,predicted_label,score_0", 0), 0u)
          << lines[0];
      const size_t width = reference->output_width;
      // Multi-output sigmoid answers end with the classes over the threshold.
      const bool positive = absl::EndsWith(lines[0], ",positive");
      EXPECT_EQ(positive, width > 1 &&
                              (std::string(output) == "sigmoid" ||
                               (std::string(output) == "default" &&
                                reference->output == reference->sigmoid)))
          << name << " " << output << ": " << lines[0];
      for (size_t r = 0; r < reference->rows; ++r) {
        std::vector<std::string> fields = absl::StrSplit(lines[r + 1], ',');
        ASSERT_EQ(fields.size(), width + 3 + (positive ? 1 : 0)) << lines[r + 1];
        for (size_t c = 0; c < width; ++c) {
          const float value = std::strtof(fields[3 + c].c_str(), nullptr);
          EXPECT_TRUE(testing::CloseToReference(value, (*expected)[r * width + c]))
              << name << " " << output << " row " << r << ": " << lines[r + 1];
        }
      }
    }
  }
}

TEST(Seqmodel, RunReadsStdinAndPrintsJson) {
  const std::string model = testing::ReferenceDir() + "/mammal.onnx";
  // Nothing to run is refused, as seqclient refuses it.
  const Result empty = RunSeqmodel("run " + model + " --format json");
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_EQ(empty.output, "seqmodel: no feature rows given\n");
  // The mammal reference gives 0.99997437 for an all-zero row; outside a
  // repository the file's stem names the model and its version is 0.
  const Result one = RunSeqmodel("run " + model + " --format json", "0,0,0\n");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_EQ(one.output,
            "{\"model\":\"mammal\",\"version\":\"0\",\"output\":\"OUTPUT_MODE_SIGMOID\","
            "\"results\":[{\"scores\":[0.99997437],\"predicted_index\":1,\"predicted_label\":\"\","
            "\"positive\":[],\"top_k\":[],\"score\":0.99997437}]}\n");
}

// Rows as arguments, as seqclient classify takes them: the same answer as
// the same rows on stdin, and errors name the row.
TEST(Seqmodel, RunTakesRowsAsArguments) {
  const std::string model = testing::ReferenceDir() + "/species.onnx";
  const Result from_args = RunSeqmodel("run " + model + " 4,0,1 2,1,0 --format csv");
  ASSERT_EQ(from_args.exit_code, 0) << from_args.output;
  const Result from_stdin = RunSeqmodel("run " + model + " --format csv", "4,0,1\n2,1,0\n");
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.output;
  EXPECT_EQ(from_args.output, from_stdin.output);
  EXPECT_EQ(std::count(from_args.output.begin(), from_args.output.end(), '\n'), 3)
      << from_args.output;
  const Result bad = RunSeqmodel("run " + model + " 4,0,1 2,x,0");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("row 2 column 2: 'x' is not a finite number"));
  // inspect still takes the file alone.
  EXPECT_EQ(RunSeqmodel("inspect " + model + " 4,0,1").exit_code, 2);
}

TEST(Seqmodel, RunNamesTheBadRowAndColumn) {
  const std::string path = ::testing::TempDir() + "/bad_rows.csv";
  std::ofstream(path) << "4,0,1\n2,zero,1\n";
  const Result result =
      RunSeqmodel("run " + testing::ReferenceDir() + "/mammal.onnx --input " + path);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("line 2 column 2: 'zero' is not a finite number"));
}

TEST(Seqmodel, RunRefusesUnknownOutputAndFormat) {
  const std::string model = testing::ReferenceDir() + "/mammal.onnx";
  Result result = RunSeqmodel("run " + model + " --output probits");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("unknown --output 'probits'"));
  result = RunSeqmodel("run " + model + " --format xml");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("unknown --format 'xml'"));
}

// explain: the server's Explain on a file, with PyTorch's attributions
// (tests/data/reference/explanations) in its CSV.
TEST(Seqmodel, ExplainGivesPyTorchsAttributionsAsCsv) {
  std::ifstream file(testing::ReferenceDir() + "/explanations/species.json");
  const nlohmann::json reference = nlohmann::json::parse(file);
  // The command's defaults: integrated gradients at 50 Gauss-Legendre
  // steps of the model's default head, for each row's predicted class.
  nlohmann::json expected;
  for (const auto& entry : reference["explanations"]) {
    if (entry["method"] == "integrated_gradients" && entry["rule"] == "gausslegendre" &&
        entry["head"] == "softmax") {
      expected = entry;
      break;
    }
  }
  ASSERT_FALSE(expected.is_null());
  ASSERT_EQ(reference["inputs"][0], nlohmann::json({4.0, 0.0, 1.0}));
  const Result result =
      RunSeqmodel("explain " + testing::ReferenceDir() + "/species.onnx 4,0,1 --format csv");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const std::vector<std::string> lines =
      absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << result.output;
  EXPECT_EQ(lines[0], "row,target_index,target_label,score,0,1,2,delta");
  const std::vector<std::string> fields = absl::StrSplit(lines[1], ',');
  ASSERT_EQ(fields.size(), 8u);
  EXPECT_EQ(fields[1], absl::StrCat(expected["targets"][0].get<int>()));
  for (int k = 0; k < 3; ++k) {
    const double want = expected["attributions"][0][k].get<double>();
    EXPECT_NEAR(std::strtod(fields[4 + k].c_str(), nullptr), want, 1e-5 * std::fabs(want) + 1e-6)
        << lines[1];
  }
}

TEST(Seqmodel, ExplainPrintsATableWithFeatureColumnsAndRefusesWhatItCannot) {
  const std::string model = testing::ReferenceDir() + "/species.onnx";
  const Result table =
      RunSeqmodel("explain " + model + " 4,0,1 2,1,0 --method shapley --target_class 1");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("species version 0: shapley of softmax, baseline 0,0,0"));
  EXPECT_THAT(table.output, HasSubstr("row  class  score"));
  EXPECT_THAT(table.output, ::testing::Not(HasSubstr("delta")));

  const std::vector<std::string> zeros(20, "0");
  const Result wide = RunSeqmodel("explain " + testing::ReferenceDir() +
                                      "/deep_tanh_leaky_elu.onnx --method shapley",
                                  absl::StrJoin(zeros, ",") + "\n");
  EXPECT_EQ(wide.exit_code, 1);
  EXPECT_EQ(wide.output,
            "seqmodel: INVALID_ARGUMENT: model 'deep_tanh_leaky_elu': exact Shapley values "
            "evaluate 2^n coalitions: at most 16 features, and this model has 20; use "
            "integrated_gradients\n");
  const Result method = RunSeqmodel("explain " + model + " 4,0,1 --method lime");
  EXPECT_EQ(method.exit_code, 1);
  EXPECT_EQ(method.output,
            "seqmodel: unknown --method 'lime': saliency, input_x_gradient, "
            "integrated_gradients or shapley\n");
  const Result baseline = RunSeqmodel("explain " + model + " 4,0,1 --baseline 1,2");
  EXPECT_EQ(baseline.exit_code, 1);
  EXPECT_EQ(baseline.output,
            "seqmodel: INVALID_ARGUMENT: model 'species': the baseline has 2 values, the model "
            "takes 3\n");
}

}  // namespace
}  // namespace seqserve

namespace seqserve {
namespace {

// Inspect says the precision the model would be served in: the config's,
// or --precision over it.
TEST(SeqmodelPrecision, InspectShowsTheConfigsPrecisionOrTheFlags) {
  const std::string model = testing::ReferenceDir() + "/species.onnx";
  const Result plain = RunSeqmodel("inspect " + model);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_THAT(plain.output, HasSubstr("precision:    fp32"));
  const std::string config = ::testing::TempDir() + "/int8_config.textproto";
  std::ofstream(config) << "precision: int8\n";
  const Result int8 = RunSeqmodel(absl::StrCat("inspect ", model, " --config ", config));
  ASSERT_EQ(int8.exit_code, 0) << int8.output;
  EXPECT_THAT(int8.output, HasSubstr("precision:    int8"));
  const Result flag =
      RunSeqmodel(absl::StrCat("inspect ", model, " --config ", config, " --precision fp32"));
  ASSERT_EQ(flag.exit_code, 0) << flag.output;
  EXPECT_THAT(flag.output, HasSubstr("precision:    fp32"));
  const Result wrong = RunSeqmodel(absl::StrCat("inspect ", model, " --precision bf17"));
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.output, HasSubstr("--precision bf17 is not a precision: fp32 or int8"));
}

// Run in INT8 answers with other scores than float32 but, on the reference
// rows, the same classes.
TEST(SeqmodelPrecision, RunInInt8KeepsTheReferenceClasses) {
  auto reference = testing::LoadReference("species");
  ASSERT_TRUE(reference.ok()) << reference.status();
  const std::string rows = WriteRows(*reference);
  const std::string model = testing::ReferenceDir() + "/species.onnx";
  const Result fp32 = RunSeqmodel(absl::StrCat("run ", model, " --format csv --input ", rows));
  const Result int8 =
      RunSeqmodel(absl::StrCat("run ", model, " --format csv --precision int8 --input ", rows));
  ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
  ASSERT_EQ(int8.exit_code, 0) << int8.output;
  EXPECT_NE(fp32.output, int8.output);
  // row,predicted_index,...: the first two fields of every line agree.
  const std::vector<std::string> a = absl::StrSplit(fp32.output, '\n');
  const std::vector<std::string> b = absl::StrSplit(int8.output, '\n');
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<std::string> x = absl::StrSplit(a[i], absl::MaxSplits(',', 2));
    const std::vector<std::string> y = absl::StrSplit(b[i], absl::MaxSplits(',', 2));
    ASSERT_EQ(x.size(), y.size()) << i;
    if (x.size() >= 2) {
      EXPECT_EQ(x[1], y[1]) << "line " << i;
    }
  }
}

// Compare prints the agreement with float32 and the largest difference.
TEST(SeqmodelPrecision, CompareReportsAgreementAndTheLargestDifference) {
  auto reference = testing::LoadReference("species");
  ASSERT_TRUE(reference.ok()) << reference.status();
  const std::string rows = WriteRows(*reference);
  const std::string model = testing::ReferenceDir() + "/species.onnx";
  const Result result = RunSeqmodel(absl::StrCat("compare ", model, " --input ", rows));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("precision:        int8 against fp32\n"));
  EXPECT_THAT(result.output, HasSubstr(absl::StrCat("rows:             ", reference->rows, "\n")));
  EXPECT_THAT(result.output,
              HasSubstr(absl::StrCat("top-1 agreement:  ", reference->rows, " of ",
                                     reference->rows, " (100.00%)\n")));
  // The largest difference, computed here from the two runs' softmax.
  const Result fp32 = RunSeqmodel(
      absl::StrCat("run ", model, " --format json --output softmax --input ", rows));
  const Result int8 = RunSeqmodel(absl::StrCat(
      "run ", model, " --format json --output softmax --precision int8 --input ", rows));
  ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
  ASSERT_EQ(int8.exit_code, 0) << int8.output;
  const nlohmann::json a = nlohmann::json::parse(fp32.output);
  const nlohmann::json b = nlohmann::json::parse(int8.output);
  float largest = 0;
  for (size_t r = 0; r < a["results"].size(); ++r) {
    for (size_t i = 0; i < a["results"][r]["scores"].size(); ++i) {
      largest = std::max(largest, std::fabs(a["results"][r]["scores"][i].get<float>() -
                                            b["results"][r]["scores"][i].get<float>()));
    }
  }
  EXPECT_GT(largest, 0.0f);
  EXPECT_THAT(result.output,
              HasSubstr(absl::StrCat("largest softmax difference: ",
                                     absl::StrFormat("%.6g", largest), " (row ")));
  const Result refused =
      RunSeqmodel(absl::StrCat("compare ", model, " --precision fp32 --input ", rows));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("--precision fp32 is the reference"));
}

}  // namespace
}  // namespace seqserve
