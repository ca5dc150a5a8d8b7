// One loaded version of one model, as the server answers with it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/head.h"
#include "core/precision.h"
#include "core/sequential.h"
#include "seqserve/v1/config.pb.h"
#include "serving/preprocessing.h"

namespace seqserve {

// Immutable after creation and shared by every request that uses it: a
// reload swaps in a new ServedModel while requests in flight finish on the
// one they hold.
struct ServedModel {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<const Sequential> model;
  v1::ModelConfig config;
  Head default_head = Head::kLogits;  // config's default_output, else the graph's
  float threshold = 0.5f;  // default sigmoid threshold
  uint32_t max_request_rows = 0;  // 0: no limit of its own
  // The config's preprocessing (an identity one when it declares none):
  // callers send raw features, the model reads prepared ones.
  std::shared_ptr<const Preprocessing> preprocessing;
  // The training data's distribution (config drift's baseline_file), read
  // at load; null when the config asks for no drift statistics.
  std::shared_ptr<const v1::DriftBaseline> drift_baseline;

  // Values per row a caller sends in the model's order: one per raw
  // feature, which is the model's input width unless preprocessing
  // expands a feature (one_hot).
  size_t request_width() const { return preprocessing->raw_width(); }
};

// The API's name of a precision, and the precision a config's value asks
// for (UNSPECIFIED is `stored`, the model file's; nullopt for a value the
// API does not define).
v1::Precision ApiPrecision(Precision precision);
std::optional<Precision> ConfigPrecision(v1::Precision precision, Precision stored);

// Combines a loaded model with its config; INVALID_ARGUMENT when they do not
// fit (label count, threshold range, an unknown or softmax default output
// for a one-output model, preprocessing as Preprocessing::Create says, a
// precision the model cannot run in). A config's precision other than the
// model's rebuilds the model's kernels in it.
absl::StatusOr<std::shared_ptr<const ServedModel>> MakeServedModel(
    const std::string& name, int64_t version,
    std::shared_ptr<const Sequential> model, const v1::ModelConfig& config);

}  // namespace seqserve
