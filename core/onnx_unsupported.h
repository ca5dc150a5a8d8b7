// PyTorch layers seqserve does not run, recognised by the ops their ONNX
// exports start with, so a refusal can name the layer the user wrote
// instead of only the node where the chain broke.
#pragma once

#include <optional>
#include <string>

#include "core/onnx_graph.h"

namespace seqserve {

// The PyTorch layer ("nn.Softshrink", ...) that the nodes reading `tensor`
// most likely came from, when it is one seqserve does not run; nullopt when
// they look like none of them. Looks at op types only (and a neighbour or
// two): a guess for a message, never a reason to accept or refuse.
std::optional<std::string> UnsupportedLayerAt(const OnnxGraph& graph, const std::string& tensor);

// Where the README says what to do about such a layer.
inline constexpr char kUnsupportedLayersSection[] =
    "README.md, \"Layers seqserve does not run, and what to do until it does\"";

}  // namespace seqserve
