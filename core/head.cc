#include "core/head.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace seqserve {

absl::string_view HeadName(Head head) {
  switch (head) {
    case Head::kLogits:
      return "logits";
    case Head::kSigmoid:
      return "sigmoid";
    case Head::kSoftmax:
      return "softmax";
    case Head::kLogSoftmax:
      return "log_softmax";
  }
  return "logits";
}

std::optional<Head> ParseHeadName(absl::string_view name) {
  for (Head head : {Head::kLogits, Head::kSigmoid, Head::kSoftmax, Head::kLogSoftmax}) {
    if (name == HeadName(head)) return head;
  }
  return std::nullopt;
}

namespace {

// exp() of a non-positive argument only, so neither branch overflows.
inline float StableSigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

void SoftmaxRow(float* row, size_t width) {
  const float max = *std::max_element(row, row + width);
  float sum = 0.0f;
  for (size_t i = 0; i < width; ++i) {
    row[i] = std::exp(row[i] - max);
    sum += row[i];
  }
  // sum >= 1 because the maximum contributes exp(0).
  const float inv = 1.0f / sum;
  for (size_t i = 0; i < width; ++i) row[i] *= inv;
}

// torch's log_softmax: x - max - log(sum(exp(x - max))).
void LogSoftmaxRow(float* row, size_t width) {
  const float max = *std::max_element(row, row + width);
  float sum = 0.0f;
  for (size_t i = 0; i < width; ++i) sum += std::exp(row[i] - max);
  // sum >= 1, so the log is finite and never negative.
  const float log_sum = std::log(sum);
  for (size_t i = 0; i < width; ++i) row[i] = row[i] - max - log_sum;
}

}  // namespace

void ApplyHead(Head head, size_t width, absl::Span<float> values) {
  switch (head) {
    case Head::kLogits:
      return;
    case Head::kSigmoid:
      for (float& v : values) v = StableSigmoid(v);
      return;
    case Head::kSoftmax:
      if (width == 0) return;
      for (size_t start = 0; start + width <= values.size(); start += width) {
        SoftmaxRow(values.data() + start, width);
      }
      return;
    case Head::kLogSoftmax:
      if (width == 0) return;
      for (size_t start = 0; start + width <= values.size(); start += width) {
        LogSoftmaxRow(values.data() + start, width);
      }
      return;
  }
}

std::vector<ScoredIndex> TopK(absl::Span<const float> row, size_t k) {
  k = std::min(k, row.size());
  std::vector<int> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  // Higher score first, lower index first among equal scores.
  auto better = [&row](int a, int b) {
    return row[a] > row[b] || (row[a] == row[b] && a < b);
  };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
  std::vector<ScoredIndex> top;
  top.reserve(k);
  for (size_t i = 0; i < k; ++i) top.push_back({order[i], row[order[i]]});
  return top;
}

size_t ClassCount(size_t width) { return width == 1 ? 2 : width; }

float ClassScore(Head head, absl::Span<const float> scores, int index) {
  if (scores.size() != 1) return scores[index];
  if (index == 1) return scores[0];
  // 0 - z rather than -z: a logit of 0 scores +0 for both classes, never -0.
  return head == Head::kLogits ? 0.0f - scores[0] : 1.0f - scores[0];
}

std::vector<ScoredIndex> ClassScores(Head head, absl::Span<const float> scores) {
  const int count = static_cast<int>(ClassCount(scores.size()));
  std::vector<ScoredIndex> classes;
  classes.reserve(count);
  for (int i = 0; i < count; ++i) classes.push_back({i, ClassScore(head, scores, i)});
  return classes;
}

int PredictedClass(Head head, absl::Span<const float> scores, float threshold) {
  if (scores.size() == 1) {
    const float p = head == Head::kLogits ? StableSigmoid(scores[0]) : scores[0];
    return p > threshold ? 1 : 0;
  }
  if (scores.empty()) return 0;
  return TopK(scores, 1)[0].index;
}

std::vector<ScoredIndex> RankedClasses(Head head, absl::Span<const float> scores,
                                       float threshold, size_t k) {
  if (scores.size() != 1) return TopK(scores, k);
  const int predicted = PredictedClass(head, scores, threshold);
  std::vector<ScoredIndex> ranked;
  for (int index : {predicted, 1 - predicted}) {
    if (ranked.size() == k) break;
    ranked.push_back({index, ClassScore(head, scores, index)});
  }
  return ranked;
}

}  // namespace seqserve
