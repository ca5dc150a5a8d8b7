// One module of a Sequential model and the kernels that run it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace seqserve {

enum class LayerKind {
  kLinear,
  kRelu,
  kLeakyRelu,
  kTanh,
  kSigmoid,
  kElu,
  kBatchNorm,    // BatchNorm1d in eval mode: a per-feature scale and shift
  kLayerNorm,    // LayerNorm over each row
  kGelu,
  kSilu,
  kHardtanh,     // also ReLU6 (bounds 0 and 6)
  kPrelu,
  kSelu,
  kCelu,
  kSoftplus,
  kSoftsign,
  kHardSigmoid,
  kHardSwish,
  kMish,
  // Arithmetic with constants, step by step: how a normalisation written as
  // a module ((x - mean) / std) exports.
  kElementwise,
  // A module that computes nothing at inference (Dropout, Identity, a
  // Flatten of rows that are already flat): listed where the Sequential
  // has it, so indices match torch's, and never run.
  kNoOp,
};

// One step of an elementwise layer: y = x op c (or c op x), or 1 / x.
enum class ElementwiseOp { kAdd, kSub, kMul, kDiv, kReciprocal };

struct ElementwiseStep {
  ElementwiseOp op = ElementwiseOp::kAdd;
  // The constant is the left operand: c - x, c / x (Add and Mul give the
  // same bits either way round).
  bool constant_first = false;
  // One value for every feature, or one per feature; none for Reciprocal.
  std::vector<float> values;
};

// A layer as PyTorch defines it. Linear keeps torch's weight layout
// (out_features x in_features, row-major) so values copy over unchanged.
// Layers that keep the width (BatchNorm1d, LayerNorm, a PReLU with one slope
// per feature) have in_features == out_features == their feature count;
// element-wise activations have 0 there and fit any width.
struct Layer {
  LayerKind kind = LayerKind::kRelu;
  // LeakyReLU negative slope; ELU, CELU and SELU alpha; HardSigmoid alpha;
  // Hardtanh min_val; Softplus beta.
  float alpha = 0.0f;
  // SELU scale; HardSigmoid beta; Hardtanh max_val; Softplus threshold.
  float beta = 0.0f;
  float eps = 0.0f;  // BatchNorm1d and LayerNorm
  bool tanh_approximation = false;  // GELU(approximate='tanh')
  // A BatchNorm1d folded into the Linear before it: listed, runs nothing.
  bool folded = false;
  // A Linear(bias=False) whose bias comes only from a folded BatchNorm1d:
  // still described, and counted, as torch has it.
  bool bias_from_fold = false;
  int in_features = 0;
  int out_features = 0;
  // Linear: out_features * in_features. BatchNorm1d: the scale
  // weight / sqrt(running_var + eps). LayerNorm: weight (empty: all ones).
  // PReLU: one slope, or one per feature.
  std::vector<float> weight;
  // Linear: out_features or empty for no bias. BatchNorm1d: the shift
  // bias - running_mean * scale. LayerNorm: bias (empty: all zeros).
  std::vector<float> bias;
  // A Linear whose file stores it quantized (ONNX Runtime's quantize_dynamic
  // form): its int8 weights (out_features x in_features) and one scale per
  // output, which INT8 runs as they are; `weight` holds their values
  // q * scale, which FP32 runs. Empty for a float Linear.
  std::vector<int8_t> int8_weight;
  std::vector<float> int8_scales;
  // kElementwise: the steps, run in order in float32 as torch runs them
  // (never folded into one scale and shift: that would change the bits).
  std::vector<ElementwiseStep> steps;
  // kNoOp: what Describe() lists ("Dropout(p=0.3) (no-op at inference)", ...).
  std::string module;

