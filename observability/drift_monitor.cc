#include "observability/drift_monitor.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "serving/classify.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace {

size_t Classes(const ServedModel& served) {
  const int width = served.model->output_width();
  return static_cast<size_t>(width == 1 ? 2 : width);
}

}  // namespace

struct DriftMonitor::Entry {
  Entry(const ServedModel& served, size_t classes)
      : model(served.name),
        version(served.version),
        fixed_classes(classes),
        predicted(new std::atomic<uint64_t>[classes]),
        labels(LabelsOf(served, classes)) {
    for (size_t c = 0; c < classes; ++c) predicted[c].store(0, std::memory_order_relaxed);
  }

  // Each class's label, else its index.
  static std::vector<std::string> LabelsOf(const ServedModel& served, size_t classes) {
    std::vector<std::string> labels(classes);
    for (size_t c = 0; c < classes; ++c) {
      labels[c] = ClassLabel(served, static_cast<uint32_t>(c));
      if (labels[c].empty()) labels[c] = absl::StrCat(c);
    }
    return labels;
  }
  void Count(size_t c) {
    if (c < fixed_classes) {
      predicted[c].fetch_add(1, std::memory_order_relaxed);
    } else {
      mu.AssertHeld();
      ++more_predicted[c - fixed_classes];
    }
  }
  uint64_t Predicted(size_t c) const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return c < fixed_classes ? predicted[c].load(std::memory_order_relaxed)
                             : more_predicted[c - fixed_classes];
  }

  const std::string model;
  const int64_t version;
  mutable absl::Mutex mu;
  // Every answered row's predicted class since the version was first seen:
  // the classes it had then counted without the lock (most versions have
  // no baseline, and this is all they need), any more a reload brought
  // under it.
  const size_t fixed_classes;
  const std::unique_ptr<std::atomic<uint64_t>[]> predicted;
  std::vector<uint64_t> more_predicted ABSL_GUARDED_BY(mu);
  std::vector<std::string> labels ABSL_GUARDED_BY(mu);  // one a class
  // Whether `window` is set, for the path that takes no lock.
  std::atomic<bool> has_window{false};
  // Null when the version has no baseline.
  std::unique_ptr<DriftWindow> window ABSL_GUARDED_BY(mu);
  float threshold ABSL_GUARDED_BY(mu) = kDefaultPsiThreshold;
  size_t min_rows ABSL_GUARDED_BY(mu) = kMinRowsForPsi;
  size_t check_every ABSL_GUARDED_BY(mu) = kCheckEveryRows;
  size_t since_check ABSL_GUARDED_BY(mu) = 0;
  // Per feature, then the prediction: above the threshold at the last check.
  std::vector<bool> above ABSL_GUARDED_BY(mu);
  // One row's values and bins, reused.
  std::vector<float> values ABSL_GUARDED_BY(mu);
  std::vector<uint32_t> bins ABSL_GUARDED_BY(mu);
};

namespace {

// What the threshold checks found worth a line in the log: written after
// the version's lock is released.
struct Crossing {
  std::string what;  // "feature 'x'" or "predicted class"
  double psi = 0.0;
  bool above = false;
};

double StdDev(const DriftWindow::FeatureStats& stats) { return std::sqrt(stats.variance); }

}  // namespace

DriftMonitor::DriftMonitor() = default;
DriftMonitor::~DriftMonitor() = default;

std::shared_ptr<DriftMonitor::Entry> DriftMonitor::EntryFor(const ServedModel& served) {
  std::pair<std::string, int64_t> key(served.name, served.version);
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) return it->second;
  }
  absl::MutexLock lock(&mu_);
  auto& entry = entries_[key];
  if (entry == nullptr) entry = std::make_shared<Entry>(served, Classes(served));
  return entry;
}

