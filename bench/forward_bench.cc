// Forward-pass and load benchmarks of core/ on one thread.
//
// Models come from ONNX files named by SEQSERVE_BENCH_SMALL (3-16-3) and
// SEQSERVE_BENCH_LARGE (784-1024-1024-10). Without those variables the same
// shapes are built with random weights.
//
// SEQSERVE_BENCH_FILES="name=path;name=path..." replaces all of this with
// forward/<name> at batch 1, 8, 32 and 256 (or the comma-separated
// SEQSERVE_BENCH_ROWS) for each file: how bench/compare_engines.py and
// bench/batching_bench.py run the very ONNX files the other sides run.
//
// Also: the large model with a BatchNorm1d after each hidden Linear (folded
// at load, so it should cost nothing per row), and loading the large model
// from a graph + model.onnx.data pair as today's exporter writes it.
//
// kernels/<model>/<side>/<rows>: the four benchmark models' Linear + ReLU
// chains (BENCHMARKS.md, "Forward pass") run layer by layer on core's
// batch-invariant LinearKernel ("invariant") and on the oneDNN kernels core
// had before (bench/onednn_linear_kernel.h, "onednn"), through the same
// loop, so that one run times both; bench/invariant_bench.py pairs them.
#include <benchmark/benchmark.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/onednn_linear_kernel.h"
#include "core/linear_kernel.h"
#include "core/onnx_loader.h"
#include "core/sequential.h"

namespace seqserve {
namespace {

// Linear layers of `widths` with ReLU between them; with `batch_norm`, a
// BatchNorm1d after each hidden Linear, as nn.Sequential(Linear,
// BatchNorm1d, ReLU, ...).
std::unique_ptr<Sequential> RandomModel(const std::vector<int>& widths,
                                        bool batch_norm = false) {
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
    if (batch_norm && i + 2 < widths.size()) {
      const size_t n = widths[i + 1];
      std::vector<float> gamma(n), beta(n), mean(n), var(n);
      for (size_t c = 0; c < n; ++c) {
        gamma[c] = 1.0f + uniform(rng);
        beta[c] = uniform(rng);
        mean[c] = uniform(rng);
        var[c] = 1.0f + uniform(rng);
      }
      layers.push_back(Layer::BatchNorm1d(gamma, beta, mean, var, 1e-5f));
    }
  }
  return std::move(*Sequential::Create(widths[0], std::move(layers), Head::kSoftmax));
}

// Writes the model of `widths` as today's exporter does: Gemm(transB=1)
// nodes in model.onnx, every weight in model.onnx.data. Returns the graph's
// path.
std::string WriteGraphAndData(const std::vector<int>& widths, const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream data(dir + "/model.onnx.data", std::ios::binary | std::ios::trunc);
  onnx::ModelProto model;
  model.set_ir_version(10);
  model.add_opset_import()->set_version(20);
  onnx::GraphProto& graph = *model.mutable_graph();
  auto declare = [](onnx::ValueInfoProto* value, const std::string& name, int width) {
    value->set_name(name);
    auto* type = value->mutable_type()->mutable_tensor_type();
    type->set_elem_type(onnx::TensorProto::FLOAT);
    type->mutable_shape()->add_dim()->set_dim_param("batch");
    type->mutable_shape()->add_dim()->set_dim_value(width);
  };
  declare(graph.add_input(), "input", widths[0]);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(-0.1f, 0.1f);
  uint64_t offset = 0;
  auto add_weight = [&](const std::string& name, std::vector<int64_t> dims) {
    size_t count = 1;
    for (int64_t d : dims) count *= d;
    std::vector<float> values(count);
    for (float& v : values) v = uniform(rng);
    data.write(reinterpret_cast<const char*>(values.data()), count * sizeof(float));
    onnx::TensorProto& tensor = *graph.add_initializer();
    tensor.set_name(name);
    tensor.set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) tensor.add_dims(d);
    tensor.set_data_location(onnx::TensorProto::EXTERNAL);
    for (auto [key, value] :
         {std::pair<std::string, std::string>{"location", "model.onnx.data"},
          {"offset", std::to_string(offset)},
          {"length", std::to_string(count * sizeof(float))}}) {
      auto* entry = tensor.add_external_data();
      entry->set_key(key);
      entry->set_value(value);
    }
    offset += count * sizeof(float);
  };
  std::string current = "input";
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    const std::string w = "w" + std::to_string(i), b = "b" + std::to_string(i);
    add_weight(w, {widths[i + 1], widths[i]});
    add_weight(b, {widths[i + 1]});
    onnx::NodeProto& gemm = *graph.add_node();
    gemm.set_op_type("Gemm");
    gemm.add_input(current);
    gemm.add_input(w);
    gemm.add_input(b);
    current = "gemm" + std::to_string(i);
    gemm.add_output(current);
    auto* trans_b = gemm.add_attribute();
    trans_b->set_name("transB");
    trans_b->set_type(onnx::AttributeProto::INT);
    trans_b->set_i(1);
    if (i + 2 < widths.size()) {
      onnx::NodeProto& relu = *graph.add_node();
      relu.set_op_type("Relu");
      relu.add_input(current);
      current = "relu" + std::to_string(i);
      relu.add_output(current);
    }
  }
  declare(graph.add_output(), current, widths.back());
  const std::string path = dir + "/model.onnx";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << model.SerializeAsString();
  return path;
}

