#include "serving/drift_baseline.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/text_proto.h"
#include "serving/client_text.h"

namespace seqserve {

absl::Status CheckDriftBaseline(const v1::DriftBaseline& baseline,
                                const v1::ModelConfig& config, int classes) {
  if (config.feature_names_size() == 0) {
    return absl::InvalidArgumentError(
        "drift needs the config's feature_names: the baseline's features are matched by name");
  }
  if (baseline.features_size() != config.feature_names_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "baseline has ", baseline.features_size(), " features; the config's feature_names has ",
        config.feature_names_size()));
  }
  for (int f = 0; f < baseline.features_size(); ++f) {
    const v1::DriftBaseline::Feature& feature = baseline.features(f);
    const std::string name = EscapeInvalidUtf8(feature.name());
    if (feature.name() != config.feature_names(f)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "baseline feature ", f, " is '", name, "'; the config's feature_names has '",
          EscapeInvalidUtf8(config.feature_names(f)), "' there"));
    }
    const bool numeric = feature.edges_size() > 0;
    const bool categorical = feature.categories_size() > 0;
    if (numeric == categorical) {
      return absl::InvalidArgumentError(absl::StrCat(
          "baseline feature '", name, "' needs either edges (numeric) or categories, ",
          numeric ? "not both" : "and has neither"));
    }
    for (int e = 0; e < feature.edges_size(); ++e) {
      if (!std::isfinite(feature.edges(e))) {
        return absl::InvalidArgumentError(
            absl::StrCat("baseline feature '", name, "' edge ", e, " is not finite"));
      }
      if (e > 0 && !(feature.edges(e) > feature.edges(e - 1))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "baseline feature '", name, "' edges are not increasing at edge ", e, " (",
            feature.edges(e - 1), ", ", feature.edges(e), ")"));
      }
    }
    std::set<std::string> seen;
    for (const std::string& category : feature.categories()) {
      if (!seen.insert(category).second) {
        return absl::InvalidArgumentError(absl::StrCat("baseline feature '", name,
                                                       "' lists category '",
                                                       EscapeInvalidUtf8(category), "' twice"));
      }
    }
    const int bins = (numeric ? feature.edges_size() : feature.categories_size()) + 1;
    if (feature.counts_size() != bins) {
      return absl::InvalidArgumentError(absl::StrCat(
          "baseline feature '", name, "' has ", feature.counts_size(), " counts for ",
          numeric ? feature.edges_size() : feature.categories_size(),
          numeric ? " edges" : " categories", "; it needs ", bins));
    }
  }
  if (baseline.class_counts_size() != 0 && baseline.class_counts_size() != classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("baseline has ", baseline.class_counts_size(),
                     " class_counts; the model has ", classes, " classes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const v1::DriftBaseline>> LoadDriftBaseline(
    const v1::ModelConfig& config, int classes) {
  if (!config.has_drift()) return nullptr;
  const std::string& path = config.drift().baseline_file();
  if (path.empty()) return absl::InvalidArgumentError("config drift names no baseline_file");
  auto text = ReadFileToString(path, kMaxDriftBaselineBytes);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("drift baseline ", path, ": ", text.status().message()));
  }
  auto baseline = std::make_shared<v1::DriftBaseline>();
  if (absl::Status parsed = ParseTextProto(*text, baseline.get()); !parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("drift baseline ", path, ": ", parsed.message()));
  }
  if (absl::Status checked = CheckDriftBaseline(*baseline, config, classes); !checked.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("drift baseline ", path, ": ", checked.message()));
  }
  return std::shared_ptr<const v1::DriftBaseline>(std::move(baseline));
}

}  // namespace seqserve