void DriftMonitor::OnPayload(const PayloadRecord& record) {
  if (record.served == nullptr || record.response == nullptr) return;
  const ServedModel& served = *record.served;
  const std::shared_ptr<Entry> entry = EntryFor(served);
  const size_t classes = Classes(served);
  const v1::ClassifyResponse& response = *record.response;
  if (served.drift_baseline == nullptr && classes <= entry->fixed_classes &&
      !entry->has_window.load(std::memory_order_acquire)) {
    // Counts alone: no lock.
    for (const v1::RowResult& result : response.results()) {
      if (result.predicted_index() < classes) entry->Count(result.predicted_index());
    }
    return;
  }
  std::vector<Crossing> crossings;
  size_t window_rows = 0;
  float threshold = 0.0f;
  {
    absl::MutexLock lock(&entry->mu);
    if (entry->labels.size() < classes) {
      entry->more_predicted.resize(classes - entry->fixed_classes, 0);
      entry->labels = Entry::LabelsOf(served, classes);
    }
    // A reload of the version (a new file or config) brings a new baseline:
    // the window starts again.
    const v1::DriftBaseline* baseline = served.drift_baseline.get();
    if (baseline == nullptr) {
      entry->window.reset();
      entry->has_window.store(false, std::memory_order_release);
    } else if (entry->window == nullptr || &entry->window->baseline() != baseline) {
      const v1::DriftConfig& drift = served.config.drift();
      const uint32_t capacity = std::min(
          drift.window_rows() > 0 ? drift.window_rows() : kDefaultWindowRows, kMaxWindowRows);
      entry->window = std::make_unique<DriftWindow>(served.drift_baseline, capacity);
      entry->threshold = drift.psi_threshold() > 0.0f ? drift.psi_threshold()
                                                      : kDefaultPsiThreshold;
      entry->min_rows = std::min<size_t>(capacity, kMinRowsForPsi);
      entry->check_every = std::min(entry->min_rows, kCheckEveryRows);
      entry->since_check = 0;
      entry->above.assign(entry->window->features() + 1, false);
      entry->values.assign(entry->window->features(), 0.0f);
      entry->bins.assign(entry->window->features(), DriftWindow::kMissing);
      entry->has_window.store(true, std::memory_order_release);
    }
    const size_t rows = record.raw != nullptr
                            ? std::min<size_t>(record.raw->rows(), response.results_size())
                            : static_cast<size_t>(response.results_size());
    DriftWindow* window = record.raw != nullptr ? entry->window.get() : nullptr;
    const size_t features =
        window != nullptr ? std::min(window->features(), record.raw->features()) : 0;
    for (size_t r = 0; r < rows; ++r) {
      const uint32_t predicted = response.results(static_cast<int>(r)).predicted_index();
      if (predicted < classes) entry->Count(predicted);
      if (window == nullptr) continue;
      const RawRowsView& raw = *record.raw;
      for (size_t f = 0; f < window->features(); ++f) {
        float value = std::nanf("");
        uint32_t bin = DriftWindow::kMissing;
        if (f < features && raw.present(r, f)) {
          if (window->baseline().features(static_cast<int>(f)).categories_size() > 0) {
            bin = window->CategoryBin(f, raw.category(r, f));
          } else {
            value = raw.number(r, f);
            bin = window->NumberBin(f, value);
          }
        }
        entry->values[f] = value;
        entry->bins[f] = bin;
      }
      window->Add(entry->values.data(), entry->bins.data(), predicted);
      ++entry->since_check;
    }
    if (window != nullptr && entry->since_check >= entry->check_every &&
        window->rows() >= entry->min_rows) {
      entry->since_check = 0;
      window_rows = window->rows();
      threshold = entry->threshold;
      const bool classes_known = !window->BaselineClassCounts().empty();
      for (size_t f = 0; f < window->features() + (classes_known ? 1 : 0); ++f) {
        const bool prediction = f == window->features();
        const double psi = prediction ? window->PredictionPsi() : window->FeaturePsi(f);
        const bool above = psi > entry->threshold;
        if (above == entry->above[f]) continue;
        entry->above[f] = above;
        crossings.push_back(
            {prediction ? std::string("predicted class")
                        : absl::StrCat("feature '",
                                       window->baseline().features(static_cast<int>(f)).name(),
                                       "'"),
             psi, above});
      }
    }
  }
  for (const Crossing& crossing : crossings) {
    if (crossing.above) {
      spdlog::warn(
          "drift: model {} version {} {} PSI {:.3f} is above the threshold {:.3f} over the "
          "last {} rows",
          served.name, served.version, crossing.what, crossing.psi, threshold, window_rows);
    } else {
      spdlog::info("drift: model {} version {} {} PSI {:.3f} is back under the threshold",
                   served.name, served.version, crossing.what, crossing.psi);
    }
  }
}

