#include "core/sequential.h"

#include <algorithm>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"

namespace seqserve {
namespace {

bool AllFinite(const std::vector<float>& values) {
  return std::all_of(values.begin(), values.end(),
                     [](float v) { return std::isfinite(v); });
}

absl::Status CheckPerFeature(const Layer& layer, const std::string& where, int width) {
  if (layer.out_features != width || layer.in_features != width) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": has ", layer.out_features, " features but the ",
        "row it gets has ", width));
  }
  const size_t n = static_cast<size_t>(width);
  const bool optional = layer.kind == LayerKind::kLayerNorm;  // no affine
  for (const auto* values : {&layer.weight, &layer.bias}) {
    if (values->size() == n || (values->empty() && (optional || layer.folded))) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": holds ", values->size(), " values per parameter, expected ", n));
  }
  if (!AllFinite(layer.weight) || !AllFinite(layer.bias)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": parameters hold NaN or Inf"));
  }
  return absl::OkStatus();
}

const char* StepName(ElementwiseOp op) {
  switch (op) {
    case ElementwiseOp::kAdd:
      return "add";
    case ElementwiseOp::kSub:
      return "sub";
    case ElementwiseOp::kMul:
      return "mul";
    case ElementwiseOp::kDiv:
      return "div";
    case ElementwiseOp::kReciprocal:
      return "reciprocal";
  }
  return "?";
}

absl::Status CheckElementwise(const Layer& layer, const std::string& where, int width) {
  if (layer.steps.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": has no steps"));
  }
  if (layer.out_features != 0 && (layer.out_features != width || layer.in_features != width)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": has ", layer.out_features,
                                                   " features but the row it gets has ", width));
  }
  for (size_t i = 0; i < layer.steps.size(); ++i) {
    const ElementwiseStep& step = layer.steps[i];
    const std::string what = absl::StrCat(where, ": step ", i, " (", StepName(step.op), ")");
    if (step.op == ElementwiseOp::kReciprocal) {
      if (!step.values.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": takes no constant"));
      }
      continue;
    }
    if (step.values.size() != 1 && step.values.size() != static_cast<size_t>(width)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": holds ", step.values.size(), " values; needs one or one per feature (",
          width, ")"));
    }
    if (!AllFinite(step.values)) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": constant holds NaN or Inf"));
    }
    // x / 0 is Inf (or NaN) for every row: a broken constant, not a model.
    if (step.op == ElementwiseOp::kDiv && !step.constant_first) {
      for (size_t c = 0; c < step.values.size(); ++c) {
        if (step.values[c] == 0.0f) {
          return absl::InvalidArgumentError(absl::StrCat(
              what, ": divides by zero (value ", c,
              " of the constant), which gives Inf or NaN for every row"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLayer(const Layer& layer, size_t index, int width) {
  const std::string where =
      absl::StrCat("layer ", index, " (", layer.Describe(), ")");
  if (layer.kind != LayerKind::kLinear) {
    if (!std::isfinite(layer.alpha) || !std::isfinite(layer.beta) ||
        !std::isfinite(layer.eps)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": parameter is NaN or Inf"));
    }
    switch (layer.kind) {
      case LayerKind::kElementwise:
        return CheckElementwise(layer, where, width);
      case LayerKind::kBatchNorm:
      case LayerKind::kLayerNorm:
        if (!(layer.eps > 0.0f)) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": eps must be positive"));
        }
        return CheckPerFeature(layer, where, width);
      case LayerKind::kPrelu:
        if (!layer.bias.empty() || layer.weight.empty() ||
            (layer.weight.size() > 1 && layer.weight.size() != static_cast<size_t>(width))) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": has ", layer.weight.size(), " slopes; needs one or one per feature (",
              width, ")"));
        }
        if (!AllFinite(layer.weight)) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": parameters hold NaN or Inf"));
        }
        return absl::OkStatus();
      case LayerKind::kCelu:
      case LayerKind::kSoftplus:
        if (layer.alpha == 0.0f) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": alpha/beta must not be 0"));
        }
        return absl::OkStatus();
      case LayerKind::kHardtanh:
        if (layer.alpha > layer.beta) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": min_val is greater than max_val"));
        }
        return absl::OkStatus();
      default:
        return absl::OkStatus();
    }
  }
  if (layer.in_features <= 0 || layer.out_features <= 0 ||
      layer.in_features > Sequential::kMaxWidth ||
      layer.out_features > Sequential::kMaxWidth) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": in_features and out_features must be 1 to ",
                     Sequential::kMaxWidth));
  }
  if (layer.in_features != width) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": expects ", layer.in_features, " features but the ",
        index == 0 ? "input has " : "previous layer gives ", width));
  }
  const size_t want = static_cast<size_t>(layer.in_features) *
                      static_cast<size_t>(layer.out_features);
  if (layer.weight.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": weight has ", layer.weight.size(), " values, expected ",
        layer.out_features, " x ", layer.in_features, " = ", want));
  }
  if (!layer.bias.empty() &&
      layer.bias.size() != static_cast<size_t>(layer.out_features)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": bias has ", layer.bias.size(),
                     " values, expected ", layer.out_features));
  }
  if (!AllFinite(layer.weight) || !AllFinite(layer.bias)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": weights hold NaN or Inf"));
  }
  if (!layer.int8_weight.empty() || !layer.int8_scales.empty()) {
    if (layer.int8_weight.size() != want ||
        layer.int8_scales.size() != static_cast<size_t>(layer.out_features)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": int8 weights hold ", layer.int8_weight.size(), " values and ",
          layer.int8_scales.size(), " scales, expected ", want, " and ", layer.out_features));
    }
    for (float scale : layer.int8_scales) {
      if (!(scale > 0.0f) || !std::isfinite(scale)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": an int8 weight scale is ", scale, "; scales are positive"));
      }
    }
  }
  return absl::OkStatus();
}

