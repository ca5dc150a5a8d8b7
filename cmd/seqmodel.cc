// seqmodel: inspect and run a model file before deploying it, with no
// server. `run` checks and answers the rows as the server would (the same
// checks, heads, labels and output formats as seqclient classify).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cmd/classification_format.h"
#include "cmd/explanation_format.h"
#include "core/attribution.h"
#include "client/seqserve_client.h"
#include "core/feature_input.h"
#include "core/model_file.h"
#include "serving/classify.h"
#include "serving/explain.h"
#include "serving/model_config.h"
#include "serving/model_inputs.h"
#include "serving/preprocessing.h"
#include "serving/served_model.h"
#include "cmd/flag_help.h"
#include "cmd/row_input.h"

ABSL_FLAG(std::string, output, "default",
          "run, explain: default (the model's config, else its own head), logits, sigmoid, softmax "
          "or log_softmax (or the API's names, OUTPUT_MODE_SOFTMAX, ...)");
ABSL_FLAG(std::string, format, "table", "run, explain: table, csv or json");
ABSL_FLAG(std::string, input, "",
          "run, explain: file of feature rows: CSV, CSV with a header row, or JSON Lines; '-' or "
          "empty: stdin; rows may also be given as arguments");
ABSL_FLAG(uint32_t, top_k, 0, "run: also list the k best classes per row");
ABSL_FLAG(float, threshold, 0, "run, explain: sigmoid threshold (0: the config's, else 0.5)");
ABSL_FLAG(std::string, method, "integrated_gradients",
          "explain: saliency, input_x_gradient, integrated_gradients or shapley");
ABSL_FLAG(std::string, target_class, "",
          "explain: the class explained, by index or label (empty: each row's predicted "
          "class)");
ABSL_FLAG(std::string, baseline, "",
          "explain: the row attributions are measured from, comma-separated (empty: the "
          "config's explanation_baseline, else zeros)");
ABSL_FLAG(uint32_t, steps, 0, "explain: integrated gradients' points (0: 50)");
ABSL_FLAG(std::string, rule, "",
          "explain: gausslegendre (default), riemann_left, riemann_right, riemann_middle or "
          "riemann_trapezoid");
ABSL_FLAG(std::string, config, "",
          "inspect, run, explain: the model's config.textproto (labels, feature names, "
          "preprocessing, default output); "
          "default: REPO/<model>/config.textproto when FILE is REPO/<model>/<version>/...");

ABSL_FLAG(std::string, precision, "",
          "inspect, run, explain: fp32 or int8 instead of the config's precision; "
          "compare: the precision compared with fp32 (default int8)");

