#include "core/onnx_modules.h"

#include <utility>

namespace seqserve {
namespace {

constexpr int kMaxModuleIndex = 4095;

}  // namespace

std::optional<int> ModuleIndexOf(const std::string& node_name) {
  // "/" digits "/" then a name without "/".
  if (node_name.size() < 4 || node_name[0] != '/') return std::nullopt;
  const size_t slash = node_name.find('/', 1);
  if (slash == std::string::npos || slash == 1 || slash + 1 == node_name.size() ||
      node_name.find('/', slash + 1) != std::string::npos) {
    return std::nullopt;
  }
  if (slash > 2 && node_name[1] == '0') return std::nullopt;  // no leading zeros
  int index = 0;
  for (size_t i = 1; i < slash; ++i) {
    const char c = node_name[i];
    if (c < '0' || c > '9') return std::nullopt;
    index = index * 10 + (c - '0');
    if (index > kMaxModuleIndex) return std::nullopt;
  }
  return index;
}

void ModuleIndices::AddLayer(std::optional<int> module) {
  known_ = known_ && module.has_value();
  entries_.push_back({module.value_or(-1), std::nullopt});
}

void ModuleIndices::AddToLastLayer(std::optional<int> module) {
  known_ = known_ && module.has_value() && !entries_.empty() && !entries_.back().no_op &&
           entries_.back().module == *module;
}

bool ModuleIndices::LastIsLayerOf(std::optional<int> module) const {
  return !entries_.empty() && !entries_.back().no_op &&
         entries_.back().module == module.value_or(-1);
}

void ModuleIndices::AddNoOp(std::optional<int> module, Layer no_op) {
  known_ = known_ && module.has_value();
  entries_.push_back({module.value_or(-1), std::move(no_op)});
}

void ModuleIndices::LastLayerIsHead() {
  known_ = known_ && !entries_.empty() && !entries_.back().no_op;
  if (!known_) return;
  SetHead(entries_.back().module);
  entries_.pop_back();
}

void ModuleIndices::SetHead(std::optional<int> module) {
  known_ = known_ && module.has_value();
  has_head_ = true;
  head_ = module.value_or(-1);
}

std::vector<Layer> ModuleIndices::Place(std::vector<Layer> layers) const {
  if (!known_) return layers;
  size_t real = 0;
  int previous = -1;
  for (const Entry& entry : entries_) {
    if (entry.module <= previous) return layers;  // not one module per step
    previous = entry.module;
    real += entry.no_op ? 0 : 1;
  }
  if (real != layers.size() || (has_head_ && head_ <= previous)) return layers;

  std::vector<Layer> placed;
  size_t next_layer = 0;
  int next_module = 0;
  auto fill_to = [&](int module) {
    for (; next_module < module; ++next_module) placed.push_back(Layer::OmittedByExport());
    next_module = module + 1;
  };
  for (const Entry& entry : entries_) {
    fill_to(entry.module);
    placed.push_back(entry.no_op ? *entry.no_op : std::move(layers[next_layer++]));
  }
  if (has_head_) fill_to(head_);
  return placed;
}

}  // namespace seqserve
