// Forward-pass benchmark of core/ on one thread.
//
// Models come from ONNX files named by SEQSERVE_BENCH_SMALL (3-16-3) and
// SEQSERVE_BENCH_LARGE (784-1024-1024-10), as bench/compare_pytorch.py exports
// them, so both sides run the very same weights. Without those variables the
// same shapes are built with random weights.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>

#include "core/onnx_loader.h"
#include "core/sequential.h"

namespace seqserve {
namespace {

std::unique_ptr<Sequential> RandomModel(const std::vector<int>& widths) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(-0.1f, 0.1f);
  std::vector<Layer> layers;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    if (i > 0) layers.push_back(Layer::Relu());
    std::vector<float> weight(static_cast<size_t>(widths[i]) * widths[i + 1]);
    std::vector<float> bias(widths[i + 1]);
    for (float& v : weight) v = uniform(rng);
    for (float& v : bias) v = uniform(rng);
    layers.push_back(
        Layer::Linear(widths[i], widths[i + 1], std::move(weight), std::move(bias)));
  }
  return std::move(*Sequential::Create(widths[0], std::move(layers), Head::kSoftmax));
}

std::unique_ptr<Sequential> ModelFrom(const char* variable,
                                      const std::vector<int>& widths) {
  const char* path = std::getenv(variable);
  if (path == nullptr || *path == '\0') return RandomModel(widths);
  auto model = LoadOnnxModel(path);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*model);
}

void BM_Forward(benchmark::State& state, const Sequential* model) {
  const size_t rows = state.range(0);
  std::vector<float> features(rows * model->input_width());
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  for (float& v : features) v = uniform(rng);
  std::vector<float> logits(rows * model->output_width());
  for (auto _ : state) {
    benchmark::DoNotOptimize(model->Forward(features, rows, absl::MakeSpan(logits)));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * rows);
}

}  // namespace
}  // namespace seqserve

int main(int argc, char** argv) {
  using seqserve::ModelFrom;
  seqserve::UseSingleThreadedBlas();
  static auto small = ModelFrom("SEQSERVE_BENCH_SMALL", {3, 16, 3});
  static auto large = ModelFrom("SEQSERVE_BENCH_LARGE", {784, 1024, 1024, 10});
  benchmark::RegisterBenchmark("forward/3-16-3", seqserve::BM_Forward, small.get())
      ->Arg(1)->Arg(32)->Arg(256);
  benchmark::RegisterBenchmark("forward/784-1024-1024-10", seqserve::BM_Forward,
                               large.get())
      ->Arg(1)->Arg(32)->Arg(256);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
