// The ONNX forms each layer arrives in, as a table of matchers tried in
// order. A matcher looks at the nodes reading one tensor of the chain and
// returns the layers they compute: one node (Relu, BatchNormalization,
// Gelu, ...) or a window of several (GELU's Erf form, LayerNorm's
// ReduceMean chain, SiLU's Sigmoid + Mul, ...).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/layer.h"
#include "core/onnx_graph.h"

namespace seqserve {

// What a matcher found: the layers (none for Identity or Dropout), the
// nodes they replace, and the tensor that carries the chain on.
struct LayerMatch {
  std::vector<Layer> layers;
  std::vector<int> nodes;
  std::string output;
};

// nullopt: the nodes do not start this pattern. An error: they started it
// and one node does not fit (UNIMPLEMENTED naming that node: never run an
// approximation), or a constant is unreadable (INVALID_ARGUMENT).
using PatternResult = absl::StatusOr<std::optional<LayerMatch>>;

struct LayerPattern {
  const char* name;  // "GELU (Erf form)", ...
  PatternResult (*match)(const OnnxGraph& graph, const std::string& input);
};

// Every pattern, multi-node windows first, then single ops.
absl::Span<const LayerPattern> LayerPatterns();

}  // namespace seqserve
