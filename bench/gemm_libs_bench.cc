// The Linear + ReLU chains of bench/compare_engines.py's models run through
// each candidate library, one thread, to choose core's kernels:
//   openblas  what core ran before oneDNN: bias copied, then sgemv/sgemm with beta 1
//   blis      bli_sgemm (typed API, strides give W^T without a copy)
//   onednn    matmul with weights reordered once to the primitive's own
//             format (format_tag::any), bias and ReLU as part of it; one
//             primitive per batch size, made before timing
//   libxsmm   JIT kernels (libxsmm_smmdispatch) on weights transposed once;
//             shapes it will not compile are reported as skipped
// Run with OMP_NUM_THREADS=1 (oneDNN and BLIS are OpenMP builds in Debian).
#include <benchmark/benchmark.h>
#include <blis.h>  // also declares the cblas_* functions, which OpenBLAS provides
#include <libxsmm.h>

#include <algorithm>
#include <dnnl.hpp>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

// OpenBLAS's own extension; blis.h's cblas.h shadows OpenBLAS's.
extern "C" void openblas_set_num_threads(int threads);

namespace {

struct Linear {
  int in = 0;
  int out = 0;
  std::vector<float> weight;  // out x in, torch's layout
  std::vector<float> bias;
};

std::vector<Linear> Chain(const std::vector<int>& widths) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(-0.1f, 0.1f);
  std::vector<Linear> chain;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    Linear linear{widths[i], widths[i + 1], {}, {}};
    linear.weight.resize(static_cast<size_t>(linear.in) * linear.out);
    linear.bias.resize(linear.out);
    for (float& v : linear.weight) v = uniform(rng);
    for (float& v : linear.bias) v = uniform(rng);
    chain.push_back(std::move(linear));
  }
  return chain;
}

void Relu(float* y, size_t count) {
  for (size_t i = 0; i < count; ++i) y[i] = std::max(y[i], 0.0f);
}

void FillBias(const Linear& l, int rows, float* y) {
  for (int r = 0; r < rows; ++r) std::copy(l.bias.begin(), l.bias.end(), y + static_cast<size_t>(r) * l.out);
}

// One forward pass of a chain: layer i reads buffers[i] and writes
// buffers[i + 1].
using Pass = std::function<void()>;

struct Case {
  std::vector<Linear> chain;
  int rows = 0;
  std::vector<std::vector<float>> buffers;
};

std::unique_ptr<Case> MakeCase(const std::vector<int>& widths, int rows) {
  auto c = std::make_unique<Case>();
  c->chain = Chain(widths);
  c->rows = rows;
  for (int w : widths) c->buffers.emplace_back(static_cast<size_t>(rows) * w, 0.5f);
  return c;
}

Pass OpenBlas(Case* c) {
  return [c] {
    for (size_t i = 0; i < c->chain.size(); ++i) {
      const Linear& l = c->chain[i];
      float* y = c->buffers[i + 1].data();
      FillBias(l, c->rows, y);
      if (c->rows == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, l.out, l.in, 1.0f, l.weight.data(), l.in,
                    c->buffers[i].data(), 1, 1.0f, y, 1);
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->rows, l.out, l.in, 1.0f,
                    c->buffers[i].data(), l.in, l.weight.data(), l.in, 1.0f, y, l.out);
      }
      if (i + 1 < c->chain.size()) Relu(y, static_cast<size_t>(c->rows) * l.out);
    }
  };
}

Pass Blis(Case* c) {
  return [c] {
    float one = 1.0f;
    for (size_t i = 0; i < c->chain.size(); ++i) {
      const Linear& l = c->chain[i];
      float* y = c->buffers[i + 1].data();
      FillBias(l, c->rows, y);
      // y (rows x out) += x (rows x in) * W^T; W^T is W with swapped strides.
      bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, c->rows, l.out, l.in, &one,
                c->buffers[i].data(), l.in, 1, const_cast<float*>(l.weight.data()), 1, l.in,
                &one, y, l.out, 1);
      if (i + 1 < c->chain.size()) Relu(y, static_cast<size_t>(c->rows) * l.out);
    }
  };
}

struct OneDnnLayer {
  dnnl::matmul primitive;
  dnnl::memory src, weights, bias, dst;
};

