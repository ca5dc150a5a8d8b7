// Keeps the models of a repository loaded and current.
//
// Readers take a snapshot (a shared_ptr copied under a mutex) and use it
// without locks, so a request keeps the ServedModel it started with while a
// refresh swaps in new versions. A refresh loads and checks a new version
// before it replaces anything; a version that fails to load is reported and
// never takes the place of one that serves.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/file_util.h"
#include "seqserve/v1/classifier.pb.h"
#include "serving/model_repository.h"
#include "serving/served_model.h"

namespace seqserve {

struct VersionRecord {
  v1::ModelState state = v1::MODEL_STATE_UNSPECIFIED;
  std::string error;  // for FAILED
  FileStamp stamp;  // of the file last loaded or tried
  std::shared_ptr<const ServedModel> served;  // set when AVAILABLE
};

struct ModelRecord {
  // Everything wrong with the model as a whole, for ListModels: the
  // config's error and the directory's problems.
  std::string error;
  std::string config_error;  // the config could not be read or applied
  std::string disk_problem;  // from the last scan, logged when it changes
  FileStamp config_stamp;
  v1::ModelConfig config;  // the last config that parsed
  bool config_loaded = false;
  std::map<int64_t, VersionRecord, std::greater<int64_t>> versions;  // highest first
};

// What the server hosts at one moment. Immutable once published.
struct RepositorySnapshot {
  std::map<std::string, ModelRecord> models;
};

// One attempt to load a model version's file, for metrics.
struct ModelLoadEvent {
  std::string model;
  int64_t version = 0;
  bool ok = false;
  absl::Duration duration;
};

class ModelManager {
 public:
  struct Options {
    // Told of every load attempt, on the refreshing thread; may be null.
    std::function<void(const ModelLoadEvent&)> on_load;
    // Limits every model load (max_model_bytes).
    ModelLoadOptions load;
  };

  explicit ModelManager(std::string repository, Options options = {});
  ~ModelManager();  // stops polling

  ModelManager(const ModelManager&) = delete;
  ModelManager& operator=(const ModelManager&) = delete;

  // One pass over the repository: loads new and replaced versions, applies
  // config changes, unloads what was removed. Thread-safe; passes run one at
  // a time.
  void Refresh();

  // Calls Refresh() every `interval` on a thread of its own until
  // StopPolling() or destruction, then `refreshed` (if set) with the new
  // snapshot.
  using Refreshed = std::function<void(const RepositorySnapshot&)>;
  void StartPolling(absl::Duration interval, Refreshed refreshed = nullptr);
  void StopPolling();

  // The version to answer with (0: the highest available). NOT_FOUND for an
  // unknown model or version, UNAVAILABLE while none is loaded or the asked
  // version is loading or failed.
  absl::StatusOr<std::shared_ptr<const ServedModel>> Find(
      const std::string& name, int64_t version) const;

  std::shared_ptr<const RepositorySnapshot> Snapshot() const;

  // Find() within one snapshot, for callers that also read the rest of it.
  static absl::StatusOr<std::shared_ptr<const ServedModel>> FindIn(
      const RepositorySnapshot& snapshot, const std::string& name, int64_t version);

 private:
  void Publish(std::shared_ptr<const RepositorySnapshot> snapshot);
  void RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mu_);

  const std::string repository_;
  const Options options_;
  absl::Mutex refresh_mu_;  // one Refresh at a time
  mutable absl::Mutex mu_;
  std::shared_ptr<const RepositorySnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  absl::Mutex poll_mu_;
  bool stop_polling_ ABSL_GUARDED_BY(poll_mu_) = false;
  std::thread poller_;
};

}  // namespace seqserve
