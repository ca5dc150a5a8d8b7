// The backward pass: the gradient of one class's score with respect to a
// row's features, for every layer and head seqserve serves. Each derivative
// follows torch's backward formula for the module (its choices at the kinks:
// ReLU's gradient at 0 is 0, Hardtanh's at its bounds is 0).
#include <algorithm>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"
#include "core/sequential.h"

namespace seqserve {
namespace {

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The chain rule through an elementwise layer's steps, each at the float
// value the forward pass gives it: d(x ± c) = ±1, d(x * c) = c,
// d(x / c) = 1 / c, d(c / x) = -c / x^2, d(1 / x) = -1 / x^2.
double ElementwiseDerivative(const Layer& layer, float x, size_t feature) {
  double derivative = 1.0;
  for (const ElementwiseStep& step : layer.steps) {
    const double c = step.values.empty() ? 0.0
                     : step.values.size() == 1 ? step.values[0]
                                               : step.values[feature];
    const double v = x;
    switch (step.op) {
      case ElementwiseOp::kAdd:
        break;
      case ElementwiseOp::kSub:
        if (step.constant_first) derivative = -derivative;
        break;
      case ElementwiseOp::kMul:
        derivative *= c;
        break;
      case ElementwiseOp::kDiv:
        derivative *= step.constant_first ? -c / (v * v) : 1.0 / c;
        break;
      case ElementwiseOp::kReciprocal:
        derivative *= -1.0 / (v * v);
        break;
    }
    x = ElementwiseStepValue(step, x, feature);
  }
  return derivative;
}

// d layer(x) / dx for an element-wise layer, at one input value.
double ElementDerivative(const Layer& layer, double x, size_t feature) {
  const double alpha = layer.alpha;
  const double beta = layer.beta;
  switch (layer.kind) {
    case LayerKind::kRelu:
      return x > 0.0 ? 1.0 : 0.0;
    case LayerKind::kLeakyRelu:
      return x > 0.0 ? 1.0 : alpha;
    case LayerKind::kTanh: {
      const double t = std::tanh(x);
      return 1.0 - t * t;
    }
    case LayerKind::kSigmoid: {
      const double s = Sigmoid(x);
      return s * (1.0 - s);
    }
    case LayerKind::kElu:
      return x > 0.0 ? 1.0 : alpha * std::exp(x);
    case LayerKind::kBatchNorm:
      return layer.weight[feature];
    case LayerKind::kGelu:
      if (layer.tanh_approximation) {
        const double kBeta = M_SQRT2 * M_2_SQRTPI * 0.5;
        const double kKappa = 0.044715;
        const double t = std::tanh(kBeta * (x + kKappa * x * x * x));
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kBeta * (1.0 + 3.0 * kKappa * x * x);
      }
      return 0.5 * (1.0 + std::erf(x * M_SQRT1_2)) +
             x * std::exp(-0.5 * x * x) * (M_2_SQRTPI * M_SQRT1_2 * 0.5);
    case LayerKind::kSilu: {
      const double s = Sigmoid(x);
      return s * (1.0 + x * (1.0 - s));
    }
    case LayerKind::kHardtanh:
      return x <= alpha || x >= beta ? 0.0 : 1.0;
    case LayerKind::kPrelu:
      return x > 0.0 ? 1.0 : layer.weight[layer.weight.size() == 1 ? 0 : feature];
    case LayerKind::kSelu:
      return x > 0.0 ? beta : beta * alpha * std::exp(x);
    case LayerKind::kCelu:
      return x > 0.0 ? 1.0 : std::exp(x / alpha);
    case LayerKind::kSoftplus: {
      if (x * alpha > beta) return 1.0;
      const double z = std::exp(x * alpha);
      return z / (z + 1.0);
    }
    case LayerKind::kSoftsign: {
      const double d = 1.0 + std::fabs(x);
      return 1.0 / (d * d);
    }
    case LayerKind::kHardSigmoid: {
      const double v = alpha * x + beta;
      return v > 0.0 && v < 1.0 ? alpha : 0.0;
    }
    case LayerKind::kHardSwish:
      if (x < -3.0) return 0.0;
      return x <= 3.0 ? x / 3.0 + 0.5 : 1.0;
    case LayerKind::kMish: {
      const double t = std::tanh(std::log1p(std::exp(x)));
      return t + x * Sigmoid(x) * (1.0 - t * t);
    }
    case LayerKind::kElementwise:
      return ElementwiseDerivative(layer, static_cast<float>(x), feature);
    case LayerKind::kLinear:
    case LayerKind::kLayerNorm:
    case LayerKind::kNoOp:
      break;
  }
  return 1.0;
}

// LayerNorm's backward for one row: with x̂ the normalised input and
// gy = upstream * weight, dx = rstd * (gy - mean(gy) - x̂ * mean(gy * x̂)).
void LayerNormBackward(const Layer& layer, const float* x, size_t width, double* g) {
  double mean = 0.0;
  for (size_t i = 0; i < width; ++i) mean += x[i];
  mean /= static_cast<double>(width);
  double variance = 0.0;
  for (size_t i = 0; i < width; ++i) variance += (x[i] - mean) * (x[i] - mean);
  variance /= static_cast<double>(width);
  const double rstd = 1.0 / std::sqrt(variance + layer.eps);
  double mean_gy = 0.0, mean_gy_xhat = 0.0;
  for (size_t i = 0; i < width; ++i) {
    if (!layer.weight.empty()) g[i] *= layer.weight[i];
    mean_gy += g[i];
    mean_gy_xhat += g[i] * (x[i] - mean) * rstd;
  }
  mean_gy /= static_cast<double>(width);
  mean_gy_xhat /= static_cast<double>(width);
  for (size_t i = 0; i < width; ++i) {
    g[i] = rstd * (g[i] - mean_gy - (x[i] - mean) * rstd * mean_gy_xhat);
  }
}

// The gradient of class `target`'s score under `head` with respect to one
// row of logits, in double.
void HeadBackward(Head head, const float* logits, size_t width, int target, double* g) {
  std::fill(g, g + width, 0.0);
  if (width == 1) {
    // Binary: class 1 scores z (or p), class 0 scores -z (or 1 - p).
    const double sign = target == 1 ? 1.0 : -1.0;
    const double p = Sigmoid(logits[0]);
    g[0] = head == Head::kLogits ? sign : sign * p * (1.0 - p);
    return;
  }
  if (head == Head::kLogits) {
    g[target] = 1.0;
    return;
  }
  if (head == Head::kSigmoid) {
    const double p = Sigmoid(logits[target]);
    g[target] = p * (1.0 - p);
    return;
  }
  double max = logits[0];
  for (size_t j = 1; j < width; ++j) max = std::max<double>(max, logits[j]);
  double sum = 0.0;
  for (size_t j = 0; j < width; ++j) sum += std::exp(logits[j] - max);
  const double p_target = std::exp(logits[target] - max) / sum;
  for (size_t j = 0; j < width; ++j) {
    const double p = std::exp(logits[j] - max) / sum;
    const double delta = static_cast<int>(j) == target ? 1.0 : 0.0;
    // softmax: p_t (δ_tj - p_j); log_softmax: δ_tj - p_j.
    g[j] = head == Head::kSoftmax ? p_target * (delta - p) : delta - p;
  }
}

}  // namespace

absl::Status Sequential::ScoreGradients(absl::Span<const float> features, size_t rows, Head head,
                                        absl::Span<const int> targets, absl::Span<float> scores,
                                        absl::Span<double> gradients,
                                        const std::function<bool()>& stop) const {
  if (features.size() != rows * input_width_ || gradients.size() != rows * input_width_ ||
      targets.size() != rows || scores.size() != rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "got ", features.size(), " feature values, ", targets.size(), " targets, ",
        scores.size(), " scores and ", gradients.size(), " gradient values for ", rows,
        " rows of ", input_width_));
  }
  if (precision_ != Precision::kFp32) {
    return absl::FailedPreconditionError(absl::StrCat(
        "gradients are of float32 models; this one runs in ", PrecisionName(precision_)));
  }
  const int classes = static_cast<int>(ClassCount(output_width_));
  for (int target : targets) {
    if (target < 0 || target >= classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "class ", target, " is not one of the model's ", classes, " classes"));
    }
  }
  if (output_width_ == 1 && (head == Head::kSoftmax || head == Head::kLogSoftmax)) {
    return absl::InvalidArgumentError(absl::StrCat(
        HeadName(head), " of one output is always the same value: it has no gradient"));
  }
  if (rows == 0) return absl::OkStatus();

  // Every layer's output is kept for the way back: the rows of a chunk
  // hold them all within the scratch budget.
  size_t kept = 0;  // values per row: the output of every layer that runs
  size_t width = input_width_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    if (layer.kind == LayerKind::kLinear) width = layer.out_features;
    if (layer.kind == LayerKind::kLinear || (layer.Runs() && !fused_[i])) kept += width;
  }
  const size_t per_row = kept * sizeof(float) + 2 * widest_ * sizeof(double);
  const size_t chunk_rows = std::max<size_t>(1, kScratchBudgetBytes / per_row);
  std::vector<float> activations;
  std::vector<double> upstream;
  try {
    activations.resize(std::min(rows, chunk_rows) * kept);
    upstream.resize(std::min(rows, chunk_rows) * widest_ * 2);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no memory for ", std::min(rows, chunk_rows) * per_row,
        " bytes of activations and gradients"));
  }
  for (size_t first = 0; first < rows; first += chunk_rows) {
    if (first > 0 && stop && stop()) {
      return absl::CancelledError(
          absl::StrCat("the pass stopped after ", first, " of ", rows, " rows"));
    }
    const size_t count = std::min(chunk_rows, rows - first);
    ScoreGradientsChunk(features.data() + first * input_width_, count, head,
                        targets.data() + first, scores.data() + first,
                        gradients.data() + first * input_width_, activations, upstream);
  }
  return absl::OkStatus();
}

