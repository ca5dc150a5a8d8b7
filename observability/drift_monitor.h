// Drift monitoring: every answered Classify row, through the PayloadObserver
// seam, into per-version statistics compared with the version's drift
// baseline (config drift; serving/drift_baseline.h), and out as metrics, a
// JSON report for the console and a warning in the log.
//
// Per (model, version):
// - seqserve_predictions_total counts every answered row's predicted class,
//   baseline or not;
// - with a baseline, a DriftWindow over the last window_rows rows (0:
//   10000, at most kMaxWindowRows): memory fixed by the baseline and the
//   window, whatever the traffic. A value the caller left out (or sent as
//   NaN, or as an empty category) is skipped for that feature: the
//   feature's histogram and statistics cover the rows that had it.
// - PSIs are evaluated once the window holds min(window_rows,
//   kMinRowsForPsi) rows (fewer rows give noise, not drift); before that
//   no PSI series is exported. A baseline without class_counts gives no
//   PSI for the predicted class. Every kCheckEveryRows rows each PSI is
//   compared with psi_threshold (0: 0.25): rising above it logs one
//   warning, and no other until it has fallen to or below it and risen
//   again.
// Versions the repository no longer serves are forgotten (Retain()).
//
// Thread-safe: OnPayload takes a shared lock on the version map and the
// version's own mutex; scrapes copy under the same locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "observability/drift_window.h"
#include "observability/metrics.h"
#include "serving/model_manager.h"
#include "serving/payload_observer.h"

namespace seqserve {

class DriftMonitor : public PayloadObserver {
 public:
  static constexpr uint32_t kDefaultWindowRows = 10000;
  // A larger window_rows is held to this: memory stays bounded.
  static constexpr uint32_t kMaxWindowRows = 1'000'000;
  static constexpr float kDefaultPsiThreshold = 0.25f;
  static constexpr size_t kMinRowsForPsi = 500;
  static constexpr size_t kCheckEveryRows = 100;

  DriftMonitor();
  ~DriftMonitor() override;

  void OnPayload(const PayloadRecord& record) override;

  // Forgets every version the snapshot does not serve.
  void Retain(const RepositorySnapshot& snapshot);

  // Appends the drift and prediction families to a scrape.
  void WriteMetrics(ExpositionWriter& out) const;
  // The families alone, as text (what MetricsText appends).
  std::string MetricsText() const;

  // One model's versions with a baseline, as JSON for the console: per
  // feature its bins with baseline and window proportions, PSI, mean and
  // standard deviation; the predicted classes the same way. nullopt when no
  // version of the model has been seen.
  std::optional<std::string> ReportJson(absl::string_view model) const;

  // Versions held, and the bytes their windows hold (for tests of the
  // bound).
  size_t versions() const;
  size_t WindowBytes() const;

 private:
  struct Entry;
  std::shared_ptr<Entry> EntryFor(const ServedModel& served);
  std::vector<std::shared_ptr<Entry>> Entries() const;

  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, int64_t>, std::shared_ptr<Entry>> entries_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace seqserve
