#include "serving/preprocessing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "serving/client_text.h"

namespace seqserve {
namespace {

absl::Status Invalid(const std::string& feature, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("config preprocessing of feature '", feature, "': ", problem));
}

bool Finite(std::initializer_list<float> values) {
  for (float v : values) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

// A feature's categories for a message: the first few of a long list.
std::string CategoryList(const std::vector<std::string>& categories) {
  constexpr size_t kShown = 20;
  if (categories.size() <= kShown) return absl::StrJoin(categories, ", ");
  return absl::StrCat(
      absl::StrJoin(categories.begin(), categories.begin() + kShown, ", "), ", and ",
      categories.size() - kShown, " more");
}

// What a row's value is called in a refusal.
std::string Where(size_t row, absl::string_view feature) {
  return absl::StrCat("row ", row, " feature '", feature, "'");
}

}  // namespace

std::string DescribeTransform(const v1::FeatureTransform& t) {
  std::vector<std::string> steps;
  if (t.has_clip()) {
    steps.push_back(absl::StrCat(
        "clip to ", t.clip().has_min() ? absl::StrCat("[", t.clip().min()) : "(-inf", ", ",
        t.clip().has_max() ? absl::StrCat(t.clip().max(), "]") : "inf)"));
  }
  switch (t.scaling_case()) {
    case v1::FeatureTransform::kStandardize:
      steps.push_back(
          absl::StrCat("(x - ", t.standardize().mean(), ") / ", t.standardize().std()));
      break;
    case v1::FeatureTransform::kMinMax: {
      const auto& m = t.min_max();
      steps.push_back(absl::StrCat("min_max [", m.min(), ", ", m.max(), "] to [",
                                   m.has_low() ? m.low() : 0.0f, ", ",
                                   m.has_high() ? m.high() : 1.0f, "]"));
      break;
    }
    case v1::FeatureTransform::kOneHot: {
      const auto& h = t.one_hot();
      const char* unknown = h.unknown() == v1::FeatureTransform::OneHot::UNKNOWN_ZEROS
                                ? "all zeros"
                            : h.unknown() == v1::FeatureTransform::OneHot::UNKNOWN_OTHER
                                ? "an 'other' column"
                                : "refused";
      steps.push_back(absl::StrCat("one_hot ", CategoryList({h.categories().begin(),
                                                              h.categories().end()}),
                                   " (unknown: ", unknown, ")"));
      break;
    }
    case v1::FeatureTransform::SCALING_NOT_SET:
      break;
  }
  std::string text = steps.empty() ? "as sent" : absl::StrJoin(steps, ", then ");
  switch (t.missing_case()) {
    case v1::FeatureTransform::kMissingValue:
      absl::StrAppend(&text, "; missing: ", t.missing_value());
      break;
    case v1::FeatureTransform::kMissingCategory:
      absl::StrAppend(&text, "; missing: ", QuoteClientText(t.missing_category()));
      break;
    case v1::FeatureTransform::MISSING_NOT_SET:
      absl::StrAppend(&text, "; missing: refused");
      break;
  }
  return text;
}

absl::StatusOr<std::shared_ptr<const Preprocessing>> Preprocessing::Create(
    const v1::ModelConfig& config, int model_input_width) {
  auto made = std::shared_ptr<Preprocessing>(new Preprocessing());
  Preprocessing& p = *made;
  const auto& names = config.feature_names();
  if (config.preprocessing().empty()) {
    // Every feature as sent: names when the config gives them.
    p.features_.resize(static_cast<size_t>(model_input_width));
    for (int i = 0; i < model_input_width; ++i) {
      p.features_[i].name = names.empty() ? absl::StrCat(i) : names[i];
      p.features_[i].first_column = static_cast<size_t>(i);
    }
    p.prepared_width_ = static_cast<size_t>(model_input_width);
    return made;
  }
  if (names.empty()) {
    return absl::InvalidArgumentError(
        "config preprocessing needs feature_names: each transform names its feature");
  }
  absl::flat_hash_map<std::string, int> index;
  for (int i = 0; i < names.size(); ++i) index.emplace(names[i], i);
  std::vector<const v1::FeatureTransform*> transforms(names.size(), nullptr);
  for (const v1::FeatureTransform& t : config.preprocessing()) {
    auto found = index.find(t.feature());
    if (found == index.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config preprocessing names feature ", QuoteClientText(t.feature()),
          ", which is not one of feature_names (", absl::StrJoin(names, ", "), ")"));
    }
    if (transforms[found->second] != nullptr) return Invalid(t.feature(), "given twice");
    transforms[found->second] = &t;
  }
  p.passthrough_ = false;
  p.features_.resize(names.size());
  size_t column = 0;
  for (int i = 0; i < names.size(); ++i) {
    Feature& f = p.features_[i];
    f.name = names[i];
    f.first_column = column;
    const v1::FeatureTransform* t = transforms[i];
    absl::StrAppend(&p.key_, f.name, "\n", t ? t->SerializeAsString() : "", "\n");
    if (t == nullptr) {
      ++column;
      continue;
    }
    if (t->has_clip()) {
      if (t->clip().has_min()) f.clip_min = t->clip().min();
      if (t->clip().has_max()) f.clip_max = t->clip().max();
      if (!Finite({f.clip_min.value_or(0), f.clip_max.value_or(0)})) {
        return Invalid(f.name, "clip bounds are not finite");
      }
      if (f.clip_min && f.clip_max && *f.clip_min > *f.clip_max) {
        return Invalid(f.name, absl::StrCat("clip min ", *f.clip_min, " is above max ",
                                            *f.clip_max));
      }
    }
    switch (t->scaling_case()) {
      case v1::FeatureTransform::kStandardize:
        f.scaling = Feature::Scaling::kStandardize;
        f.mean = t->standardize().mean();
        f.std = t->standardize().std();
        if (!Finite({f.mean, f.std}) || !(f.std > 0)) {
          return Invalid(f.name, "standardize needs a finite mean and a positive finite std");
        }
        break;
      case v1::FeatureTransform::kMinMax: {
        const auto& m = t->min_max();
        f.scaling = Feature::Scaling::kMinMax;
        f.min = m.min();
        f.max = m.max();
        f.low = m.has_low() ? m.low() : 0.0f;
        f.high = m.has_high() ? m.high() : 1.0f;
        if (!Finite({f.min, f.max, f.low, f.high, f.max - f.min, f.high - f.low})) {
          return Invalid(f.name, "min_max bounds are not finite");
        }
        if (!(f.min < f.max)) return Invalid(f.name, "min_max needs min below max");
        if (!(f.low < f.high)) return Invalid(f.name, "min_max needs low below high");
        break;
      }
      case v1::FeatureTransform::kOneHot: {
        const auto& h = t->one_hot();
        f.scaling = Feature::Scaling::kOneHot;
        if (t->has_clip()) return Invalid(f.name, "a one_hot feature has no clip");
        if (h.categories().empty()) return Invalid(f.name, "one_hot needs categories");
        for (const std::string& category : h.categories()) {
          if (category.empty()) return Invalid(f.name, "a one_hot category is empty");
          if (!f.category_columns.emplace(category, f.category_names.size()).second) {
            return Invalid(f.name, absl::StrCat("one_hot category ", QuoteClientText(category),
                                                " is given twice"));
          }
          f.category_names.push_back(category);
        }
        f.unknown = h.unknown() == v1::FeatureTransform::OneHot::UNKNOWN_UNSPECIFIED
                        ? v1::FeatureTransform::OneHot::UNKNOWN_ERROR
                        : h.unknown();
        f.columns = f.category_names.size() +
                    (f.unknown == v1::FeatureTransform::OneHot::UNKNOWN_OTHER ? 1 : 0);
        break;
      }
      case v1::FeatureTransform::SCALING_NOT_SET:
        break;
    }
    const bool categorical = f.scaling == Feature::Scaling::kOneHot;
    switch (t->missing_case()) {
      case v1::FeatureTransform::kMissingValue:
        if (categorical) return Invalid(f.name, "a one_hot feature's default is missing_category");
        if (!std::isfinite(t->missing_value())) {
          return Invalid(f.name, "missing_value is not finite");
        }
        f.has_missing = true;
        f.missing_value = t->missing_value();
        break;
      case v1::FeatureTransform::kMissingCategory:
        if (!categorical) return Invalid(f.name, "missing_category is for one_hot features");
        if (f.unknown == v1::FeatureTransform::OneHot::UNKNOWN_ERROR &&
            !f.category_columns.contains(t->missing_category())) {
          return Invalid(f.name, absl::StrCat("missing_category ",
                                              QuoteClientText(t->missing_category()),
                                              " is not one of its categories"));
        }
        f.has_missing = true;
        f.missing_category = t->missing_category();
        break;
      case v1::FeatureTransform::MISSING_NOT_SET:
        break;
    }
    column += f.columns;
  }
  p.prepared_width_ = column;
  if (p.prepared_width_ != static_cast<size_t>(model_input_width)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config preprocessing prepares ", p.prepared_width_, " values from ", names.size(),
        " features (one_hot counts one per category), but the model takes ", model_input_width,
        " inputs"));
  }
  return made;
}

