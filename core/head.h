// Heads: what a classifier returns on top of its logits.
// Pure functions on row-major float buffers; safe from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/types/span.h"

namespace seqserve {

enum class Head {
  kLogits,   // the pre-activation output of the last Linear layer
  kSigmoid,  // independent probability per output (binary when one output)
  kSoftmax,  // one distribution per row, summing to one
  kLogSoftmax,  // log of that distribution, as torch.log_softmax(dim=-1)
};

// "logits", "sigmoid", "softmax" or "log_softmax".
absl::string_view HeadName(Head head);
// Inverse of HeadName; nullopt for any other text.
std::optional<Head> ParseHeadName(absl::string_view name);

// Applies `head` in place to `values`, which holds rows of `width` floats.
// Softmax and log-softmax subtract the row maximum first, so logits in the
// thousands give the right distribution and never NaN or Inf.
void ApplyHead(Head head, size_t width, absl::Span<float> values);

// One entry of a top-k list.
struct ScoredIndex {
  int index;
  float score;
  bool operator==(const ScoredIndex& other) const {
    return index == other.index && score == other.score;
  }
};

// The k highest scores of `row`, best first; ties go to the lower index.
// k is clamped to the row width.
std::vector<ScoredIndex> TopK(absl::Span<const float> row, size_t k);

// The predicted class of one row of scores produced by `head`. Several
// outputs: the highest score (lower index on ties). One output is binary:
// 1 when the probability exceeds `threshold` (for logits: when the logit
// exceeds log(threshold / (1 - threshold))), else 0.
int PredictedClass(Head head, absl::Span<const float> scores,
                   float threshold = 0.5f);

}  // namespace seqserve
