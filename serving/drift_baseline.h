// A model's drift baseline (config drift's baseline_file): the training
// data's per-feature histograms and predicted-class counts, read and checked
// against the model at load so the drift monitor can trust its shape.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "seqserve/v1/config.pb.h"

namespace seqserve {

// Largest baseline file read: a few bins per feature.
inline constexpr uint64_t kMaxDriftBaselineBytes = 16 << 20;

// Checks a baseline against the config's feature_names (one entry per
// feature, same names, same order) and a model with `classes` classes (two
// for a one-output model, else its output width). Each feature has either
// increasing finite edges or non-empty unique categories, and one more count
// than either. class_counts has one count per class, or none (no PSI for
// the predicted class). INVALID_ARGUMENT naming the feature.
absl::Status CheckDriftBaseline(const v1::DriftBaseline& baseline,
                                const v1::ModelConfig& config, int classes);

// Reads config.drift().baseline_file (text format) and checks it as above.
// Null when the config sets no drift. INVALID_ARGUMENT naming the file.
absl::StatusOr<std::shared_ptr<const v1::DriftBaseline>> LoadDriftBaseline(
    const v1::ModelConfig& config, int classes);

}  // namespace seqserve
