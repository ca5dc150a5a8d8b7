// The cost of an explanation against a Classify, in core alone, one thread.
//
// For each model and batch size:
//   classify/<model>/<rows>           Predict() under the model's default head
//                                     and each row's predicted class: what
//                                     Classify asks of core
//   explain/<model>/<method>/<rows>   Attribute() of each row's predicted
//                                     class under the same head, against the
//                                     all-zero baseline, with the default
//                                     options (integrated gradients:
//                                     Gauss-Legendre, 50 steps)
// for the methods saliency, input_x_gradient, integrated_gradients and
// shapley; and quadrature/gausslegendre/50, the points and weights of the
// default rule, which integrated gradients computes on every call. Shapley
// on a model of more than kMaxShapleyFeatures features is what Attribute()
// refuses: that benchmark ends with Attribute()'s error (error_occurred and
// error_message in --benchmark_format=json).
//
// Models: SEQSERVE_BENCH_FILES="name=path;name=path..." (ONNX files, as
// bench/compare_engines.py writes them; how bench/explain_bench.py runs the
// very models it gives Captum), else the four benchmark models of
// BENCHMARKS.md (3-16-3, 784-1024-1024-10, 256-4096-2, ten Linear(64, 64))
// as Linear + ReLU chains with torch's default initialisation from a fixed
// seed. Rows: the comma-separated SEQSERVE_BENCH_ROWS, else 1, 32 and 256.
// The features are uniform in [0, 1) from a fixed seed, the same in every
// benchmark of a model and batch size.
//
// Each benchmark makes one untimed call on one row first (code, packed
// weights and the thread's scratch warm; a call of 256 rows of integrated
// gradients on 784-1024-1024-10 takes seconds, so not a full one).
//
// `explain_bench --attributions NAME METHOD ROWS` (models as above) prints
// instead one JSON object: the features, the targets and the attributions
// of that call, for bench/explain_bench.py to check against Captum.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/attribution.h"
#include "core/head.h"
#include "core/onnx_loader.h"
#include "core/sequential.h"

namespace seqserve {
namespace {

constexpr AttributionMethod kMethods[] = {
    AttributionMethod::kSaliency, AttributionMethod::kInputXGradient,
    AttributionMethod::kIntegratedGradients, AttributionMethod::kShapley};

struct NamedModel {
  std::string name;
  std::unique_ptr<Sequential> model;
};

// Linear layers of `widths` with ReLU between them and no head, weights and
// biases uniform within 1/sqrt(in) as torch's nn.Linear draws them.
std::unique_ptr<Sequential> RandomChain(const std::vector<int>& widths) {
  std::mt19937 rng(7);
  std::vector<Layer> layers;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    if (i > 0) layers.push_back(Layer::Relu());
    const float bound = 1.0f / std::sqrt(static_cast<float>(widths[i]));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    std::vector<float> weight(static_cast<size_t>(widths[i]) * widths[i + 1]);
    std::vector<float> bias(widths[i + 1]);
    for (float& v : weight) v = uniform(rng);
    for (float& v : bias) v = uniform(rng);
    layers.push_back(
        Layer::Linear(widths[i], widths[i + 1], std::move(weight), std::move(bias)));
  }
  return std::move(*Sequential::Create(widths[0], std::move(layers), Head::kLogits));
}

std::vector<NamedModel> LoadModels() {
  std::vector<NamedModel> models;
  const char* files = std::getenv("SEQSERVE_BENCH_FILES");
  if (files == nullptr || *files == '\0') {
    const std::pair<const char*, std::vector<int>> chains[] = {
        {"3-16-3", {3, 16, 3}},
        {"784-1024-1024-10", {784, 1024, 1024, 10}},
        {"256-4096-2", {256, 4096, 2}},
        {"64x10", std::vector<int>(11, 64)},
    };
    for (const auto& [name, widths] : chains) models.push_back({name, RandomChain(widths)});
    return models;
  }
  for (absl::string_view entry : absl::StrSplit(files, ';', absl::SkipEmpty())) {
    const std::pair<std::string, std::string> name_path = absl::StrSplit(entry, '=');
    auto model = LoadOnnxModel(name_path.second);
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
      std::exit(1);
    }
    models.push_back({name_path.first, std::move(*model)});
  }
  return models;
}

std::vector<float> Features(const Sequential& model, size_t rows) {
  std::vector<float> features(rows * model.input_width());
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  for (float& v : features) v = uniform(rng);
  return features;
}

AttributionOptions OptionsFor(const Sequential& model, AttributionMethod method) {
  AttributionOptions options;
  options.method = method;
  options.head = model.default_head();
  return options;
}

// What Classify asks of core: the head's scores and each row's class.
void Classify(const Sequential& model, const std::vector<float>& features, size_t rows,
              std::vector<float>& scores, std::vector<int>& classes) {
  const size_t width = model.output_width();
  if (!model.Predict(features, rows, model.default_head(),
                     absl::MakeSpan(scores.data(), rows * width))
           .ok()) {
    std::fprintf(stderr, "Predict failed\n");
    std::exit(1);
  }
  for (size_t r = 0; r < rows; ++r) {
    classes[r] = PredictedClass(model.default_head(),
                                absl::MakeConstSpan(scores.data() + r * width, width));
  }
}