// Per-thread ping-pong buffers for hidden activations, reused by every pass
// up to the scratch budget; a larger one (a single very wide row) is freed
// after its pass.
struct ForwardScratch {
  std::vector<float> buffers[2];
};

ForwardScratch& ThreadScratch() {
  thread_local ForwardScratch scratch;
  return scratch;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Sequential>> Sequential::Create(
    int input_width, std::vector<Layer> layers, Head default_head, Precision precision) {
  FoldBatchNorms(layers);
  if (input_width <= 0 || input_width > kMaxWidth) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input width must be 1 to ", kMaxWidth, ", got ", input_width));
  }
  int width = input_width;
  bool has_linear = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (absl::Status status = CheckLayer(layers[i], i, width); !status.ok()) {
      return status;
    }
    if (layers[i].kind == LayerKind::kLinear) {
      has_linear = true;
      width = layers[i].out_features;
    }
  }
  if (!has_linear) {
    return absl::InvalidArgumentError(
        "a Sequential model needs at least one Linear layer");
  }
  std::unique_ptr<Sequential> model(
      new Sequential(input_width, std::move(layers), default_head, precision));
  if (absl::Status status = model->BuildKernels(); !status.ok()) return status;
  return model;
}

absl::StatusOr<std::unique_ptr<Sequential>> Sequential::WithPrecision(Precision precision) const {
  auto model = Create(input_width_, layers_, default_head_, precision);
  if (model.ok()) (*model)->set_tensor_names(tensor_names_);
  return model;
}

Precision Sequential::stored_precision() const {
  for (const Layer& layer : layers_) {
    if (!layer.int8_weight.empty()) return Precision::kInt8;
  }
  return Precision::kFp32;
}

absl::Status Sequential::BuildKernels() {
  kernels_.resize(layers_.size());
  fused_.assign(layers_.size(), false);
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i].kind != LayerKind::kLinear) continue;
    size_t next = i + 1;
    while (next < layers_.size() && !layers_[next].Runs()) ++next;
    const bool fuse_relu = next < layers_.size() && layers_[next].kind == LayerKind::kRelu;
    auto kernel = LinearKernel::Create(layers_[i], fuse_relu, precision_);
    if (!kernel.ok()) return kernel.status();
    kernels_[i] = std::move(*kernel);
    if (fuse_relu) fused_[next] = true;
  }
  return absl::OkStatus();
}

Sequential::Sequential(int input_width, std::vector<Layer> layers,
                       Head default_head, Precision precision)
    : input_width_(input_width),
      output_width_(input_width),
      layers_(std::move(layers)),
      default_head_(default_head),
      precision_(precision) {
  widest_ = input_width_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    parameter_count_ += layers_[i].ParameterCount();
    if (layers_[i].kind == LayerKind::kLinear) {
      output_width_ = layers_[i].out_features;
      widest_ = std::max<size_t>(widest_, output_width_);
      last_linear_ = i;
    }
  }
}