void DriftMonitor::Retain(const RepositorySnapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    const auto model = snapshot.models.find(it->first.first);
    bool served = false;
    if (model != snapshot.models.end()) {
      const auto version = model->second.versions.find(it->first.second);
      served = version != model->second.versions.end() && version->second.served != nullptr;
    }
    it = served ? std::next(it) : entries_.erase(it);
  }
}

std::vector<std::shared_ptr<DriftMonitor::Entry>> DriftMonitor::Entries() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::shared_ptr<Entry>> entries;
  entries.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) entries.push_back(entry);
  return entries;
}

void DriftMonitor::WriteMetrics(ExpositionWriter& out) const {
  struct Sample {
    Labels labels;
    double value;
  };
  std::vector<Sample> predictions, window_rows, means, feature_psi, prediction_psi;
  for (const std::shared_ptr<Entry>& entry : Entries()) {
    absl::MutexLock lock(&entry->mu);
    const std::string version = absl::StrCat(entry->version);
    const Labels labels = {{"model", entry->model}, {"version", version}};
    for (size_t c = 0; c < entry->labels.size(); ++c) {
      Labels with = labels;
      with.emplace_back("label", entry->labels[c]);
      predictions.push_back({std::move(with), static_cast<double>(entry->Predicted(c))});
    }
    const DriftWindow* window = entry->window.get();
    if (window == nullptr) continue;
    window_rows.push_back({labels, static_cast<double>(window->rows())});
    const bool evaluated = window->rows() >= entry->min_rows;
    for (size_t f = 0; f < window->features(); ++f) {
      Labels with = labels;
      with.emplace_back("feature", window->baseline().features(static_cast<int>(f)).name());
      const DriftWindow::FeatureStats stats = window->Stats(f);
      if (stats.count == 0) continue;
      if (window->baseline().features(static_cast<int>(f)).edges_size() > 0) {
        means.push_back({with, stats.mean});
      }
      if (evaluated) feature_psi.push_back({std::move(with), window->FeaturePsi(f)});
    }
    if (evaluated && !window->BaselineClassCounts().empty()) {
      prediction_psi.push_back({labels, window->PredictionPsi()});
    }
  }
  out.Family("seqserve_predictions_total", "counter",
             "Answered Classify rows by predicted class (its label, else its index).");
  for (const Sample& s : predictions) {
    out.Sample("seqserve_predictions_total", s.labels, static_cast<uint64_t>(s.value));
  }
  out.Family("seqserve_drift_window_rows", "gauge",
             "Rows in the drift window of a model version with a drift baseline.");
  for (const Sample& s : window_rows) {
    out.Sample("seqserve_drift_window_rows", s.labels, static_cast<uint64_t>(s.value));
  }
  out.Family("seqserve_feature_window_mean", "gauge",
             "Mean of a numeric feature over the drift window's rows that sent it.");
  for (const Sample& s : means) out.Sample("seqserve_feature_window_mean", s.labels, s.value);
  out.Family("seqserve_feature_psi", "gauge",
             "Population stability index of a feature's drift window against its baseline; "
             "exported once the window holds min(window_rows, 500) rows.");
  for (const Sample& s : feature_psi) out.Sample("seqserve_feature_psi", s.labels, s.value);
  out.Family("seqserve_prediction_psi", "gauge",
             "Population stability index of the drift window's predicted classes against the "
             "baseline's.");
  for (const Sample& s : prediction_psi) out.Sample("seqserve_prediction_psi", s.labels, s.value);
}

std::string DriftMonitor::MetricsText() const {
  ExpositionWriter out;
  WriteMetrics(out);
  return out.text();
}