namespace seqserve {
namespace {

constexpr char kUsage[] =
    "Inspects or runs a seqserve model file (.onnx or .textproto) with no server.\n"
    "  seqmodel inspect FILE [--config config.textproto]\n"
    "  seqmodel run FILE [ROW ...] [--output MODE] [--format table|csv|json]\n"
    "                    [--input ROWS] [--top_k K] [--threshold P]\n"
    "                    [--config config.textproto]\n"
    "  seqmodel explain FILE [ROW ...] [--method integrated_gradients|shapley|...]\n"
    "                    [--target_class CLASS] [--baseline 0,0,0] [--steps N]\n"
    "  seqmodel compare FILE [ROW ...] [--precision int8] [--input ROWS]\n"
    "Run, explain and inspect take --precision fp32|int8 over the config's.\n"
    "Compare runs the rows in float32 and in --precision and prints how often\n"
    "the predicted class agrees and the largest probability difference.\n"
    "Rows come as arguments (seqmodel run FILE 4,0,1 2,1,0), from --input or\n"
    "stdin: CSV (a header row is matched to the config's feature_names), or\n"
    "JSON Lines. In a repository\n"
    "(models/species/1/model.onnx) the model's name, version and config are\n"
    "taken from the path, so the output is what seqclient classify prints.";

int Fail(absl::string_view message) {
  std::cerr << "seqmodel: " << message << "\n";
  return 1;
}

// Where a model file sits in a repository: REPO/<name>/<version>/FILE.
struct ModelPlace {
  std::string name;
  int64_t version = 0;
  std::string config_path;  // empty: none found
};

ModelPlace PlaceOf(const std::string& path) {
  const std::filesystem::path file = std::filesystem::absolute(path).lexically_normal();
  const std::filesystem::path version_dir = file.parent_path();
  ModelPlace place;
  if (absl::SimpleAtoi(version_dir.filename().string(), &place.version) &&
      place.version > 0) {
    place.name = version_dir.parent_path().filename().string();
    const std::filesystem::path config = version_dir.parent_path() / "config.textproto";
    std::error_code error;
    if (std::filesystem::is_regular_file(config, error)) place.config_path = config.string();
  } else {
    place.version = 0;
    place.name = file.stem().string();
  }
  return place;
}

// --precision: nullopt when not given.
absl::StatusOr<std::optional<Precision>> PrecisionFlag() {
  const std::string name = absl::GetFlag(FLAGS_precision);
  if (name.empty()) return std::optional<Precision>();
  std::optional<Precision> precision = ParsePrecision(name);
  if (!precision) {
    return absl::InvalidArgumentError(
        absl::StrCat("--precision ", name, " is not a precision: fp32 or int8"));
  }
  return precision;
}

// The model, and with a config (found beside a repository's model or given
// with --config) the features a call sends and how each is prepared.
int Inspect(const Sequential& model, const std::string& path) {
  Precision precision = model.stored_precision();
  ModelPlace place = PlaceOf(path);
  if (!absl::GetFlag(FLAGS_config).empty()) place.config_path = absl::GetFlag(FLAGS_config);
  v1::ModelConfig config;
  if (!place.config_path.empty()) {
    auto loaded = LoadModelConfig(place.config_path);
    if (!loaded.ok()) return Fail(loaded.status().ToString());
    config = std::move(*loaded);
    const std::optional<Precision> configured = ConfigPrecision(config.precision(), model.stored_precision());
    if (!configured) {
      return Fail(absl::StrCat(place.config_path, ": precision ", config.precision(),
                               " is not a precision"));
    }
    precision = *configured;
    auto preprocessing = Preprocessing::Create(config, model.input_width());
    if (!preprocessing.ok()) {
      return Fail(absl::StrCat(place.config_path, ": ", preprocessing.status().ToString()));
    }
  }
  if (auto chosen = PrecisionFlag(); !chosen.ok()) {
    return Fail(chosen.status().message());
  } else if (*chosen) {
    precision = **chosen;
  }
  std::cout << "model:        " << path << "\n";
  if (!place.config_path.empty()) {
    std::cout << "config:       "
              << std::filesystem::path(place.config_path)
                     .lexically_proximate(std::filesystem::current_path())
                     .string()
              << "\n";
  }
  if (config.preprocessing().empty() && !config.feature_names().empty()) {
    std::cout << "features:     " << absl::StrJoin(config.feature_names(), ", ") << "\n";
  } else if (!config.feature_names().empty()) {
    std::cout << "features:\n";
    for (const std::string& name : config.feature_names()) {
      auto transform = std::find_if(config.preprocessing().begin(), config.preprocessing().end(),
                                    [&](const v1::FeatureTransform& t) { return t.feature() == name; });
      std::cout << "  " << name << ": "
                << (transform == config.preprocessing().end() ? "as sent"
                                                              : DescribeTransform(*transform))
                << "\n";
    }
  }
  std::cout << "input width:  " << model.input_width() << "\n"
            << "output width: " << model.output_width() << "\n"
            << "default head: " << HeadName(model.default_head()) << "\n"
            << "precision:    " << PrecisionName(precision) << "\n"
            << "parameters:   " << model.ParameterCount() << "\n"
            << "layers:\n";
  for (size_t i = 0; i < model.layers().size(); ++i) {
    std::cout << "  (" << i << ") " << model.layers()[i].Describe() << "\n";
  }
  return 0;
}

// A model file as the server would serve it, and the rows to give it.
struct Loaded {
  std::shared_ptr<const ServedModel> served;
  v1::ModelConfig config;
  FeatureRows rows;
};

// The error's message is what to print: a model or config that does not
// load with its status code, rows that do not parse as they are.
// `precision`, when given, is served instead of the config's.
absl::StatusOr<Loaded> LoadWithRows(std::shared_ptr<const Sequential> model,
                                    const std::string& path,
                                    const std::vector<std::string>& row_args,
                                    std::optional<Precision> precision) {
  ModelPlace place = PlaceOf(path);
  if (!absl::GetFlag(FLAGS_config).empty()) place.config_path = absl::GetFlag(FLAGS_config);
  Loaded loaded;
  if (!place.config_path.empty()) {
    auto config = LoadModelConfig(place.config_path);
    if (!config.ok()) return absl::Status(config.status().code(), config.status().ToString());
    loaded.config = std::move(*config);
  }
  if (precision) loaded.config.set_precision(ApiPrecision(*precision));
  auto served = MakeServedModel(place.name, place.version, std::move(model), loaded.config);
  if (!served.ok()) {
    return absl::Status(served.status().code(),
                        place.config_path.empty()
                            ? served.status().ToString()
                            : absl::StrCat(place.config_path, ": ", served.status().ToString()));
  }
  loaded.served = std::move(*served);
  auto text = ReadRowText(row_args, absl::GetFlag(FLAGS_input));
  if (!text.ok()) return text.status();
  FeatureInputOptions input;
  input.feature_names.assign(loaded.config.feature_names().begin(),
                             loaded.config.feature_names().end());
  input.width = loaded.served->request_width();
  input.line_word = text->line_word;
  auto rows = ParseFeatureInput(text->text, input);
  if (!rows.ok()) return rows.status();
  loaded.rows = std::move(*rows);
  return loaded;
}

// The rows answered by `served` as the server answers a Classify call.
absl::StatusOr<v1::ClassifyResponse> Answer(const ServedModel& served, const FeatureRows& rows,
                                            v1::OutputMode output) {
  v1::ClassifyRequest request;
  request.set_model(served.name);
  request.mutable_features()->Add(rows.values.begin(), rows.values.end());
  for (const std::string& category : rows.categories) request.add_categories(category);
  request.set_rows(static_cast<uint32_t>(rows.rows));
  request.set_output(output);
  request.set_top_k(absl::GetFlag(FLAGS_top_k));
  request.set_threshold(absl::GetFlag(FLAGS_threshold));
  auto plan = PlanClassify(request, served, RequestLimits{});
  if (!plan.ok()) return plan.status();
  ModelInputs inputs;
  if (absl::Status prepared = PrepareModelInputs(request, plan->rows, served, &inputs);
      !prepared.ok()) {
    return prepared;
  }
  auto logits = served.model->Predict(inputs.values, rows.rows, Head::kLogits);
  if (!logits.ok()) return logits.status();
  v1::ClassifyResponse response;
  if (absl::Status built = BuildClassifyResponse(served, *plan, absl::MakeSpan(*logits),
                                                 &response);
      !built.ok()) {
    return built;
  }
  return response;
}

int Run(std::shared_ptr<const Sequential> model, const std::string& path,
        const std::vector<std::string>& row_args) {
  auto format = ParseOutputFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) return Fail(format.status().message());
  auto output = ParseOutputModeShortName(absl::GetFlag(FLAGS_output));
  if (!output.ok()) return Fail(output.status().message());
  auto precision = PrecisionFlag();
  if (!precision.ok()) return Fail(precision.status().message());
  auto loaded = LoadWithRows(std::move(model), path, row_args, *precision);
  if (!loaded.ok()) return Fail(loaded.status().message());
  auto response = Answer(*loaded->served, loaded->rows, *output);
  if (!response.ok()) return Fail(response.status().ToString());
  const std::vector<std::string> labels(loaded->config.labels().begin(),
                                        loaded->config.labels().end());
  auto printed = FormatClassification(Client::ToClassification(*response), labels, *format);
  if (!printed.ok()) return Fail(std::string(printed.status().message()));
  std::cout << *printed;
  return 0;
}

// The rows in float32 and in --precision (int8 by default): how often the
// predicted class agrees, and the largest difference of a probability
// (sigmoid for a one-output model, else softmax).
int Compare(std::shared_ptr<const Sequential> model, const std::string& path,
            const std::vector<std::string>& row_args) {
  auto flag = PrecisionFlag();
  if (!flag.ok()) return Fail(flag.status().message());
  const Precision precision = flag->value_or(Precision::kInt8);
  if (precision == Precision::kFp32) return Fail("compare: --precision fp32 is the reference");
  auto loaded = LoadWithRows(std::move(model), path, row_args, Precision::kFp32);
  if (!loaded.ok()) return Fail(loaded.status().message());
  const ServedModel& reference = *loaded->served;
  v1::ModelConfig config = reference.config;
  config.set_precision(ApiPrecision(precision));
  auto reduced = MakeServedModel(reference.name, reference.version, reference.model, config);
  if (!reduced.ok()) return Fail(reduced.status().ToString());
  const v1::OutputMode output = reference.model->output_width() == 1 ? v1::OUTPUT_MODE_SIGMOID
                                                                     : v1::OUTPUT_MODE_SOFTMAX;
  auto expected = Answer(reference, loaded->rows, output);
  if (!expected.ok()) return Fail(expected.status().ToString());
  auto actual = Answer(**reduced, loaded->rows, output);
  if (!actual.ok()) return Fail(actual.status().ToString());
  size_t agree = 0;
  float largest = 0;
  int largest_row = -1;
  for (int r = 0; r < expected->results_size(); ++r) {
    const v1::RowResult& a = expected->results(r);
    const v1::RowResult& b = actual->results(r);
    agree += a.predicted_index() == b.predicted_index();
    for (int i = 0; i < a.scores_size() && i < b.scores_size(); ++i) {
      const float difference = std::fabs(a.scores(i) - b.scores(i));
      // A NaN on one side only (a row beyond float32 in int8) is the
      // largest difference there is, and stays so.
      if (std::isnan(largest)) break;
      if (largest_row < 0 || difference > largest || std::isnan(difference)) {
        largest = difference;
        largest_row = r;
      }
    }
  }
  const size_t rows = static_cast<size_t>(expected->results_size());
  std::cout << "precision:        " << PrecisionName(precision) << " against fp32\n"
            << "rows:             " << rows << "\n"
            << "top-1 agreement:  " << agree << " of " << rows << " ("
            << absl::StrFormat("%.2f", rows == 0 ? 100.0 : 100.0 * agree / rows) << "%)\n"
            << "largest " << (output == v1::OUTPUT_MODE_SIGMOID ? "sigmoid" : "softmax")
            << " difference: " << absl::StrFormat("%.6g", largest);
  if (largest_row >= 0) std::cout << " (row " << largest_row << ")";
  std::cout << "\n";
  return 0;
}

// The server's Explain on a model file: the same checks (with no limits),
// attributions and answer.
int Explain(std::shared_ptr<const Sequential> model, const std::string& path,
            const std::vector<std::string>& row_args) {
  auto format = ParseOutputFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) return Fail(format.status().message());
  v1::ExplainRequest request;
  auto output = ParseOutputModeShortName(absl::GetFlag(FLAGS_output));
  if (!output.ok()) return Fail(output.status().message());
  request.set_output(*output);
  request.set_threshold(absl::GetFlag(FLAGS_threshold));
  ExplainFlags flags;
  flags.method = absl::GetFlag(FLAGS_method);
  flags.rule = absl::GetFlag(FLAGS_rule);
  flags.target_class = absl::GetFlag(FLAGS_target_class);
  flags.baseline = absl::GetFlag(FLAGS_baseline);
  flags.steps = absl::GetFlag(FLAGS_steps);
  if (absl::Status filled = FillExplainRequest(flags, &request); !filled.ok()) {
    return Fail(filled.message());
  }
  auto precision = PrecisionFlag();
  if (!precision.ok()) return Fail(precision.status().message());
  auto loaded = LoadWithRows(std::move(model), path, row_args, *precision);
  if (!loaded.ok()) return Fail(loaded.status().message());
  const ServedModel& served = *loaded->served;
  request.set_model(served.name);
  request.mutable_features()->Add(loaded->rows.values.begin(), loaded->rows.values.end());
  request.set_rows(static_cast<uint32_t>(loaded->rows.rows));
  auto plan = PlanExplain(request, served, RequestLimits{});
  if (!plan.ok()) return Fail(plan.status().ToString());
  std::vector<int> targets;
  if (plan->target) targets.assign(plan->rows, *plan->target);
  auto attributions = Attribute(*served.model, loaded->rows.values, plan->rows, targets,
                                plan->options, plan->threshold);
  if (!attributions.ok()) return Fail(attributions.status().ToString());
  v1::ExplainResponse response;
  if (absl::Status built = BuildExplainResponse(served, *plan, *attributions, &response);
      !built.ok()) {
    return Fail(built.ToString());
  }
  auto printed = FormatExplanation(response, *format);
  if (!printed.ok()) return Fail(std::string(printed.status().message()));
  std::cout << *printed;
  return 0;
}