  static Layer Linear(int in_features, int out_features,
                      std::vector<float> weight, std::vector<float> bias);
  // A Linear stored as int8 weights and a scale per output.
  static Layer QuantizedLinear(int in_features, int out_features, std::vector<int8_t> weight,
                               std::vector<float> scales, std::vector<float> bias);
  static Layer Relu();
  static Layer LeakyRelu(float negative_slope);
  static Layer Tanh();
  static Layer Sigmoid();
  static Layer Elu(float alpha);
  // torch's eval-mode batch_norm, reduced to its scale and shift as torch
  // computes them. All four vectors hold `features` values (not checked
  // here: Sequential::Create checks the result).
  static Layer BatchNorm1d(const std::vector<float>& weight,
                           const std::vector<float>& bias,
                           const std::vector<float>& running_mean,
                           const std::vector<float>& running_var, float eps);
  // `weight` and `bias` hold `features` values each, or are empty.
  static Layer LayerNorm(int features, std::vector<float> weight,
                         std::vector<float> bias, float eps);
  static Layer Gelu(bool tanh_approximation);
  static Layer Silu();
  static Layer Hardtanh(float min_val, float max_val);
  // One slope for every feature (features 0), or one per feature.
  static Layer Prelu(std::vector<float> slopes);
  // ONNX Selu's attributes; torch's constants are their defaults.
  static Layer Selu(float alpha = 1.6732632423543772848170429916717f,
                    float scale = 1.0507009873554804934193349852946f);
  static Layer Celu(float alpha);
  static Layer Softplus(float beta, float threshold);
  static Layer Softsign();
  // max(0, min(1, alpha * x + beta)); torch's Hardsigmoid is 1/6 and 1/2.
  static Layer HardSigmoid(float alpha, float beta);
  static Layer HardSwish();
  static Layer Mish();
  // Per-feature when a step holds more than one value: in_features and
  // out_features are then that count (Sequential::Create checks the rest).
  static Layer Elementwise(std::vector<ElementwiseStep> steps);
  // No-op modules. Dropout's p is shown when known (positive).
  static Layer Dropout(float p = 0.0f);
  static Layer Identity();
  static Layer Flatten();
  // A module the exporter left no node for (torch.onnx.export removes
  // Dropout and Identity): known only by the gap in the module indices.
  static Layer OmittedByExport();

  // "Linear(3, 16)", "ReLU", "LeakyReLU(0.1)", ... as PyTorch prints modules.
  std::string Describe() const;
  // Number of learnable values as torch counts them (a BatchNorm1d's
  // weight and bias, not its running statistics; an elementwise layer's
  // constants are buffers, not parameters).
  size_t ParameterCount() const;
  // Whether the layer changes values (not a folded BatchNorm1d, not a
  // no-op module).
  bool Runs() const { return !folded && kind != LayerKind::kNoOp; }
};

// Folds every BatchNorm1d that directly follows a Linear (no-op modules
// between them aside) into that Linear's weights and bias; the BatchNorm1d
// stays in the list, marked folded, so the model still describes itself as
// torch prints it.
void FoldBatchNorms(std::vector<Layer>& layers);

// One elementwise step on the value `x` of feature `feature`, in float32
// as torch computes it.
inline float ElementwiseStepValue(const ElementwiseStep& step, float x, size_t feature) {
  const float c = step.values.empty() ? 0.0f
                  : step.values.size() == 1 ? step.values[0]
                                            : step.values[feature];
  switch (step.op) {
    case ElementwiseOp::kAdd:
      return x + c;
    case ElementwiseOp::kSub:
      return step.constant_first ? c - x : x - c;
    case ElementwiseOp::kMul:
      return x * c;
    case ElementwiseOp::kDiv:
      return step.constant_first ? c / x : x / c;
    case ElementwiseOp::kReciprocal:
      return 1.0f / x;
  }
  return x;
}

// Applies a layer other than Linear in place to `rows` rows of `width`
// values.
void RunActivation(const Layer& layer, float* values, size_t rows, size_t width);

}  // namespace seqserve
