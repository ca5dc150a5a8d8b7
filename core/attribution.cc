#include "core/attribution.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"

namespace seqserve {
namespace {

constexpr AttributionMethod kMethods[] = {
    AttributionMethod::kSaliency, AttributionMethod::kInputXGradient,
    AttributionMethod::kIntegratedGradients, AttributionMethod::kShapley};
constexpr IntegrationRule kRules[] = {
    IntegrationRule::kGaussLegendre, IntegrationRule::kRiemannLeft,
    IntegrationRule::kRiemannRight, IntegrationRule::kRiemannMiddle,
    IntegrationRule::kRiemannTrapezoid};

// Integrated gradients evaluate this many bytes of scaled rows and their
// gradients at a time, so a wide model's explanation stays bounded.
constexpr size_t kIntegrationBudgetBytes = size_t{16} << 20;

// Gauss-Legendre nodes (ascending) and weights on [-1, 1] by Newton's method
// on the Legendre polynomial, to double precision.
void GaussLegendre(int n, std::vector<double>& nodes, std::vector<double>& weights) {
  nodes.assign(n, 0.0);
  weights.assign(n, 0.0);
  for (int i = 0; i < (n + 1) / 2; ++i) {
    double z = std::cos(M_PI * (i + 0.75) / (n + 0.5));
    double derivative = 0.0;
    for (int iteration = 0; iteration < 100; ++iteration) {
      double p1 = 1.0, p2 = 0.0;
      for (int j = 1; j <= n; ++j) {
        const double p3 = p2;
        p2 = p1;
        p1 = ((2.0 * j - 1.0) * z * p2 - (j - 1.0) * p3) / j;
      }
      derivative = n * (z * p1 - p2) / (z * z - 1.0);
      const double previous = z;
      z = previous - p1 / derivative;
      // Newton converges quadratically: a step this small leaves z exact to
      // rounding (asking for less than an ulp would loop to the cap).
      if (std::fabs(z - previous) <= 4 * std::numeric_limits<double>::epsilon()) break;
    }
    nodes[i] = -z;
    nodes[n - 1 - i] = z;
    weights[i] = weights[n - 1 - i] = 2.0 / ((1.0 - z * z) * derivative * derivative);
  }
}

// Quadrature() without its per-thread memory.
QuadraturePoints ComputeQuadrature(IntegrationRule rule, int steps);

// numpy.linspace(start, stop, n).
std::vector<double> Linspace(double start, double stop, int n) {
  std::vector<double> values(n);
  const double step = (stop - start) / (n - 1);
  for (int i = 0; i < n; ++i) values[i] = start + i * step;
  values[n - 1] = stop;
  return values;
}

// Each row's score under `head` for its class in `targets`; with `repeat`,
// rows come in runs of that many that share one target.
std::vector<float> ClassScoresOf(const std::vector<float>& logits, size_t width, Head head,
                                 absl::Span<const int> targets, size_t repeat = 1) {
  std::vector<float> scores = logits;
  ApplyHead(head, width, absl::MakeSpan(scores));
  std::vector<float> chosen(logits.size() / width);
  for (size_t r = 0; r < chosen.size(); ++r) {
    chosen[r] = ClassScore(head, absl::MakeConstSpan(scores.data() + r * width, width),
                           targets[r / repeat]);
  }
  return chosen;
}

absl::Status IntegratedGradients(const Sequential& model, absl::Span<const float> features,
                                 size_t rows, const std::vector<float>& baseline,
                                 const AttributionOptions& options,
                                 const std::function<bool()>& stop, Attributions& out) {
  const size_t width = model.input_width();
  const size_t steps = static_cast<size_t>(options.steps);
  const QuadraturePoints points = Quadrature(options.rule, options.steps);
  const size_t per_row = steps * width * (sizeof(float) + sizeof(double));
  const size_t group = std::max<size_t>(1, kIntegrationBudgetBytes / per_row);
  std::vector<float> scaled, scores;
  std::vector<double> gradients;
  std::vector<int> targets;
  for (size_t first = 0; first < rows; first += group) {
    if (first > 0 && stop && stop()) {
      return absl::CancelledError(
          absl::StrCat("the explanation stopped after ", first, " of ", rows, " rows"));
    }
    const size_t count = std::min(group, rows - first);
    scaled.resize(count * steps * width);
    gradients.resize(count * steps * width);
    scores.resize(count * steps);
    targets.resize(count * steps);
    for (size_t r = 0; r < count; ++r) {
      const float* x = features.data() + (first + r) * width;
      for (size_t i = 0; i < steps; ++i) {
        float* point = scaled.data() + (r * steps + i) * width;
        for (size_t k = 0; k < width; ++k) {
          point[k] = static_cast<float>(baseline[k] + points.alphas[i] *
                                                          (double{x[k]} - baseline[k]));
        }
        targets[r * steps + i] = out.targets[first + r];
      }
    }
    if (absl::Status status = model.ScoreGradients(scaled, count * steps, options.head, targets,
                                                   absl::MakeSpan(scores),
                                                   absl::MakeSpan(gradients), stop);
        !status.ok()) {
      return status;
    }
    for (size_t r = 0; r < count; ++r) {
      const float* x = features.data() + (first + r) * width;
      double* values = out.values.data() + (first + r) * width;
      double sum = 0.0;
      for (size_t k = 0; k < width; ++k) {
        double integral = 0.0;
        for (size_t i = 0; i < steps; ++i) {
          integral += points.weights[i] * gradients[(r * steps + i) * width + k];
        }
        values[k] = (double{x[k]} - baseline[k]) * integral;
        sum += values[k];
      }
      out.deltas[first + r] =
          sum - (double{out.scores[first + r]} - out.baseline_scores[first + r]);
    }
  }
  return absl::OkStatus();
}

absl::Status Shapley(const Sequential& model, absl::Span<const float> features, size_t rows,
                     const std::vector<float>& baseline, const AttributionOptions& options,
                     const std::function<bool()>& stop, Attributions& out) {
  const size_t n = model.input_width();
  const size_t coalitions = size_t{1} << n;
  // weight[k] = k! (n - k - 1)! / n!: the share of orderings in which a
  // coalition of k features comes just before the one added.
  std::vector<double> weight(n);
  weight[0] = 1.0 / static_cast<double>(n);
  for (size_t k = 0; k + 1 < n; ++k) {
    weight[k + 1] = weight[k] * static_cast<double>(k + 1) / static_cast<double>(n - k - 1);
  }
  std::vector<float> inputs(coalitions * n);
  std::vector<float> logits(coalitions * model.output_width());
  for (size_t r = 0; r < rows; ++r) {
    if (r > 0 && stop && stop()) {
      return absl::CancelledError(
          absl::StrCat("the explanation stopped after ", r, " of ", rows, " rows"));
    }
    const float* x = features.data() + r * n;
    for (size_t mask = 0; mask < coalitions; ++mask) {
      for (size_t k = 0; k < n; ++k) {
        inputs[mask * n + k] = (mask >> k) & 1 ? x[k] : baseline[k];
      }
    }
    if (absl::Status status = model.Forward(inputs, coalitions, absl::MakeSpan(logits), stop);
        !status.ok()) {
      return status;
    }
    const std::vector<float> value = ClassScoresOf(
        logits, model.output_width(), options.head,
        absl::MakeConstSpan(out.targets.data() + r, 1), coalitions);
    double* phi = out.values.data() + r * n;
    std::fill(phi, phi + n, 0.0);
    for (size_t mask = 0; mask < coalitions; ++mask) {
      const size_t size = static_cast<size_t>(__builtin_popcountll(mask));
      for (size_t k = 0; k < n; ++k) {
        if ((mask >> k) & 1) continue;
        phi[k] += weight[size] * (double{value[mask | (size_t{1} << k)]} - value[mask]);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view AttributionMethodName(AttributionMethod method) {
  switch (method) {
    case AttributionMethod::kSaliency:
      return "saliency";
    case AttributionMethod::kInputXGradient:
      return "input_x_gradient";
    case AttributionMethod::kIntegratedGradients:
      return "integrated_gradients";
    case AttributionMethod::kShapley:
      return "shapley";
  }
  return "integrated_gradients";
}

std::optional<AttributionMethod> ParseAttributionMethod(absl::string_view name) {
  for (AttributionMethod method : kMethods) {
    if (name == AttributionMethodName(method)) return method;
  }
  return std::nullopt;
}

absl::string_view IntegrationRuleName(IntegrationRule rule) {
  switch (rule) {
    case IntegrationRule::kGaussLegendre:
      return "gausslegendre";
    case IntegrationRule::kRiemannLeft:
      return "riemann_left";
    case IntegrationRule::kRiemannRight:
      return "riemann_right";
    case IntegrationRule::kRiemannMiddle:
      return "riemann_middle";
    case IntegrationRule::kRiemannTrapezoid:
      return "riemann_trapezoid";
  }
  return "gausslegendre";
}

std::optional<IntegrationRule> ParseIntegrationRule(absl::string_view name) {
  for (IntegrationRule rule : kRules) {
    if (name == IntegrationRuleName(rule)) return rule;
  }
  return std::nullopt;
}

QuadraturePoints Quadrature(IntegrationRule rule, int steps) {
  if (rule != IntegrationRule::kGaussLegendre || steps < 1 ||
      steps > kMaxGaussLegendreSteps) {
    return ComputeQuadrature(rule, steps);
  }
  // Gauss-Legendre's points cost O(steps^2) (up to ~10 ms), more than a
  // small model's whole explanation: each count is computed once per
  // process, at most 8 MiB for all of them.
  static std::mutex mu;
  static std::vector<std::shared_ptr<const QuadraturePoints>> known(kMaxGaussLegendreSteps + 1);
  std::lock_guard<std::mutex> lock(mu);
  if (known[steps] == nullptr) {
    known[steps] = std::make_shared<const QuadraturePoints>(ComputeQuadrature(rule, steps));
  }
  return *known[steps];
}

namespace {

QuadraturePoints ComputeQuadrature(IntegrationRule rule, int steps) {
  QuadraturePoints points;
  const double n = steps;
  switch (rule) {
    case IntegrationRule::kGaussLegendre:
      GaussLegendre(steps, points.alphas, points.weights);
      for (double& alpha : points.alphas) alpha = 0.5 * (1.0 + alpha);
      for (double& weight : points.weights) weight *= 0.5;
      return points;
    case IntegrationRule::kRiemannLeft:
      points.alphas = Linspace(0.0, 1.0 - 1.0 / n, steps);
      break;
    case IntegrationRule::kRiemannRight:
      points.alphas = Linspace(1.0 / n, 1.0, steps);
      break;
    case IntegrationRule::kRiemannMiddle:
      points.alphas = Linspace(1.0 / (2.0 * n), 1.0 - 1.0 / (2.0 * n), steps);
      break;
    case IntegrationRule::kRiemannTrapezoid:
      points.alphas = Linspace(0.0, 1.0, steps);
      break;
  }
  points.weights.assign(steps, 1.0 / n);
  if (rule == IntegrationRule::kRiemannTrapezoid) {
    points.weights.front() /= 2.0;
    points.weights.back() /= 2.0;
  }
  return points;
}

}  // namespace

absl::Status CheckAttributionOptions(const Sequential& model, const AttributionOptions& options) {
  const int width = model.input_width();
  if (options.method == AttributionMethod::kIntegratedGradients) {
    const bool gauss = options.rule == IntegrationRule::kGaussLegendre;
    const int least = gauss ? 1 : 2;
    const int most = gauss ? kMaxGaussLegendreSteps : kMaxIntegrationSteps;
    if (options.steps < least || options.steps > most) {
      return absl::InvalidArgumentError(absl::StrCat(
          "steps must be ", least, " to ", most, " for ", IntegrationRuleName(options.rule),
          ", got ", options.steps, gauss ? " (a Riemann rule takes up to 4096)" : ""));
    }
  }
  if (options.method == AttributionMethod::kShapley && width > kMaxShapleyFeatures) {
    return absl::InvalidArgumentError(absl::StrCat(
        "exact Shapley values evaluate 2^n coalitions: at most ", kMaxShapleyFeatures,
        " features, and this model has ", width, "; use integrated_gradients"));
  }
  if (!options.baseline.empty()) {
    if (options.baseline.size() != static_cast<size_t>(width)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the baseline has ", options.baseline.size(), " values, the model takes ", width));
    }
    for (float value : options.baseline) {
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError("the baseline holds NaN or Inf");
      }
    }
  }
  if (model.output_width() == 1 &&
      (options.head == Head::kSoftmax || options.head == Head::kLogSoftmax)) {
    return absl::InvalidArgumentError(absl::StrCat(
        HeadName(options.head),
        " of one output is always the same value: explain logits or sigmoid"));
  }
  return absl::OkStatus();
}

size_t EvaluationsPerRow(const Sequential& model, const AttributionOptions& options) {
  switch (options.method) {
    case AttributionMethod::kSaliency:
    case AttributionMethod::kInputXGradient:
      return 1;
    case AttributionMethod::kIntegratedGradients:
      return static_cast<size_t>(std::max(options.steps, 1));
    case AttributionMethod::kShapley:
      return size_t{1} << std::min(model.input_width(), kMaxShapleyFeatures);
  }
  return 1;
}

absl::StatusOr<Attributions> Attribute(const Sequential& model,
                                       absl::Span<const float> features, size_t rows,
                                       absl::Span<const int> targets,
                                       const AttributionOptions& options, float threshold,
                                       const std::function<bool()>& stop) {
  if (absl::Status status = CheckAttributionOptions(model, options); !status.ok()) {
    return status;
  }
  const size_t width = model.input_width();
  const size_t outputs = model.output_width();
  if (features.size() != rows * width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "got ", features.size(), " feature values for ", rows, " rows of ", width));
  }
  if (!targets.empty() && targets.size() != rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("got ", targets.size(), " targets for ", rows, " rows"));
  }
  const int classes = static_cast<int>(ClassCount(outputs));
  for (int target : targets) {
    if (target < 0 || target >= classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "class ", target, " is not one of the model's ", classes, " classes"));
    }
  }
  Attributions out;
  try {
    std::vector<float> logits(rows * outputs);
    if (absl::Status status = model.Forward(features, rows, absl::MakeSpan(logits), stop);
        !status.ok()) {
      return status;
    }
    out.predicted.resize(rows);
    for (size_t r = 0; r < rows; ++r) {
      out.predicted[r] = PredictedClass(
          Head::kLogits, absl::MakeConstSpan(logits.data() + r * outputs, outputs), threshold);
    }
    if (targets.empty()) {
      out.targets = out.predicted;
    } else {
      out.targets.assign(targets.begin(), targets.end());
    }
    out.scores = ClassScoresOf(logits, outputs, options.head, out.targets);
    out.values.assign(rows * width, 0.0);

    const std::vector<float> baseline =
        options.baseline.empty() ? std::vector<float>(width, 0.0f) : options.baseline;
    if (options.method == AttributionMethod::kIntegratedGradients ||
        options.method == AttributionMethod::kShapley) {
      std::vector<float> baseline_logits(outputs);
      if (absl::Status status = model.Forward(baseline, 1, absl::MakeSpan(baseline_logits));
          !status.ok()) {
        return status;
      }
      ApplyHead(options.head, outputs, absl::MakeSpan(baseline_logits));
      out.baseline_scores.resize(rows);
      for (size_t r = 0; r < rows; ++r) {
        out.baseline_scores[r] = ClassScore(options.head, baseline_logits, out.targets[r]);
      }
    }
    switch (options.method) {
      case AttributionMethod::kSaliency:
      case AttributionMethod::kInputXGradient: {
        std::vector<float> scores(rows);
        if (absl::Status status = model.ScoreGradients(features, rows, options.head, out.targets,
                                                       absl::MakeSpan(scores),
                                                       absl::MakeSpan(out.values), stop);
            !status.ok()) {
          return status;
        }
        for (size_t i = 0; i < out.values.size(); ++i) {
          out.values[i] = options.method == AttributionMethod::kSaliency
                              ? std::fabs(out.values[i])
                              : out.values[i] * features[i];
        }
        break;
      }
      case AttributionMethod::kIntegratedGradients: {
        out.deltas.assign(rows, 0.0);
        if (absl::Status status =
                IntegratedGradients(model, features, rows, baseline, options, stop, out);
            !status.ok()) {
          return status;
        }
        break;
      }
      case AttributionMethod::kShapley:
        if (absl::Status status = Shapley(model, features, rows, baseline, options, stop, out);
            !status.ok()) {
          return status;
        }
        break;
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no memory to explain ", rows, " rows of ", width, " features"));
  }
  // A feature at 0 times a negative gradient is -0: no push either way.
  for (double& value : out.values) value += 0.0;
  return out;
}

}  // namespace seqserve
