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

// A row's classes. A model with several outputs has one class per output,
// scored by it. A model with one output is a binary classifier with two
// classes: class 0 (negative) and class 1 (positive), with probabilities
// 1 - p and p, p the sigmoid of the output; under logits they score -z and
// z (z the output: the logits whose sigmoids are 1 - p and p). Softmax and
// log-softmax of one output (always 1 and 0) are not a classifier; they
// are refused before a pass and scored here as if they were the sigmoid.

// How many classes a model with `width` outputs has: 2 for one output.
size_t ClassCount(size_t width);

// The score of class `index` (< ClassCount) of one row of `head`'s scores.
float ClassScore(Head head, absl::Span<const float> scores, int index);

// Every class of one row of `head`'s scores, in index order.
std::vector<ScoredIndex> ClassScores(Head head, absl::Span<const float> scores);

// The predicted class of one row of scores produced by `head`. Several
// outputs: the highest score (lower index on ties). One output: 1 when the
// probability p exceeds `threshold`, else 0; under logits p is the sigmoid
// of the logit, computed as the sigmoid head computes it, so both heads
// predict the same class for every row (a logit of 0, or one so small that
// its p rounds to 0.5, is class 0 at threshold 0.5).
int PredictedClass(Head head, absl::Span<const float> scores,
                   float threshold = 0.5f);

// The k best classes of one row (k clamped to the classes), best first: the
// predicted class, then the others by score, ties to the lower index. For a
// binary model the threshold decides which of the two comes first.
std::vector<ScoredIndex> RankedClasses(Head head, absl::Span<const float> scores,
                                       float threshold, size_t k);

}  // namespace seqserve