void Sequential::ScoreGradientsChunk(const float* features, size_t rows, Head head,
                                     const int* targets, float* scores, double* gradients,
                                     std::vector<float>& activations,
                                     std::vector<double>& upstream) const {
  // The layers that run, each with where its input is and how wide; a ReLU
  // fused into its Linear's kernel is part of that step.
  struct Step {
    size_t layer;
    const float* input;
    size_t in_width;
    float* output;
    size_t out_width;
  };
  std::vector<Step> steps;
  const float* current = features;
  size_t width = input_width_;
  float* free = activations.data();
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    if (layer.kind != LayerKind::kLinear && (!layer.Runs() || fused_[i])) continue;
    const size_t out_width = layer.kind == LayerKind::kLinear ? layer.out_features : width;
    float* output = free;
    free += rows * out_width;
    if (layer.kind == LayerKind::kLinear) {
      kernels_[i]->Run(current, rows, output);
    } else {
      std::copy(current, current + rows * width, output);
      RunActivation(layer, output, rows, width);
    }
    steps.push_back({i, current, width, output, out_width});
    current = output;
    width = out_width;
  }

  // The scores, as Predict() computes them, and the head's gradient.
  double* g = upstream.data();
  double* next = upstream.data() + rows * widest_;
  std::vector<float> row_scores(output_width_);
  for (size_t r = 0; r < rows; ++r) {
    const float* logits = current + r * output_width_;
    std::copy(logits, logits + output_width_, row_scores.begin());
    ApplyHead(head, output_width_, absl::MakeSpan(row_scores));
    scores[r] = ClassScore(head, row_scores, targets[r]);
    HeadBackward(head, logits, output_width_, targets[r], g + r * output_width_);
  }

  for (size_t s = steps.size(); s-- > 0;) {
    const Step& step = steps[s];
    const Layer& layer = layers_[step.layer];
    if (layer.kind == LayerKind::kLinear) {
      const bool relu = step.layer + 1 < layers_.size() && [&] {
        size_t after = step.layer + 1;
        while (after < layers_.size() && !layers_[after].Runs()) ++after;
        return after < layers_.size() && fused_[after];
      }();
      const size_t in = step.in_width, out = step.out_width;
      std::fill(next, next + rows * in, 0.0);
      // g_in = g_out W: one row of W per output, in W's own layout, read
      // once for a block of rows. Each row still adds the outputs' terms
      // in the same order whatever its block: the same bits at any batch.
      constexpr size_t kRowBlock = 8;
      for (size_t first = 0; first < rows; first += kRowBlock) {
        const size_t last = std::min(rows, first + kRowBlock);
        for (size_t o = 0; o < out; ++o) {
          const float* w = layer.weight.data() + o * in;
          for (size_t r = first; r < last; ++r) {
            const double go = relu && !(step.output[r * out + o] > 0.0f) ? 0.0 : g[r * out + o];
            if (go == 0.0) continue;
            double* g_in = next + r * in;
            for (size_t k = 0; k < in; ++k) g_in[k] += go * w[k];
          }
        }
      }
      std::swap(g, next);
      continue;
    }
    for (size_t r = 0; r < rows; ++r) {
      const float* x = step.input + r * step.in_width;
      double* g_row = g + r * step.in_width;
      if (layer.kind == LayerKind::kLayerNorm) {
        LayerNormBackward(layer, x, step.in_width, g_row);
        continue;
      }
      for (size_t k = 0; k < step.in_width; ++k) {
        g_row[k] *= ElementDerivative(layer, x[k], k);
      }
    }
  }
  std::copy(g, g + rows * input_width_, gradients);
}

}  // namespace seqserve
