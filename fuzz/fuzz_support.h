// What the fuzz targets share: a property check that crashes where libFuzzer
// sees it, the exercise a loaded model must survive, interesting values for
// the custom mutators, and small models built in code.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "core/head.h"
#include "core/sequential.h"

// libFuzzer's own mutator, for the custom mutators to fall back on.
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace seqserve::fuzz {

// Aborts with `what` and `status` when `ok` is false; libFuzzer then saves
// the input as a crash.
inline void Require(bool ok, const char* what,
                    const absl::Status& status = absl::OkStatus()) {
  if (ok) return;
  std::fprintf(stderr, "\nfuzz property failed: %s\n  status: %s\n", what,
               status.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}

// A loader's refusal: one of the codes its header documents, and a message
// that starts with the name it was given.
inline void RequireLoaderRefusal(const absl::Status& status,
                                 absl::string_view name) {
  Require(absl::IsInvalidArgument(status) || absl::IsUnimplemented(status) ||
              absl::IsResourceExhausted(status),
          "loader refusal has an undocumented status code", status);
  Require(absl::StartsWith(status.message(), name),
          "loader refusal does not start with the file name", status);
}

// Every head a caller may ask of `model`: softmax and log-softmax only over
// several outputs.
inline std::vector<Head> AllowedHeads(const Sequential& model) {
  std::vector<Head> heads = {Head::kLogits, Head::kSigmoid};
  if (model.output_width() > 1) {
    heads.push_back(Head::kSoftmax);
    heads.push_back(Head::kLogSoftmax);
  }
  return heads;
}

// A model that loaded must answer one row of 0.5 with every allowed head:
// OK (or RESOURCE_EXHAUSTED for scratch it cannot get), output_width()
// scores, probabilities that are NaN or in [0, 1] (never Inf or > 1), and
// log-probabilities that are NaN or at most 0.
inline void ExerciseModel(const Sequential& model) {
  const std::vector<float> row(model.input_width(), 0.5f);
  for (Head head : AllowedHeads(model)) {
    auto scores = model.Predict(row, 1, head);
    if (!scores.ok() && absl::IsResourceExhausted(scores.status())) continue;
    Require(scores.ok(), "Predict failed on a model that loaded", scores.status());
    Require(scores->size() == static_cast<size_t>(model.output_width()),
            "Predict returned the wrong number of scores");
    if (head == Head::kLogits) continue;
    for (float v : *scores) {
      if (head == Head::kLogSoftmax) {
        Require(!(v > 0.0f), "a log-probability above 0");
        continue;
      }
      Require(!(v < 0.0f || v > 1.0f), "a probability outside [0, 1]");
    }
  }
}

// Values that sit on or past the edges the loaders check.
inline int64_t InterestingInt(std::mt19937& rng) {
  static constexpr int64_t kValues[] = {
      0, 1, -1, 2, 3, 4, 7, 16, 255, 256, 65536,
      Sequential::kMaxWidth - 1, Sequential::kMaxWidth, Sequential::kMaxWidth + 1,
      int64_t{1} << 31, (int64_t{1} << 31) - 1, int64_t{1} << 32,
      std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(),
      -2, -(int64_t{1} << 31)};
  if (rng() % 3 == 0) return static_cast<int64_t>(rng() % 65) - 32;
  return kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
}

inline float InterestingFloat(std::mt19937& rng) {
  static constexpr float kValues[] = {
      0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 0.25f, 0.9999999f, 1.0000001f, 2.0f,
      1e-45f, -1e-45f, 1e-38f, 1e30f, -1e30f, 88.8f, -104.0f, 1e4f,
      std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(),
      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::quiet_NaN()};
  if (rng() % 3 == 0) return std::normal_distribution<float>(0.0f, 10.0f)(rng);
  return kValues[rng() % (sizeof(kValues) / sizeof(kValues[0]))];
}

// features -> Linear(3, 4) -> ReLU -> Linear(4, 3): three classes, softmax.
inline std::shared_ptr<const Sequential> MultiClassModel() {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(
      3, 4, {0.5f, -1.0f, 0.25f, 1.0f, 0.5f, -0.5f, -0.75f, 0.0f, 1.5f, 0.1f, 0.2f, 0.3f},
      {0.1f, -0.1f, 0.0f, 0.2f}));
  layers.push_back(Layer::Relu());
  layers.push_back(Layer::Linear(
      4, 3, {1.0f, -1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 0.25f, 1.0f, 0.0f, 0.5f, -1.5f, 0.75f},
      {0.0f, 0.1f, -0.1f}));
  auto model = Sequential::Create(3, std::move(layers), Head::kSoftmax);
  Require(model.ok(), "the multi-class fixture model does not build", model.status());
  return std::shared_ptr<const Sequential>(std::move(*model));
}

// features -> Linear(3, 2) -> Tanh -> Linear(2, 1): binary, sigmoid.
inline std::shared_ptr<const Sequential> BinaryModel() {
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(3, 2, {1.0f, 0.0f, -1.0f, 0.5f, 0.5f, 0.5f}, {0.5f, -0.5f}));
  layers.push_back(Layer::Tanh());
  layers.push_back(Layer::Linear(2, 1, {2.0f, -3.0f}, {0.25f}));
  auto model = Sequential::Create(3, std::move(layers), Head::kSigmoid);
  Require(model.ok(), "the binary fixture model does not build", model.status());
  return std::shared_ptr<const Sequential>(std::move(*model));
}

}  // namespace seqserve::fuzz
