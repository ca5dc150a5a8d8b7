// seqmodel: inspect and run a model file with core/ alone, before deploying.
//
//   seqmodel inspect FILE
//   seqmodel run FILE [--output logits|sigmoid|softmax|log_softmax|default]
//                     [--format table|csv|json] [--input ROWS.csv]
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/feature_rows.h"
#include "core/file_util.h"
#include "core/model_file.h"

ABSL_FLAG(std::string, output, "default",
          "run: logits, sigmoid, softmax, log_softmax, or default (the model's own head)");
ABSL_FLAG(std::string, format, "table", "run: table, csv or json");
ABSL_FLAG(std::string, input, "", "run: CSV file of feature rows (default stdin)");

namespace seqserve {
namespace {

constexpr char kUsage[] =
    "Inspects or runs a seqserve model file (.onnx or .textproto).\n"
    "  seqmodel inspect FILE\n"
    "  seqmodel run FILE [--output logits|sigmoid|softmax|log_softmax|default] "
    "[--format table|csv|json] [--input ROWS.csv]";

int Fail(absl::string_view message) {
  std::cerr << "seqmodel: " << message << "\n";
  return 1;
}

int Inspect(const Sequential& model, const std::string& path) {
  std::cout << "model:        " << path << "\n"
            << "input width:  " << model.input_width() << "\n"
            << "output width: " << model.output_width() << "\n"
            << "default head: " << HeadName(model.default_head()) << "\n"
            << "parameters:   " << model.ParameterCount() << "\n"
            << "layers:\n";
  for (size_t i = 0; i < model.layers().size(); ++i) {
    std::cout << "  (" << i << ") " << model.layers()[i].Describe() << "\n";
  }
  return 0;
}

void PrintRows(const std::vector<float>& scores, size_t rows, size_t width,
               Head head, const std::string& format) {
  std::vector<std::string> names;
  for (size_t j = 0; j < width; ++j) names.push_back(absl::StrCat("score_", j));
  if (format == "csv") {
    std::cout << "row,predicted," << absl::StrJoin(names, ",") << "\n";
  } else if (format == "table") {
    std::cout << absl::StrFormat("%-6s %-9s", "row", "predicted");
    for (const auto& name : names) std::cout << absl::StrFormat(" %-14s", name);
    std::cout << "\n";
  } else {
    std::cout << "{\"output\":\"" << HeadName(head) << "\",\"rows\":[";
  }
  for (size_t r = 0; r < rows; ++r) {
    absl::Span<const float> row(scores.data() + r * width, width);
    const int predicted = PredictedClass(head, row);
    std::vector<std::string> values;
    for (float v : row) values.push_back(FormatFloat(v));
    if (format == "csv") {
      std::cout << r << "," << predicted << "," << absl::StrJoin(values, ",")
                << "\n";
    } else if (format == "table") {
      std::cout << absl::StrFormat("%-6d %-9d", r, predicted);
      for (const auto& v : values) std::cout << absl::StrFormat(" %-14s", v);
      std::cout << "\n";
    } else {
      std::cout << (r ? "," : "") << "{\"row\":" << r
                << ",\"predicted\":" << predicted << ",\"scores\":["
                << absl::StrJoin(values, ",") << "]}";
    }
  }
  if (format == "json") std::cout << "]}\n";
}

int Run(const Sequential& model) {
  const std::string output = absl::GetFlag(FLAGS_output);
  const std::string format = absl::GetFlag(FLAGS_format);
  Head head = model.default_head();
  if (output != "default") {
    auto parsed = ParseHeadName(output);
    if (!parsed) return Fail(absl::StrCat("unknown --output '", output, "'"));
    head = *parsed;
  }
  if (format != "table" && format != "csv" && format != "json") {
    return Fail(absl::StrCat("unknown --format '", format, "'"));
  }
  std::string text;
  if (const std::string input = absl::GetFlag(FLAGS_input); !input.empty()) {
    auto contents = ReadFileToString(input);
    if (!contents.ok()) return Fail(contents.status().message());
    text = std::move(*contents);
  } else {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  }
  auto rows = ParseFeatureRows(text, model.input_width());
  if (!rows.ok()) return Fail(rows.status().message());
  auto scores = model.Predict(rows->values, rows->rows, head);
  if (!scores.ok()) return Fail(scores.status().message());
  PrintRows(*scores, rows->rows, model.output_width(), head, format);
  return 0;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 3 || (std::string(args[1]) != "inspect" &&
                           std::string(args[1]) != "run")) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string path = args[2];
  UseSingleThreadedBlas();
  auto model = LoadModelFile(path);
  if (!model.ok()) return Fail(model.status().ToString());
  if (std::string(args[1]) == "inspect") return Inspect(**model, path);
  return Run(**model);
}

}  // namespace
}  // namespace seqserve

int main(int argc, char** argv) { return seqserve::Main(argc, argv); }
