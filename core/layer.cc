#include "core/layer.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/head.h"

namespace seqserve {

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

Layer Layer::Relu() { return Layer{}; }

Layer Layer::LeakyRelu(float negative_slope) {
  Layer layer;
  layer.kind = LayerKind::kLeakyRelu;
  layer.alpha = negative_slope;
  return layer;
}

Layer Layer::Tanh() {
  Layer layer;
  layer.kind = LayerKind::kTanh;
  return layer;
}

Layer Layer::Sigmoid() {
  Layer layer;
  layer.kind = LayerKind::kSigmoid;
  return layer;
}

Layer Layer::Elu(float alpha) {
  Layer layer;
  layer.kind = LayerKind::kElu;
  layer.alpha = alpha;
  return layer;
}

std::string Layer::Describe() const {
  switch (kind) {
    case LayerKind::kLinear:
      return absl::StrCat("Linear(", in_features, ", ", out_features,
                          bias.empty() ? ", bias=False)" : ")");
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
  }
  return "?";
}

size_t Layer::ParameterCount() const { return weight.size() + bias.size(); }

void RunLinear(const Layer& layer, const float* x, size_t rows, float* y) {
  const int in = layer.in_features;
  const int out = layer.out_features;
  float beta = 0.0f;
  if (!layer.bias.empty()) {
    // Start from the bias and let BLAS accumulate onto it, as torch's addmm.
    for (size_t r = 0; r < rows; ++r) {
      std::copy(layer.bias.begin(), layer.bias.end(), y + r * out);
    }
    beta = 1.0f;
  }
  if (rows == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f,
                layer.weight.data(), in, x, 1, beta, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                static_cast<int>(rows), out, in, 1.0f, x, in,
                layer.weight.data(), in, beta, y, out);
  }
}

void RunActivation(const Layer& layer, float* values, size_t count) {
  const float alpha = layer.alpha;
  switch (layer.kind) {
    case LayerKind::kLinear:
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
  }
}

void UseSingleThreadedBlas() { openblas_set_num_threads(1); }

}  // namespace seqserve