void BM_LoadGraphAndData(benchmark::State& state, const std::string* path) {
  for (auto _ : state) {
    auto model = LoadOnnxModel(*path);
    if (!model.ok()) {
      state.SkipWithError(model.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(model->get());
  }
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

// Registers forward/<name> for each "name=path" of `files`, at each batch
// size of `rows`.
void RegisterFiles(const std::string& files, const std::string& rows) {
  static std::vector<std::unique_ptr<Sequential>> models;
  for (absl::string_view entry : absl::StrSplit(files, ';', absl::SkipEmpty())) {
    const std::pair<std::string, std::string> name_path = absl::StrSplit(entry, '=');
    auto model = LoadOnnxModel(name_path.second);
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
      std::exit(1);
    }
    models.push_back(std::move(*model));
    auto* bench = benchmark::RegisterBenchmark(("forward/" + name_path.first).c_str(),
                                               BM_Forward, models.back().get());
    for (absl::string_view count : absl::StrSplit(rows, ',', absl::SkipEmpty())) {
      int value = 0;
      if (!absl::SimpleAtoi(count, &value) || value < 1) {
        std::fprintf(stderr, "SEQSERVE_BENCH_ROWS: not a row count: %s\n",
                     std::string(count).c_str());
        std::exit(1);
      }
      bench->Arg(value);
    }
  }
}

// Linear layers of `widths` with ReLU between them, weights as torch's
// default initialisation draws them (uniform within 1/sqrt(in)), on both
// kernels.
struct KernelChain {
  std::vector<Layer> layers;
  std::vector<std::unique_ptr<LinearKernel>> invariant;
  std::vector<std::unique_ptr<bench::OneDnnLinearKernel>> onednn;
  size_t widest = 0;
};

std::unique_ptr<KernelChain> MakeChain(const std::vector<int>& widths) {
  auto chain = std::make_unique<KernelChain>();
  std::mt19937 rng(7);
  chain->layers.reserve(widths.size());
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(widths[i]));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    std::vector<float> weight(static_cast<size_t>(widths[i]) * widths[i + 1]);
    std::vector<float> bias(widths[i + 1]);
    for (float& v : weight) v = uniform(rng);
    for (float& v : bias) v = uniform(rng);
    chain->layers.push_back(
        Layer::Linear(widths[i], widths[i + 1], std::move(weight), std::move(bias)));
    chain->widest = std::max<size_t>(chain->widest, std::max(widths[i], widths[i + 1]));
  }
  for (size_t i = 0; i < chain->layers.size(); ++i) {
    const bool relu = i + 1 < chain->layers.size();
    auto invariant = LinearKernel::Create(chain->layers[i], relu);
    auto onednn = bench::OneDnnLinearKernel::Create(chain->layers[i], relu);
    if (!invariant.ok() || !onednn.ok()) {
      std::fprintf(stderr, "cannot build the kernels of %s\n",
                   chain->layers[i].Describe().c_str());
      std::exit(1);
    }
    chain->invariant.push_back(std::move(*invariant));
    chain->onednn.push_back(std::move(*onednn));
  }
  return chain;
}

// One pass of the chain on one side: Sequential::Forward's work for these
// models (each Linear into a ping-pong buffer, the ReLU fused), without its
// checks.
void BM_Kernels(benchmark::State& state, const KernelChain* chain, bool invariant) {
  const size_t rows = state.range(0);
  std::vector<float> input(rows * chain->layers.front().in_features);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  for (float& v : input) v = uniform(rng);
  std::vector<float> buffers[2] = {std::vector<float>(rows * chain->widest),
                                   std::vector<float>(rows * chain->widest)};
  for (auto _ : state) {
    const float* current = input.data();
    for (size_t i = 0; i < chain->layers.size(); ++i) {
      float* out = buffers[i % 2].data();
      if (invariant) {
        chain->invariant[i]->Run(current, rows, out);
      } else if (!chain->onednn[i]->Run(current, rows, out).ok()) {
        state.SkipWithError("oneDNN failed");
        return;
      }
      current = out;
    }
    benchmark::DoNotOptimize(current);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * rows);
}

