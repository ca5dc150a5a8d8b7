// The quantized form ONNX Runtime's quantize_dynamic writes for a MatMul
// with constant weights: the row quantized by DynamicQuantizeLinear,
// MatMulInteger with int8 weights, Cast to float and a Mul by the product
// of the two scales. Matched as one Linear that keeps the file's int8
// weights and scales (Layer::QuantizedLinear); the bias Add after it joins
// it as for a float MatMul.
#pragma once

#include <string>

#include "core/onnx_graph.h"
#include "core/onnx_patterns.h"

namespace seqserve {

PatternResult DynamicallyQuantizedMatMul(const OnnxGraph& graph, const std::string& input);

}  // namespace seqserve
