#include "core/layer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/head.h"

namespace seqserve {
namespace {

Layer OfKind(LayerKind kind) {
  Layer layer;
  layer.kind = kind;
  return layer;
}

// Layers that keep the width and hold one value per feature.
Layer PerFeature(LayerKind kind, int features) {
  Layer layer = OfKind(kind);
  layer.in_features = features;
  layer.out_features = features;
  return layer;
}

// torch prints floats in repr form: 1e-05, 0.1, 1.0.
std::string PyFloat(float value) {
  std::string text = absl::StrCat(value);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

// An elementwise step's constant: its value when it is one, else its
// count ("c[4]").
std::string ConstantText(const ElementwiseStep& step) {
  if (step.values.size() == 1) return PyFloat(step.values[0]);
  return absl::StrCat("c[", step.values.size(), "]");
}

// "(x - c[4]) / c[4]": the steps as one expression, innermost first.
std::string ElementwiseText(const std::vector<ElementwiseStep>& steps) {
  std::string text = "x";
  for (size_t i = 0; i < steps.size(); ++i) {
    const ElementwiseStep& step = steps[i];
    const std::string inner = i == 0 ? text : absl::StrCat("(", text, ")");
    const char* symbol = step.op == ElementwiseOp::kAdd   ? " + "
                         : step.op == ElementwiseOp::kSub ? " - "
                         : step.op == ElementwiseOp::kMul ? " * "
                                                          : " / ";
    if (step.op == ElementwiseOp::kReciprocal) {
      text = absl::StrCat("1 / ", inner);
    } else if (step.constant_first) {
      text = absl::StrCat(ConstantText(step), symbol, inner);
    } else {
      text = absl::StrCat(inner, symbol, ConstantText(step));
    }
  }
  return text;
}

// torch's elu kernel: x > 0 ? x * scale : expm1(x * input_scale) * alpha * scale.
inline float Elu(float x, float negcoef, float poscoef, float negiptcoef) {
  return x > 0.0f ? x * poscoef : std::expm1(x * negiptcoef) * negcoef;
}

void LayerNormRow(const Layer& layer, float* row, size_t width) {
  double sum = 0.0;
  for (size_t i = 0; i < width; ++i) sum += row[i];
  const double mean = sum / static_cast<double>(width);
  double squares = 0.0;
  for (size_t i = 0; i < width; ++i) {
    const double d = row[i] - mean;
    squares += d * d;
  }
  // Biased variance, eps inside the square root, as torch.
  const double variance = squares / static_cast<double>(width);
  const float rstd = static_cast<float>(1.0 / std::sqrt(variance + layer.eps));
  const float shift = static_cast<float>(-mean) * rstd;
  for (size_t i = 0; i < width; ++i) {
    float v = row[i] * rstd + shift;
    if (!layer.weight.empty()) v *= layer.weight[i];
    if (!layer.bias.empty()) v += layer.bias[i];
    row[i] = v;
  }
}

}  // namespace

Layer Layer::Linear(int in_features, int out_features,
                    std::vector<float> weight, std::vector<float> bias) {
  Layer layer;
  layer.kind = LayerKind::kLinear;
  layer.in_features = in_features;
  layer.out_features = out_features;
  layer.weight = std::move(weight);
  layer.bias = std::move(bias);
  return layer;
}

Layer Layer::QuantizedLinear(int in_features, int out_features, std::vector<int8_t> weight,
                             std::vector<float> scales, std::vector<float> bias) {
  std::vector<float> values(weight.size());
  const size_t in = static_cast<size_t>(std::max(in_features, 1));
  for (size_t i = 0; i < weight.size() && i / in < scales.size(); ++i) {
    values[i] = static_cast<float>(weight[i]) * scales[i / in];  // DequantizeLinear's value
  }
  Layer layer = Linear(in_features, out_features, std::move(values), std::move(bias));
  layer.int8_weight = std::move(weight);
  layer.int8_scales = std::move(scales);
  return layer;
}

Layer Layer::Relu() { return OfKind(LayerKind::kRelu); }

Layer Layer::LeakyRelu(float negative_slope) {
  Layer layer = OfKind(LayerKind::kLeakyRelu);
  layer.alpha = negative_slope;
  return layer;
}

Layer Layer::Tanh() { return OfKind(LayerKind::kTanh); }

Layer Layer::Sigmoid() { return OfKind(LayerKind::kSigmoid); }

Layer Layer::Elu(float alpha) {
  Layer layer = OfKind(LayerKind::kElu);
  layer.alpha = alpha;
  return layer;
}

Layer Layer::BatchNorm1d(const std::vector<float>& weight,
                         const std::vector<float>& bias,
                         const std::vector<float>& running_mean,
                         const std::vector<float>& running_var, float eps) {
  Layer layer = PerFeature(LayerKind::kBatchNorm, static_cast<int>(running_var.size()));
  layer.eps = eps;
  const size_t n = running_var.size();
  if (weight.size() != n || bias.size() != n || running_mean.size() != n) {
    layer.weight = weight;  // Sequential::Create refuses the mismatch
    return layer;
  }
  layer.weight.resize(n);
  layer.bias.resize(n);
  for (size_t c = 0; c < n; ++c) {
    // batch_norm_cpu_collect_linear_and_constant_terms, in float as torch.
    const float invstd = 1.0f / std::sqrt(running_var[c] + eps);
    layer.weight[c] = invstd * weight[c];
    layer.bias[c] = bias[c] - running_mean[c] * layer.weight[c];
  }
  return layer;
}

Layer Layer::LayerNorm(int features, std::vector<float> weight,
                       std::vector<float> bias, float eps) {
  Layer layer = PerFeature(LayerKind::kLayerNorm, features);
  layer.weight = std::move(weight);
  layer.bias = std::move(bias);
  layer.eps = eps;
  return layer;
}

Layer Layer::Gelu(bool tanh_approximation) {
  Layer layer = OfKind(LayerKind::kGelu);
  layer.tanh_approximation = tanh_approximation;
  return layer;
}

Layer Layer::Silu() { return OfKind(LayerKind::kSilu); }

Layer Layer::Hardtanh(float min_val, float max_val) {
  Layer layer = OfKind(LayerKind::kHardtanh);
  layer.alpha = min_val;
  layer.beta = max_val;
  return layer;
}

Layer Layer::Prelu(std::vector<float> slopes) {
  const int features = slopes.size() > 1 ? static_cast<int>(slopes.size()) : 0;
  Layer layer = PerFeature(LayerKind::kPrelu, features);
  layer.weight = std::move(slopes);
  return layer;
}

Layer Layer::Selu(float alpha, float scale) {
  Layer layer = OfKind(LayerKind::kSelu);
  layer.alpha = alpha;
  layer.beta = scale;
  return layer;
}

Layer Layer::Celu(float alpha) {
  Layer layer = OfKind(LayerKind::kCelu);
  layer.alpha = alpha;
  return layer;
}

Layer Layer::Softplus(float beta, float threshold) {
  Layer layer = OfKind(LayerKind::kSoftplus);
  layer.alpha = beta;
  layer.beta = threshold;
  return layer;
}

Layer Layer::Softsign() { return OfKind(LayerKind::kSoftsign); }

Layer Layer::HardSigmoid(float alpha, float beta) {
  Layer layer = OfKind(LayerKind::kHardSigmoid);
  layer.alpha = alpha;
  layer.beta = beta;
  return layer;
}

Layer Layer::HardSwish() { return OfKind(LayerKind::kHardSwish); }

Layer Layer::Mish() { return OfKind(LayerKind::kMish); }

Layer Layer::Elementwise(std::vector<ElementwiseStep> steps) {
  Layer layer = OfKind(LayerKind::kElementwise);
  for (const ElementwiseStep& step : steps) {
    if (step.values.size() > 1) {
      // The first per-feature step sets the width; a step of another
      // width is refused by Sequential::Create.
      if (layer.out_features == 0) layer.out_features = static_cast<int>(step.values.size());
    }
  }
  layer.in_features = layer.out_features;
  layer.steps = std::move(steps);
  return layer;
}

namespace {
Layer NoOp(std::string module) {
  Layer layer = OfKind(LayerKind::kNoOp);
  layer.module = std::move(module);
  return layer;
}
}  // namespace

Layer Layer::Dropout(float p) {
  return NoOp(p > 0.0f ? absl::StrCat("Dropout(p=", PyFloat(p), ") (no-op at inference)")
                       : "Dropout (no-op at inference)");
}

Layer Layer::Identity() { return NoOp("Identity (no-op at inference)"); }

Layer Layer::Flatten() { return NoOp("Flatten (no-op: rows are already flat)"); }

Layer Layer::OmittedByExport() {
  return NoOp("Dropout or Identity (no-op at inference, not in the graph)");
}

std::string Layer::Describe() const {
  switch (kind) {
    case LayerKind::kLinear:
      return absl::StrCat("Linear(", in_features, ", ", out_features,
                          bias.empty() || bias_from_fold ? ", bias=False)" : ")");
    case LayerKind::kRelu:
      return "ReLU";
    case LayerKind::kLeakyRelu:
      return absl::StrCat("LeakyReLU(", alpha, ")");
    case LayerKind::kTanh:
      return "Tanh";
    case LayerKind::kSigmoid:
      return "Sigmoid";
    case LayerKind::kElu:
      return absl::StrCat("ELU(", alpha, ")");
    case LayerKind::kBatchNorm:
      return absl::StrCat("BatchNorm1d(", out_features, ", eps=", PyFloat(eps), ")");
    case LayerKind::kLayerNorm:
      return absl::StrCat("LayerNorm((", out_features, ",), eps=", PyFloat(eps),
                          weight.empty() ? ", elementwise_affine=False)" : ")");
    case LayerKind::kGelu:
      return tanh_approximation ? "GELU(approximate='tanh')" : "GELU";
    case LayerKind::kSilu:
      return "SiLU";
    case LayerKind::kHardtanh:
      if (alpha == 0.0f && beta == 6.0f) return "ReLU6";
      return absl::StrCat("Hardtanh(min_val=", PyFloat(alpha), ", max_val=", PyFloat(beta), ")");
    case LayerKind::kPrelu:
      return absl::StrCat("PReLU(num_parameters=", weight.size(), ")");
    case LayerKind::kSelu:
      return "SELU";
    case LayerKind::kCelu:
      return absl::StrCat("CELU(alpha=", PyFloat(alpha), ")");
    case LayerKind::kSoftplus:
      return absl::StrCat("Softplus(beta=", PyFloat(alpha), ", threshold=", PyFloat(beta), ")");
    case LayerKind::kSoftsign:
      return "Softsign";
    case LayerKind::kHardSigmoid:
      return "Hardsigmoid";
    case LayerKind::kHardSwish:
      return "Hardswish";
    case LayerKind::kMish:
      return "Mish";
    case LayerKind::kElementwise:
      return absl::StrCat("Elementwise(", ElementwiseText(steps), ")");
    case LayerKind::kNoOp:
      return module;
  }
  return "?";
}

size_t Layer::ParameterCount() const {
  // A BatchNorm1d keeps its affine weight and bias even once folded.
  if (kind == LayerKind::kBatchNorm) return 2 * static_cast<size_t>(out_features);
  return weight.size() + (bias_from_fold ? 0 : bias.size());
}

void FoldBatchNorms(std::vector<Layer>& layers) {
  for (size_t i = 1; i < layers.size(); ++i) {
    Layer& norm = layers[i];
    size_t before = i - 1;
    while (before > 0 && layers[before].kind == LayerKind::kNoOp) --before;
    Layer& linear = layers[before];
    // A Linear stored in int8 keeps its file's weights: its BatchNorm1d runs.
    if (norm.kind != LayerKind::kBatchNorm || norm.folded ||
        linear.kind != LayerKind::kLinear || !linear.int8_weight.empty() ||
        norm.out_features != linear.out_features ||
        norm.weight.size() != static_cast<size_t>(linear.out_features) ||
        norm.bias.size() != norm.weight.size() ||
        linear.weight.size() !=
            static_cast<size_t>(linear.out_features) * static_cast<size_t>(linear.in_features)) {
      continue;  // Sequential::Create reports what does not fit
    }
    const size_t in = static_cast<size_t>(linear.in_features);
    if (linear.bias.empty()) {
      linear.bias.assign(linear.out_features, 0.0f);
      linear.bias_from_fold = true;
    }
    for (size_t o = 0; o < static_cast<size_t>(linear.out_features); ++o) {
      const float scale = norm.weight[o];
      for (size_t k = 0; k < in; ++k) linear.weight[o * in + k] *= scale;
      linear.bias[o] = linear.bias[o] * scale + norm.bias[o];
    }
    norm.folded = true;
    norm.weight.clear();
    norm.bias.clear();
  }
}

// Each kernel follows the formula of torch's CPU kernel for the module.
void RunActivation(const Layer& layer, float* values, size_t rows, size_t width) {
  const size_t count = rows * width;
  const float alpha = layer.alpha;
  const float beta = layer.beta;
  switch (layer.kind) {
    case LayerKind::kLinear:
    case LayerKind::kNoOp:
      return;
    case LayerKind::kRelu:
      for (size_t i = 0; i < count; ++i) values[i] = std::max(values[i], 0.0f);
      return;
    case LayerKind::kLeakyRelu:
      for (size_t i = 0; i < count; ++i) {
        values[i] = values[i] > 0.0f ? values[i] : values[i] * alpha;
      }
      return;
    case LayerKind::kTanh:
      for (size_t i = 0; i < count; ++i) values[i] = std::tanh(values[i]);
      return;
    case LayerKind::kSigmoid:
      ApplyHead(Head::kSigmoid, 1, absl::MakeSpan(values, count));
      return;
    case LayerKind::kElu:
      for (size_t i = 0; i < count; ++i) {
        values[i] = values[i] > 0.0f ? values[i] : alpha * std::expm1(values[i]);
      }
      return;
    case LayerKind::kBatchNorm:
      if (layer.folded) return;
      for (size_t r = 0; r < rows; ++r) {
        float* row = values + r * width;
        for (size_t c = 0; c < width; ++c) row[c] = row[c] * layer.weight[c] + layer.bias[c];
      }
      return;
    case LayerKind::kLayerNorm:
      for (size_t r = 0; r < rows; ++r) LayerNormRow(layer, values + r * width, width);
      return;
    case LayerKind::kGelu:
      if (layer.tanh_approximation) {
        const float kBeta = static_cast<float>(M_SQRT2 * M_2_SQRTPI * 0.5);
        const float kKappa = 0.044715f;
        for (size_t i = 0; i < count; ++i) {
          const float x = values[i];
          const float inner = kBeta * (x + kKappa * x * x * x);
          values[i] = 0.5f * x * (1.0f + std::tanh(inner));
        }
      } else {
        const float kAlpha = static_cast<float>(M_SQRT1_2);
        for (size_t i = 0; i < count; ++i) {
          const float x = values[i];
          values[i] = x * 0.5f * (1.0f + std::erf(x * kAlpha));
        }
      }
      return;
    case LayerKind::kSilu:
      for (size_t i = 0; i < count; ++i) {
        values[i] = values[i] / (1.0f + std::exp(-values[i]));
      }
      return;
    case LayerKind::kHardtanh:
      for (size_t i = 0; i < count; ++i) values[i] = std::min(std::max(values[i], alpha), beta);
      return;
    case LayerKind::kPrelu:
      for (size_t r = 0; r < rows; ++r) {
        float* row = values + r * width;
        for (size_t c = 0; c < width; ++c) {
          const float slope = layer.weight.size() == 1 ? layer.weight[0] : layer.weight[c];
          row[c] = row[c] > 0.0f ? row[c] : slope * row[c];
        }
      }
      return;
    case LayerKind::kSelu: {
      const float negcoef = alpha * beta;
      for (size_t i = 0; i < count; ++i) values[i] = Elu(values[i], negcoef, beta, 1.0f);
      return;
    }
    case LayerKind::kCelu: {
      const float negiptcoef = 1.0f / alpha;
      for (size_t i = 0; i < count; ++i) values[i] = Elu(values[i], alpha, 1.0f, negiptcoef);
      return;
    }
    case LayerKind::kSoftplus:
      for (size_t i = 0; i < count; ++i) {
        const float x = values[i];
        values[i] = x * alpha > beta ? x : std::log1p(std::exp(x * alpha)) / alpha;
      }
      return;
    case LayerKind::kSoftsign:
      for (size_t i = 0; i < count; ++i) values[i] = values[i] / (1.0f + std::fabs(values[i]));
      return;
    case LayerKind::kHardSigmoid:
      for (size_t i = 0; i < count; ++i) {
        values[i] = std::max(0.0f, std::min(1.0f, alpha * values[i] + beta));
      }
      return;
    case LayerKind::kHardSwish:
      for (size_t i = 0; i < count; ++i) {
        const float x = values[i];
        values[i] = x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;
      }
      return;
    case LayerKind::kMish:
      for (size_t i = 0; i < count; ++i) {
        const float x = values[i];
        values[i] = x * std::tanh(std::log1p(std::exp(x)));
      }
      return;
    case LayerKind::kElementwise:
      // Step by step over the whole block, as torch runs one op after
      // another: each step rounds to float32 before the next.
      for (const ElementwiseStep& step : layer.steps) {
        for (size_t r = 0; r < rows; ++r) {
          float* row = values + r * width;
          for (size_t c = 0; c < width; ++c) row[c] = ElementwiseStepValue(step, row[c], c);
        }
      }
      return;
  }
}

}  // namespace seqserve
