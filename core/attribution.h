// Per-feature attributions: how much each feature of a row pushed one
// class's score, by the methods Captum implements, on a Sequential model.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/head.h"
#include "core/sequential.h"

namespace seqserve {

enum class AttributionMethod {
  // |ds/dx| (Captum's Saliency, abs=True).
  kSaliency,
  // x * ds/dx (Captum's InputXGradient).
  kInputXGradient,
  // (x - b) * integral over a in [0, 1] of ds/dx at b + a (x - b), by a
  // quadrature rule (Captum's IntegratedGradients).
  kIntegratedGradients,
  // Exact Shapley values against the baseline: every coalition of features
  // evaluated (2^n passes a row), so at most kMaxShapleyFeatures features.
  kShapley,
};

// Captum's approximation methods for the integral, by Captum's names.
enum class IntegrationRule {
  kGaussLegendre,
  kRiemannLeft,
  kRiemannRight,
  kRiemannMiddle,
  // Captum's trapezoid: alphas 0 to 1, every step 1/n but the two ends 1/(2n).
  kRiemannTrapezoid,
};

inline constexpr int kMaxShapleyFeatures = 16;
inline constexpr int kDefaultIntegrationSteps = 50;
// Steps bounded so an explanation's cost stays a number of rows that fits
// the server's limits; Captum sets none. Gauss-Legendre's points cost
// O(steps^2) to find, so it stops lower.
inline constexpr int kMaxIntegrationSteps = 4096;
inline constexpr int kMaxGaussLegendreSteps = 1024;

// "saliency", "input_x_gradient", "integrated_gradients", "shapley".
absl::string_view AttributionMethodName(AttributionMethod method);
std::optional<AttributionMethod> ParseAttributionMethod(absl::string_view name);
// "gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
// "riemann_trapezoid".
absl::string_view IntegrationRuleName(IntegrationRule rule);
std::optional<IntegrationRule> ParseIntegrationRule(absl::string_view name);

// The points a in [0, 1] and weights of `steps` points of `rule`, as Captum
// computes them (Gauss-Legendre: numpy's leggauss nodes and weights, mapped
// from [-1, 1], computed once per count up to kMaxGaussLegendreSteps).
struct QuadraturePoints {
  std::vector<double> alphas;
  std::vector<double> weights;
};
QuadraturePoints Quadrature(IntegrationRule rule, int steps);

struct AttributionOptions {
  AttributionMethod method = AttributionMethod::kIntegratedGradients;
  // The score explained: the class's score under this head.
  Head head = Head::kLogits;
  IntegrationRule rule = IntegrationRule::kGaussLegendre;
  int steps = kDefaultIntegrationSteps;
  // input_width() values, or empty for zeros.
  std::vector<float> baseline;
};

// Checks the options against the model: INVALID_ARGUMENT naming what is wrong
// (steps out of range, a baseline of the wrong width or not finite, Shapley
// on more than kMaxShapleyFeatures features, a softmax head on one output).
absl::Status CheckAttributionOptions(const Sequential& model, const AttributionOptions& options);

// How many rows of model evaluations one explained row costs: 1 for the
// gradient methods, steps for integrated gradients, 2^n for Shapley (n
// features). What an explanation counts against the limits on rows.
size_t EvaluationsPerRow(const Sequential& model, const AttributionOptions& options);

struct Attributions {
  std::vector<int> predicted;   // each row's predicted class
  std::vector<int> targets;     // the explained class of each row
  std::vector<float> scores;    // its score at the row, as Classify scores it
  // Its score at the baseline (integrated gradients and Shapley).
  std::vector<float> baseline_scores;
  std::vector<double> values;   // rows x input_width(), by feature
  // Integrated gradients: sum of a row's attributions - (score - baseline
  // score), how far the rule is from the exact integral.
  std::vector<double> deltas;
};

// Explains `rows` rows of features: for row r the class targets[r], or when
// `targets` is empty the predicted class (PredictedClass on the logits at
// `threshold`). Checks the options (CheckAttributionOptions) and the targets;
// `stop` as for Sequential::Forward().
absl::StatusOr<Attributions> Attribute(const Sequential& model,
                                       absl::Span<const float> features, size_t rows,
                                       absl::Span<const int> targets,
                                       const AttributionOptions& options,
                                       float threshold = 0.5f,
                                       const std::function<bool()>& stop = nullptr);

}  // namespace seqserve