// The four benchmark models, and any chains SEQSERVE_BENCH_CHAINS names
// ("1024-1024;37-129-5": widths joined by '-').
void RegisterKernelChains() {
  static std::vector<std::pair<std::string, std::vector<int>>> models = {
      {"3-16-3", {3, 16, 3}},
      {"784-1024-1024-10", {784, 1024, 1024, 10}},
      {"256-4096-2", {256, 4096, 2}},
      {"64x10", std::vector<int>(11, 64)},
  };
  if (const char* more = std::getenv("SEQSERVE_BENCH_CHAINS"); more != nullptr) {
    for (absl::string_view name : absl::StrSplit(more, ';', absl::SkipEmpty())) {
      std::vector<int> widths;
      for (absl::string_view width : absl::StrSplit(name, '-')) {
        int value = 0;
        if (!absl::SimpleAtoi(width, &value) || value < 1) {
          std::fprintf(stderr, "SEQSERVE_BENCH_CHAINS: not a width: %s\n",
                       std::string(width).c_str());
          std::exit(1);
        }
        widths.push_back(value);
      }
      if (widths.size() < 2) {
        std::fprintf(stderr, "SEQSERVE_BENCH_CHAINS: a chain needs two widths\n");
        std::exit(1);
      }
      models.emplace_back(std::string(name), std::move(widths));
    }
  }
  static std::vector<std::unique_ptr<KernelChain>> chains;
  for (const auto& [name, widths] : models) {
    chains.push_back(MakeChain(widths));
    for (bool invariant : {false, true}) {
      benchmark::RegisterBenchmark(
          (std::string("kernels/") + name + (invariant ? "/invariant" : "/onednn")).c_str(),
          BM_Kernels, chains.back().get(), invariant)
          ->Arg(1)->Arg(8)->Arg(32)->Arg(256);
    }
  }
}

}  // namespace
}  // namespace seqserve

int main(int argc, char** argv) {
  using seqserve::ModelFrom;
  if (const char* files = std::getenv("SEQSERVE_BENCH_FILES"); files != nullptr) {
    const char* rows = std::getenv("SEQSERVE_BENCH_ROWS");
    seqserve::RegisterFiles(files, rows != nullptr ? rows : "1,8,32,256");
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  }
  static auto small = ModelFrom("SEQSERVE_BENCH_SMALL", {3, 16, 3});
  static auto large = ModelFrom("SEQSERVE_BENCH_LARGE", {784, 1024, 1024, 10});
  benchmark::RegisterBenchmark("forward/3-16-3", seqserve::BM_Forward, small.get())
      ->Arg(1)->Arg(32)->Arg(256);
  benchmark::RegisterBenchmark("forward/784-1024-1024-10", seqserve::BM_Forward,
                               large.get())
      ->Arg(1)->Arg(32)->Arg(256);
  // The same two large shapes in INT8 (core/precision.h) beside float32.
  static auto large_int8 = large->WithPrecision(seqserve::Precision::kInt8);
  static auto wide = seqserve::RandomModel({256, 4096, 2});
  static auto wide_int8 = wide->WithPrecision(seqserve::Precision::kInt8);
  if (!large_int8.ok() || !wide_int8.ok()) {
    std::fprintf(stderr, "no int8 model\n");
    return 1;
  }
  benchmark::RegisterBenchmark("forward/784-1024-1024-10 int8", seqserve::BM_Forward,
                               large_int8->get())
      ->Arg(1)->Arg(32)->Arg(256);
  benchmark::RegisterBenchmark("forward/256-4096-2", seqserve::BM_Forward, wide.get())
      ->Arg(1)->Arg(32)->Arg(256);
  benchmark::RegisterBenchmark("forward/256-4096-2 int8", seqserve::BM_Forward,
                               wide_int8->get())
      ->Arg(1)->Arg(32)->Arg(256);
  static auto folded = seqserve::RandomModel({784, 1024, 1024, 10}, /*batch_norm=*/true);
  benchmark::RegisterBenchmark("forward/784-1024-1024-10+BatchNorm1d", seqserve::BM_Forward,
                               folded.get())
      ->Arg(1)->Arg(32)->Arg(256);
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("forward_bench." + std::to_string(getpid())))
          .string();
  static const std::string graph =
      seqserve::WriteGraphAndData({784, 1024, 1024, 10}, dir);
  seqserve::RegisterKernelChains();
  benchmark::RegisterBenchmark("load/784-1024-1024-10 model.onnx+model.onnx.data",
                               seqserve::BM_LoadGraphAndData, &graph)
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(dir);
  return 0;
}
