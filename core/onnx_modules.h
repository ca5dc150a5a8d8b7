// The nn.Sequential module index behind each layer of an ONNX graph, read
// from node names, so the layer list can show the modules the export left
// no node for (torch.onnx.export drops Dropout and Identity) at their
// places and keep torch's indices.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/layer.h"

namespace seqserve {

// The module index a node name gives: torch 1.13's exporter names a node
// of module 3 of the Sequential "/3/Gemm", "/3/Mul_1". nullopt for any
// other name (empty, "node_Gemm_2" of today's exporter, "/net/0/Gemm" of a
// nested Sequential) and for indices above 4095 (no list grows from a name).
std::optional<int> ModuleIndexOf(const std::string& node_name);

// Collects, in chain order, the module of each layer the loader lists and
// of each node that lists nothing (Flatten, Identity, Dropout), then
// places the no-ops.
class ModuleIndices {
 public:
  // The next layer of the list, from module `module` (nullopt: unknown).
  void AddLayer(std::optional<int> module);
  // A node of `module` that adds to the previous layer (a Linear's bias).
  void AddToLastLayer(std::optional<int> module);
  // Whether the last entry is a layer (not a no-op) of `module`, the same
  // index or both unknown: a node there may add to that layer.
  bool LastIsLayerOf(std::optional<int> module) const;
  // A node that runs nothing; listed as `no_op` when indices are known.
  void AddNoOp(std::optional<int> module, Layer no_op);
  // The last layer added is the model's head (a final Sigmoid).
  void LastLayerIsHead();
  // The head node (Softmax, LogSoftmax) after the list.
  void SetHead(std::optional<int> module);

  // `layers` (the loader's list, one per AddLayer) with the no-op nodes
  // and one Layer::OmittedByExport() per missing index put in, when every
  // node gave an index and the indices rise; else `layers` unchanged.
  std::vector<Layer> Place(std::vector<Layer> layers) const;

 private:
  struct Entry {
    int module;
    std::optional<Layer> no_op;  // empty: the next layer of the list
  };
  std::vector<Entry> entries_;
  int head_ = -1;
  bool has_head_ = false;
  bool known_ = true;
};

}  // namespace seqserve
