#include "bench/onednn_linear_kernel.h"

#include <omp.h>

#include <algorithm>
#include <dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"

namespace seqserve::bench {
namespace {

using Tag = dnnl::memory::format_tag;
using Type = dnnl::memory::data_type;

const dnnl::engine& Engine() {
  static const dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// Debian's oneDNN runs on OpenMP, whose teams would take every core; the
// server already runs one pass per inference thread. oneDNN plans a
// primitive for the calling thread's OpenMP width when it is made, and runs
// it and sgemm with the width of the thread that executes them: all must
// be one.
void UseOneOpenMpThread() {
  thread_local const bool once = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)once;
}

// Per thread: a stream, and scratchpad bytes reused by every call.
struct ThreadState {
  dnnl::stream stream;
  std::vector<char> scratchpad;
};

ThreadState& ThisThread() {
  thread_local ThreadState state = [] {
    UseOneOpenMpThread();
    return ThreadState{dnnl::stream(Engine()), {}};
  }();
  return state;
}

void Relu(float* values, size_t count) {
  for (size_t i = 0; i < count; ++i) values[i] = std::max(values[i], 0.0f);
}

}  // namespace

struct OneDnnLinearKernel::Packed {
  dnnl::matmul primitive;
  dnnl::memory weights;  // in the primitive's layout
  dnnl::memory bias;     // 1 x out, the layer's own values
  size_t scratchpad_bytes = 0;
};

absl::StatusOr<std::unique_ptr<OneDnnLinearKernel>> OneDnnLinearKernel::Create(const Layer& layer,
                                                                   bool fuse_relu) {
  const size_t weights = static_cast<size_t>(layer.in_features) * layer.out_features;
  if (weights < kPackedMinWeights) {
    return std::unique_ptr<OneDnnLinearKernel>(new OneDnnLinearKernel(layer, fuse_relu, nullptr));
  }
  UseOneOpenMpThread();
  try {
    const dnnl::memory::dim in = layer.in_features, out = layer.out_features;
    // Rows are given at each call, so one primitive serves every batch size.
    const dnnl::memory::desc src({DNNL_RUNTIME_DIM_VAL, in}, Type::f32, Tag::ab);
    const dnnl::memory::desc dst({DNNL_RUNTIME_DIM_VAL, out}, Type::f32, Tag::ab);
    const dnnl::memory::desc any_weights({in, out}, Type::f32, Tag::any);
    const dnnl::memory::desc bias({1, out}, Type::f32, Tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (fuse_relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    const dnnl::memory::desc* bias_desc = layer.bias.empty() ? nullptr : &bias;
    dnnl::matmul::primitive_desc pd(
        bias_desc ? dnnl::matmul::desc(src, any_weights, bias, dst)
                  : dnnl::matmul::desc(src, any_weights, dst),
        attr, Engine());
    auto packed = std::make_unique<Packed>();
    packed->primitive = dnnl::matmul(pd);
    packed->weights = dnnl::memory(pd.weights_desc(), Engine());
    // torch's out x in row-major weight is the in x out matrix in "ba" order.
    dnnl::memory torch_layout({{in, out}, Type::f32, Tag::ba}, Engine(),
                              const_cast<float*>(layer.weight.data()));
    dnnl::stream stream(Engine());
    dnnl::reorder(torch_layout, packed->weights).execute(stream, torch_layout, packed->weights);
    stream.wait();
    if (bias_desc) {
      packed->bias = dnnl::memory(bias, Engine(), const_cast<float*>(layer.bias.data()));
    }
    packed->scratchpad_bytes = pd.scratchpad_desc().get_size();
    return std::unique_ptr<OneDnnLinearKernel>(new OneDnnLinearKernel(layer, fuse_relu, std::move(packed)));
  } catch (const dnnl::error& error) {
    return absl::InternalError(absl::StrCat("oneDNN cannot run ", layer.Describe(), ": ",
                                            error.what()));
  }
}

OneDnnLinearKernel::OneDnnLinearKernel(const Layer& layer, bool fuse_relu, std::unique_ptr<Packed> packed)
    : layer_(layer), fuse_relu_(fuse_relu), packed_(std::move(packed)) {}

OneDnnLinearKernel::~OneDnnLinearKernel() = default;

bool OneDnnLinearKernel::RunsPacked(size_t rows) const {
  const size_t weights = static_cast<size_t>(layer_.in_features) * layer_.out_features;
  return packed_ != nullptr && rows * weights >= kPackedMinWork;
}

absl::Status OneDnnLinearKernel::Run(const float* x, size_t rows, float* y) const {
  if (!RunsPacked(rows)) {
    UseOneOpenMpThread();
    return RunUnpacked(x, rows, y);
  }
  ThreadState& thread = ThisThread();
  try {
    const dnnl::memory::dim m = static_cast<dnnl::memory::dim>(rows);
    dnnl::memory src({{m, layer_.in_features}, Type::f32, Tag::ab}, Engine(),
                     const_cast<float*>(x));
    dnnl::memory dst({{m, layer_.out_features}, Type::f32, Tag::ab}, Engine(), y);
    if (thread.scratchpad.size() < packed_->scratchpad_bytes) {
      thread.scratchpad.resize(packed_->scratchpad_bytes);
    }
    dnnl::memory scratchpad({{static_cast<dnnl::memory::dim>(packed_->scratchpad_bytes)},
                             Type::u8, Tag::a},
                            Engine(), thread.scratchpad.data());
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, src},
                                                  {DNNL_ARG_WEIGHTS, packed_->weights},
                                                  {DNNL_ARG_DST, dst},
                                                  {DNNL_ARG_SCRATCHPAD, scratchpad}};
    if (!layer_.bias.empty()) args.emplace(DNNL_ARG_BIAS, packed_->bias);
    packed_->primitive.execute(thread.stream, args);
    thread.stream.wait();
  } catch (const dnnl::error& error) {
    return absl::InternalError(absl::StrCat("oneDNN failed to run ", layer_.Describe(), ": ",
                                            error.what()));
  }
  return absl::OkStatus();
}

absl::Status OneDnnLinearKernel::RunUnpacked(const float* x, size_t rows, float* y) const {
  const dnnl_dim_t in = layer_.in_features;
  const dnnl_dim_t out = layer_.out_features;
  float beta = 0.0f;
  if (!layer_.bias.empty()) {
    // Start from the bias and let sgemm accumulate onto it, as torch's addmm.
    for (size_t r = 0; r < rows; ++r) {
      std::copy(layer_.bias.begin(), layer_.bias.end(), y + r * out);
    }
    beta = 1.0f;
  }
  // Row-major y (rows x out) = x (rows x in) * W^T, W being torch's out x in.
  const dnnl_status_t status =
      dnnl_sgemm('N', 'T', static_cast<dnnl_dim_t>(rows), out, in, 1.0f, x, in,
                 layer_.weight.data(), in, beta, y, out);
  if (status != dnnl_success) {
    return absl::InternalError(absl::StrCat("oneDNN sgemm failed on ", layer_.Describe(),
                                            " (status ", static_cast<int>(status), ")"));
  }
  if (fuse_relu_) Relu(y, rows * static_cast<size_t>(out));
  return absl::OkStatus();
}

}  // namespace seqserve::bench
