// One module of a Sequential model and the kernels that run it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace seqserve {

enum class LayerKind { kLinear, kRelu, kLeakyRelu, kTanh, kSigmoid, kElu };

// A layer as PyTorch defines it. Linear keeps torch's weight layout
// (out_features x in_features, row-major) so values copy over unchanged.
struct Layer {
  LayerKind kind = LayerKind::kRelu;
  float alpha = 0.0f;  // LeakyReLU negative slope, ELU alpha
  int in_features = 0;  // Linear only
  int out_features = 0;  // Linear only
  std::vector<float> weight;  // Linear only: out_features * in_features
  std::vector<float> bias;  // Linear only: out_features, or empty for no bias

  static Layer Linear(int in_features, int out_features,
                      std::vector<float> weight, std::vector<float> bias);
  static Layer Relu();
  static Layer LeakyRelu(float negative_slope);
  static Layer Tanh();
  static Layer Sigmoid();
  static Layer Elu(float alpha);

  // "Linear(3, 16)", "ReLU", "LeakyReLU(0.1)", ... as PyTorch prints modules.
  std::string Describe() const;
  // Number of weights and biases.
  size_t ParameterCount() const;
};

// y = x W^T + b for `rows` rows of x, through CBLAS (sgemv for one row,
// sgemm otherwise). x and y must not overlap.
void RunLinear(const Layer& layer, const float* x, size_t rows, float* y);

// Applies an activation layer in place to `count` values.
void RunActivation(const Layer& layer, float* values, size_t count);

// Keeps OpenBLAS on the calling thread: a server runs one forward pass per
// inference thread, and BLAS threads of its own would fight them.
void UseSingleThreadedBlas();

}  // namespace seqserve