namespace {

std::vector<double> Proportions(const std::vector<double>& counts) {
  double total = 0.0;
  for (double c : counts) total += c;
  std::vector<double> out(counts.size(), 0.0);
  if (total > 0.0) {
    for (size_t i = 0; i < counts.size(); ++i) out[i] = counts[i] / total;
  }
  return out;
}

std::vector<double> Proportions(const std::vector<uint64_t>& counts) {
  return Proportions(std::vector<double>(counts.begin(), counts.end()));
}

// Bin names: "< e0", "[e0, e1)", ..., ">= eN"; categories, then "other".
std::vector<std::string> BinNames(const v1::DriftBaseline::Feature& feature) {
  std::vector<std::string> names;
  if (feature.edges_size() > 0) {
    names.push_back(absl::StrCat("< ", feature.edges(0)));
    for (int e = 1; e < feature.edges_size(); ++e) {
      names.push_back(absl::StrCat("[", feature.edges(e - 1), ", ", feature.edges(e), ")"));
    }
    names.push_back(absl::StrCat(">= ", feature.edges(feature.edges_size() - 1)));
  } else {
    names.assign(feature.categories().begin(), feature.categories().end());
    names.push_back("other");
  }
  return names;
}

}  // namespace

std::optional<std::string> DriftMonitor::ReportJson(absl::string_view model) const {
  nlohmann::json versions = nlohmann::json::array();
  for (const std::shared_ptr<Entry>& entry : Entries()) {
    if (entry->model != model) continue;
    absl::MutexLock lock(&entry->mu);
    nlohmann::json version = {{"version", entry->version}};
    nlohmann::json predictions = nlohmann::json::object();
    for (size_t c = 0; c < entry->labels.size(); ++c) {
      predictions[entry->labels[c]] = entry->Predicted(c);
    }
    version["predictions_total"] = std::move(predictions);
    const DriftWindow* window = entry->window.get();
    if (window != nullptr) {
      const bool evaluated = window->rows() >= entry->min_rows;
      nlohmann::json drift = {{"window_rows", window->rows()},
                              {"window_capacity", window->capacity()},
                              {"min_rows", entry->min_rows},
                              {"evaluated", evaluated},
                              {"psi_threshold", entry->threshold}};
      nlohmann::json features = nlohmann::json::array();
      for (size_t f = 0; f < window->features(); ++f) {
        const v1::DriftBaseline::Feature& source =
            window->baseline().features(static_cast<int>(f));
        const DriftWindow::FeatureStats stats = window->Stats(f);
        nlohmann::json feature = {
            {"name", source.name()},
            {"kind", source.edges_size() > 0 ? "numeric" : "categorical"},
            {"bins", BinNames(source)},
            {"baseline", Proportions(window->BaselineCounts(f))},
            {"window", Proportions(window->FeatureCounts(f))},
            {"count", stats.count}};
        if (source.edges_size() > 0 && stats.count > 0) {
          feature["mean"] = stats.mean;
          feature["stddev"] = StdDev(stats);
        }
        if (evaluated && stats.count > 0) feature["psi"] = window->FeaturePsi(f);
        features.push_back(std::move(feature));
      }
      drift["features"] = std::move(features);
      nlohmann::json prediction = {{"labels", entry->labels},
                                   {"baseline", Proportions(window->BaselineClassCounts())},
                                   {"window", Proportions(window->ClassCounts())}};
      if (evaluated) prediction["psi"] = window->PredictionPsi();
      // A baseline without class_counts compares no predictions.
      if (!window->BaselineClassCounts().empty()) drift["prediction"] = std::move(prediction);
      version["drift"] = std::move(drift);
    }
    versions.push_back(std::move(version));
  }
  if (versions.empty()) return std::nullopt;
  nlohmann::json report = {{"model", std::string(model)}, {"versions", std::move(versions)}};
  // Names come from configs; invalid UTF-8 is replaced rather than thrown on.
  return report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

size_t DriftMonitor::versions() const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.size();
}

size_t DriftMonitor::WindowBytes() const {
  size_t bytes = 0;
  for (const std::shared_ptr<Entry>& entry : Entries()) {
    absl::MutexLock lock(&entry->mu);
    if (entry->window != nullptr) bytes += entry->window->MemoryBytes();
  }
  return bytes;
}

}  // namespace seqserve