absl::Status Preprocessing::Prepare(const RawRowsView& raw, absl::Span<float> out) const {
  const size_t width = prepared_width_;
  for (size_t r = 0; r < raw.rows(); ++r) {
    float* row = out.data() + r * width;
    for (size_t f = 0; f < features_.size(); ++f) {
      const Feature& feature = features_[f];
      absl::Status prepared =
          feature.scaling == Feature::Scaling::kOneHot
              ? PrepareCategory(feature, raw, r, f, row + feature.first_column)
              : PrepareNumber(feature, raw, r, f, row + feature.first_column);
      if (!prepared.ok()) return prepared;
    }
  }
  return absl::OkStatus();
}

absl::Status Preprocessing::PrepareNumber(const Feature& feature, const RawRowsView& raw,
                                          size_t row, size_t f, float* out) const {
  float value = raw.number(row, f);
  if (const std::string_view text = raw.category(row, f); !text.empty()) {
    if (!absl::SimpleAtof(absl::string_view(text.data(), text.size()), &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(row, feature.name), " is a number, got ",
                       QuoteClientText(absl::string_view(text.data(), text.size()))));
    }
  }
  if (std::isnan(value)) {
    if (!feature.has_missing) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(row, feature.name),
          " is missing (left out, null or NaN) and its preprocessing gives no missing_value"));
    }
    value = feature.missing_value;
  }
  if (std::isinf(value)) {
    return absl::InvalidArgumentError(absl::StrCat(Where(row, feature.name), " is Inf"));
  }
  if (feature.clip_min && value < *feature.clip_min) value = *feature.clip_min;
  if (feature.clip_max && value > *feature.clip_max) value = *feature.clip_max;
  // float32 step by step, as the same expression in PyTorch or NumPy
  // float32 computes it.
  switch (feature.scaling) {
    case Feature::Scaling::kStandardize:
      value = (value - feature.mean) / feature.std;
      break;
    case Feature::Scaling::kMinMax: {
      const float range = feature.max - feature.min, span = feature.high - feature.low;
      value = (value - feature.min) / range * span + feature.low;
      break;
    }
    default:
      break;
  }
  if (!std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(row, feature.name), " overflows its scaling (the prepared value is not finite)"));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status Preprocessing::PrepareCategory(const Feature& feature, const RawRowsView& raw,
                                            size_t row, size_t f, float* out) const {
  std::string_view text = raw.category(row, f);
  std::string number_text;
  if (text.empty()) {
    const float number = raw.number(row, f);
    if (std::isnan(number)) {
      if (!feature.has_missing) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(row, feature.name),
            " is missing (left out, null or NaN) and its preprocessing gives no "
            "missing_category"));
      }
      text = feature.missing_category;
    } else {
      // A category sent as a number: 4 is the category "4".
      number_text = absl::StrCat(number);
      text = number_text;
    }
  }
  std::fill(out, out + feature.columns, 0.0f);
  auto found = feature.category_columns.find(absl::string_view(text.data(), text.size()));
  if (found != feature.category_columns.end()) {
    out[found->second] = 1.0f;
    return absl::OkStatus();
  }
  switch (feature.unknown) {
    case v1::FeatureTransform::OneHot::UNKNOWN_ZEROS:
      return absl::OkStatus();
    case v1::FeatureTransform::OneHot::UNKNOWN_OTHER:
      out[feature.category_names.size()] = 1.0f;
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          Where(row, feature.name), " is ", QuoteClientText(absl::string_view(text.data(), text.size())),
          ", not one of its categories (", CategoryList(feature.category_names), ")"));
  }
}

}  // namespace seqserve