// With `runtime_rows`, one primitive for any number of rows (rows given at
// execution), as a model would hold it; else one made for this batch size.
Pass OneDnn(Case* c, bool runtime_rows) {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  static dnnl::stream stream(engine);
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto layers = std::make_shared<std::vector<OneDnnLayer>>();
  for (size_t i = 0; i < c->chain.size(); ++i) {
    const Linear& l = c->chain[i];
    const dnnl::memory::dim m = runtime_rows ? DNNL_RUNTIME_DIM_VAL : c->rows;
    const dnnl::memory::dim k = l.in, n = l.out;
    dnnl::memory::desc src_md({m, k}, dt::f32, tag::ab);
    dnnl::memory::desc weights_any({k, n}, dt::f32, tag::any);
    dnnl::memory::desc bias_md({1, n}, dt::f32, tag::ab);
    dnnl::memory::desc dst_md({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    if (i + 1 < c->chain.size()) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, weights_any, bias_md, dst_md),
                                    attr, engine);
    // torch's out x in row-major weight is the k x n matrix in "ba" order.
    dnnl::memory user({{k, n}, dt::f32, tag::ba}, engine,
                      const_cast<float*>(l.weight.data()));
    dnnl::memory packed(pd.weights_desc(), engine);
    dnnl::reorder(user, packed).execute(stream, user, packed);
    stream.wait();
    const dnnl::memory::dim rows = c->rows;
    layers->push_back({dnnl::matmul(pd),
                       dnnl::memory({{rows, k}, dt::f32, tag::ab}, engine, c->buffers[i].data()),
                       packed,
                       dnnl::memory(bias_md, engine, const_cast<float*>(l.bias.data())),
                       dnnl::memory({{rows, n}, dt::f32, tag::ab}, engine,
                                    c->buffers[i + 1].data())});
  }
  return [layers] {
    for (OneDnnLayer& l : *layers) {
      l.primitive.execute(stream, {{DNNL_ARG_SRC, l.src},
                                   {DNNL_ARG_WEIGHTS, l.weights},
                                   {DNNL_ARG_BIAS, l.bias},
                                   {DNNL_ARG_DST, l.dst}});
    }
    stream.wait();
  };
}

// Column-major view: y^T (out x rows) = W (out x in) * x^T (in x rows), so A
// is W stored column-major (W^T row-major, transposed once), B is x as is.
Pass Xsmm(Case* c) {
  auto transposed = std::make_shared<std::vector<std::vector<float>>>();
  std::vector<libxsmm_smmfunction> kernels;
  for (const Linear& l : c->chain) {
    std::vector<float> t(l.weight.size());
    for (int o = 0; o < l.out; ++o)
      for (int k = 0; k < l.in; ++k) t[static_cast<size_t>(k) * l.out + o] = l.weight[static_cast<size_t>(o) * l.in + k];
    transposed->push_back(std::move(t));
    const float alpha = 1.0f, beta = 1.0f;
    const int flags = LIBXSMM_GEMM_FLAG_NONE;
    const libxsmm_blasint m = l.out, n = c->rows, k = l.in;
    kernels.push_back(libxsmm_smmdispatch(m, n, k, &m, &k, &m, &alpha, &beta, &flags, nullptr));
    if (kernels.back() == nullptr) return nullptr;
  }
  return [c, transposed, kernels] {
    for (size_t i = 0; i < c->chain.size(); ++i) {
      const Linear& l = c->chain[i];
      float* y = c->buffers[i + 1].data();
      FillBias(l, c->rows, y);
      kernels[i]((*transposed)[i].data(), c->buffers[i].data(), y);
      if (i + 1 < c->chain.size()) Relu(y, static_cast<size_t>(c->rows) * l.out);
    }
  };
}

}  // namespace

int main(int argc, char** argv) {
  openblas_set_num_threads(1);
  bli_thread_set_num_threads(1);
  libxsmm_init();
  const std::vector<std::pair<std::string, std::vector<int>>> models = {
      {"3-16-3", {3, 16, 3}},
      {"784-1024-1024-10", {784, 1024, 1024, 10}},
      {"256-4096-2", {256, 4096, 2}},
      {"64x10", std::vector<int>(11, 64)}};
  const std::vector<std::pair<std::string, Pass (*)(Case*)>> libraries = {
      {"openblas", OpenBlas},
      {"blis", Blis},
      {"onednn", [](Case* c) { return OneDnn(c, false); }},
      {"onednn-any-rows", [](Case* c) { return OneDnn(c, true); }},
      {"libxsmm", Xsmm}};
  static std::vector<std::unique_ptr<Case>> cases;
  for (const auto& [model, widths] : models) {
    for (int rows : {1, 8, 32, 256}) {
      for (const auto& [library, make] : libraries) {
        cases.push_back(MakeCase(widths, rows));
        Pass pass = make(cases.back().get());
        const std::string name = library + "/" + model + "/" + std::to_string(rows);
        benchmark::RegisterBenchmark(name.c_str(), [pass, rows](benchmark::State& state) {
          if (!pass) {
            state.SkipWithError("no kernel for this shape");
            return;
          }
          for (auto _ : state) pass();
          state.SetItemsProcessed(state.iterations() * rows);
        })->Unit(benchmark::kMicrosecond);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