absl::Status Sequential::Forward(absl::Span<const float> features, size_t rows,
                                 absl::Span<float> logits,
                                 const std::function<bool()>& stop) const {
  if (features.size() != rows * input_width_) {
    return absl::InvalidArgumentError(
        absl::StrCat("got ", features.size(), " feature values for ", rows,
                     " rows of ", input_width_));
  }
  if (logits.size() != rows * output_width_) {
    return absl::InvalidArgumentError(
        absl::StrCat("output buffer holds ", logits.size(), " values, need ",
                     rows, " rows of ", output_width_));
  }
  if (rows == 0) return absl::OkStatus();

  const size_t chunk_rows =
      std::max<size_t>(1, kScratchBudgetBytes / (widest_ * sizeof(float)));
  const size_t scratch_values = std::min(rows, chunk_rows) * widest_;
  ForwardScratch& scratch = ThreadScratch();
  try {
    for (auto& buffer : scratch.buffers) {
      if (buffer.size() < scratch_values) buffer.resize(scratch_values);
    }
  } catch (const std::bad_alloc&) {
    for (auto& buffer : scratch.buffers) std::vector<float>().swap(buffer);
    return absl::ResourceExhaustedError(absl::StrCat(
        "no memory for ", 2 * scratch_values * sizeof(float),
        " bytes of activations"));
  }
  absl::Status status;
  try {  // INT8 kernels grow buffers of the thread's
    for (size_t first = 0; first < rows; first += chunk_rows) {
      const size_t count = std::min(chunk_rows, rows - first);
      if (first > 0 && stop && stop()) {
        status = absl::CancelledError(
            absl::StrCat("the pass stopped after ", first, " of ", rows, " rows"));
        break;
      }
      status = ForwardChunk(features.data() + first * input_width_, count,
                            logits.data() + first * output_width_,
                            scratch.buffers[0].data(), scratch.buffers[1].data());
      if (!status.ok()) break;
    }
  } catch (const std::bad_alloc&) {
    LinearKernel::ReleaseThreadInt8Scratch();
    status = absl::ResourceExhaustedError("no memory for the int8 kernels' quantized rows");
  }
  if (scratch_values * sizeof(float) > kScratchBudgetBytes) {
    for (auto& buffer : scratch.buffers) std::vector<float>().swap(buffer);
    LinearKernel::ReleaseThreadInt8Scratch();
  }
  return status;
}

size_t Sequential::ThreadScratchBytes() {
  const ForwardScratch& scratch = ThreadScratch();
  return (scratch.buffers[0].capacity() + scratch.buffers[1].capacity()) *
             sizeof(float) +
         LinearKernel::ThreadInt8ScratchBytes();
}

absl::Status Sequential::ForwardChunk(const float* features, size_t rows, float* logits,
                                      float* scratch0, float* scratch1) const {
  float* const buffers[2] = {scratch0, scratch1};
  // `current` is the input, a scratch buffer, or (after the last Linear)
  // the caller's output; `in_scratch` says which scratch buffer holds it.
  const float* current = features;
  int in_scratch = -1;
  size_t width = input_width_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    if (layer.kind == LayerKind::kLinear) {
      const int target = in_scratch == 0 ? 1 : 0;
      float* out = i == last_linear_ ? logits : buffers[target];
      kernels_[i]->Run(current, rows, out);
      current = out;
      in_scratch = i == last_linear_ ? -1 : target;
      width = layer.out_features;
      continue;
    }
    if (!layer.Runs() || fused_[i]) continue;
    float* values;
    if (current == features) {
      // An activation before the first Linear: never write the input.
      values = buffers[0];
      std::copy(features, features + rows * width, values);
      in_scratch = 0;
    } else {
      values = const_cast<float*>(current);
    }
    RunActivation(layer, values, rows, width);
    current = values;
  }
  return absl::OkStatus();
}

absl::Status Sequential::Predict(absl::Span<const float> features, size_t rows,
                                 Head head, absl::Span<float> scores) const {
  if (absl::Status status = Forward(features, rows, scores); !status.ok()) {
    return status;
  }
  ApplyHead(head, output_width_, scores);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> Sequential::Predict(
    absl::Span<const float> features, size_t rows, Head head) const {
  std::vector<float> scores(rows * output_width_);
  if (absl::Status status = Predict(features, rows, head, absl::MakeSpan(scores));
      !status.ok()) {
    return status;
  }
  return scores;
}

}  // namespace seqserve