void BM_Classify(benchmark::State& state, const Sequential* model) {
  const size_t rows = state.range(0);
  const std::vector<float> features = Features(*model, rows);
  std::vector<float> scores(rows * model->output_width());
  std::vector<int> classes(rows);
  Classify(*model, Features(*model, 1), 1, scores, classes);  // warm-up, one row
  for (auto _ : state) {
    Classify(*model, features, rows, scores, classes);
    benchmark::DoNotOptimize(classes.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * rows);
}

void BM_Explain(benchmark::State& state, const Sequential* model, AttributionMethod method) {
  const size_t rows = state.range(0);
  const std::vector<float> features = Features(*model, rows);
  const AttributionOptions options = OptionsFor(*model, method);
  if (absl::Status status = CheckAttributionOptions(*model, options); !status.ok()) {
    state.SkipWithError(std::string(status.message()).c_str());
    return;
  }
  if (!Attribute(*model, Features(*model, 1), 1, {}, options).ok()) {  // warm-up, one row
    state.SkipWithError("Attribute failed");
    return;
  }
  for (auto _ : state) {
    auto attributions = Attribute(*model, features, rows, {}, options);
    if (!attributions.ok()) {
      state.SkipWithError(std::string(attributions.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(attributions->values.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * rows);
}

// The Gauss-Legendre points and weights integrated gradients computes on
// each call: the part of its cost that does not grow with rows.
void BM_Quadrature(benchmark::State& state) {
  for (auto _ : state) {
    QuadraturePoints points =
        Quadrature(IntegrationRule::kGaussLegendre, kDefaultIntegrationSteps);
    benchmark::DoNotOptimize(points.alphas.data());
    benchmark::ClobberMemory();
  }
}

std::vector<int> ParseRows(const char* text) {
  std::vector<int> rows;
  for (absl::string_view count : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int value = 0;
    if (!absl::SimpleAtoi(count, &value) || value < 1) {
      std::fprintf(stderr, "not a row count: %s\n", std::string(count).c_str());
      std::exit(1);
    }
    rows.push_back(value);
  }
  return rows;
}

// --attributions NAME METHOD ROWS: one call's inputs and answer as JSON.
int PrintAttributions(const std::vector<NamedModel>& models, const char* name,
                      const char* method_name, const char* rows_text) {
  const NamedModel* named = nullptr;
  for (const NamedModel& m : models) {
    if (m.name == name) named = &m;
  }
  const auto method = ParseAttributionMethod(method_name);
  const std::vector<int> rows_list = ParseRows(rows_text);
  if (named == nullptr || !method || rows_list.size() != 1) {
    std::fprintf(stderr, "usage: explain_bench --attributions NAME METHOD ROWS\n");
    return 2;
  }
  const Sequential& model = *named->model;
  const size_t rows = rows_list[0];
  const std::vector<float> features = Features(model, rows);
  auto attributions = Attribute(model, features, rows, {}, OptionsFor(model, *method));
  if (!attributions.ok()) {
    std::string message(attributions.status().message());
    for (char& c : message) {
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    std::printf("{\"error\": \"%s\"}\n", message.c_str());
    return 0;
  }
  std::printf("{\"rows\": %zu, \"width\": %d, \"head\": \"%s\", \"features\": [", rows,
              model.input_width(), std::string(HeadName(model.default_head())).c_str());
  for (size_t i = 0; i < features.size(); ++i) {
    std::printf("%s%.9g", i ? ", " : "", features[i]);
  }
  std::printf("], \"targets\": [");
  for (size_t r = 0; r < rows; ++r) std::printf("%s%d", r ? ", " : "", attributions->targets[r]);
  std::printf("], \"values\": [");
  for (size_t i = 0; i < attributions->values.size(); ++i) {
    std::printf("%s%.17g", i ? ", " : "", attributions->values[i]);
  }
  std::printf("]}\n");
  return 0;
}

}  // namespace
}  // namespace seqserve

int main(int argc, char** argv) {
  static std::vector<seqserve::NamedModel> models = seqserve::LoadModels();
  if (argc >= 2 && std::strcmp(argv[1], "--attributions") == 0) {
    if (argc != 5) {
      std::fprintf(stderr, "usage: explain_bench --attributions NAME METHOD ROWS\n");
      return 2;
    }
    return seqserve::PrintAttributions(models, argv[2], argv[3], argv[4]);
  }
  const char* rows_text = std::getenv("SEQSERVE_BENCH_ROWS");
  const std::vector<int> rows =
      seqserve::ParseRows(rows_text != nullptr && *rows_text ? rows_text : "1,32,256");
  for (const seqserve::NamedModel& named : models) {
    auto* classify = benchmark::RegisterBenchmark(("classify/" + named.name).c_str(),
                                                  seqserve::BM_Classify, named.model.get());
    for (int count : rows) classify->Arg(count);
    for (seqserve::AttributionMethod method : seqserve::kMethods) {
      auto* explain = benchmark::RegisterBenchmark(
          ("explain/" + named.name + "/" +
           std::string(seqserve::AttributionMethodName(method)))
              .c_str(),
          seqserve::BM_Explain, named.model.get(), method);
      for (int count : rows) explain->Arg(count);
    }
  }
  benchmark::RegisterBenchmark("quadrature/gausslegendre/50", seqserve::BM_Quadrature);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