int Main(int argc, char** argv) {
  if (HelpRequested(argc, argv)) {
    std::cout << GroupedFlagHelp(
        kUsage, {{"inspect", {"config", "precision"}},
                 {"run", {"output", "format", "input", "top_k", "threshold", "config",
                          "precision"}},
                 {"explain", {"method", "target_class", "output", "baseline", "steps", "rule",
                              "threshold", "format", "input", "config", "precision"}},
                 {"compare", {"precision", "input", "threshold", "config"}}},
        "cmd/seqmodel.cc");
    return 0;
  }
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> joined = JoinDashValue(argc, argv, "input");
  std::vector<char*> args =
      absl::ParseCommandLine(static_cast<int>(joined.size()), joined.data());
  // inspect FILE, or run, explain or compare FILE with any rows after it.
  const std::string command = args.size() >= 2 ? args[1] : "";
  const bool inspect = command == "inspect";
  if (args.size() < 3 || (inspect && args.size() != 3) ||
      (!inspect && command != "run" && command != "explain" && command != "compare")) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string path = args[2];
  auto model = LoadModelFile(path);
  if (!model.ok()) return Fail(model.status().ToString());
  if (inspect) {
    if (absl::GetFlag(FLAGS_format) != "table") {
      return Fail("inspect prints text only; --format is for run and explain");
    }
    return Inspect(**model, path);
  }
  const std::vector<std::string> rows(args.begin() + 3, args.end());
  if (command == "explain") return Explain(std::move(*model), path, rows);
  if (command == "compare") return Compare(std::move(*model), path, rows);
  return Run(std::move(*model), path, rows);
}

}  // namespace
}  // namespace seqserve

int main(int argc, char** argv) { return seqserve::Main(argc, argv); }
