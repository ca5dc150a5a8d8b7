// Keeps the models of a repository loaded and current: by polling the
// disk, or, under explicit model control, as Load and Unload calls say.
//
// Readers take a snapshot (a shared_ptr copied under a mutex) and use it
// without locks, so a request keeps the ServedModel it started with while a
// refresh swaps in new versions. A refresh loads and checks a new version
// before it replaces anything; a version that fails to load is reported and
// never takes the place of one that serves.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
  // The config came from a Load call, not from config.textproto.
  bool config_from_api = false;
  std::map<int64_t, VersionRecord, std::greater<int64_t>> versions;  // highest first
};

// Each version's state, error and the labels naming it (by label name),
// highest version first, as ListModels and model status answer them.
void FillVersionStatuses(const ModelRecord& record,
                         google::protobuf::RepeatedPtrField<v1::VersionStatus>* out);

// What the server hosts at one moment. Immutable once published.
struct RepositorySnapshot {
  std::map<std::string, ModelRecord> models;
};

// Who decides what is served.
enum class ModelControlMode {
  kPoll,      // the disk: polled for new, replaced and removed models
  kNone,      // the disk at start; nothing changes afterwards
  kExplicit,  // Load and Unload calls (and the models named at start)
};

// "poll", "none", "explicit"; nullopt for anything else.
std::optional<ModelControlMode> ParseModelControlMode(absl::string_view name);
const char* ModelControlModeName(ModelControlMode mode);

// Which version a call asks for.
struct VersionRequest {
  int64_t version = 0;  // 0: none named
  std::string label;  // empty: none named
  // The request id or the caller, when the call carries one: a traffic
  // split sends the same key to the same version.
  std::string routing_key;
};

// One line of the repository's index: a version, or a model on disk that
// has none loaded (version 0, MODEL_STATE_UNLOADED).
struct IndexEntry {
  std::string model;
  int64_t version = 0;
  v1::ModelState state = v1::MODEL_STATE_UNSPECIFIED;
  std::string reason;
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
    ModelControlMode control = ModelControlMode::kPoll;
    // Under kExplicit, the models loaded by the first Refresh(); "*" loads
    // every model on disk.
    std::vector<std::string> startup_models;
    // A Load whose config labels a version that is not available is
    // refused unless this is set (TF Serving's rule and flag).
    bool allow_labels_for_unavailable = false;
  };

  // Two constructors: a nested struct's member defaults cannot be a default
  // argument inside its own class.
  explicit ModelManager(std::string repository) : ModelManager(std::move(repository), Options()) {}
  ModelManager(std::string repository, Options options);
  ~ModelManager();  // stops polling

  ModelManager(const ModelManager&) = delete;
  ModelManager& operator=(const ModelManager&) = delete;

  // One pass over the repository: loads new and replaced versions, applies
  // config changes, unloads what was removed. Thread-safe; passes run one at
  // a time. Under kNone and kExplicit only the first pass does anything
  // (under kExplicit for the startup models); then only Load and Unload
  // change what is served.
  void Refresh();

  // Calls Refresh() every `interval` on a thread of its own until
  // StopPolling() or destruction, then `refreshed` (if set) with the new
  // snapshot. Only under kPoll; a no-op otherwise.
  using Refreshed = std::function<void(const RepositorySnapshot&)>;
  void StartPolling(absl::Duration interval, Refreshed refreshed = nullptr);
  void StopPolling();

  ModelControlMode control() const { return options_.control; }

  // Explicit model control. Load reads the model's directory (new and
  // replaced files, and its config unless `config` is given, which then
  // stands in for config.textproto until an Unload) and returns once every
  // version it selects is available or has failed: the model's versions,
  // or INVALID_ARGUMENT with the reason, what served before still serving.
  // NOT_FOUND for a model not on disk; FAILED_PRECONDITION under kPoll and
  // kNone, naming the flag. `refreshed`, if set, is told of the result.
  absl::StatusOr<v1::ModelStatus> Load(const std::string& name,
                                       const std::optional<v1::ModelConfig>& config,
                                       const Refreshed& refreshed = nullptr);
  // Stops serving a model (calls holding it finish on it); NOT_FOUND when it
  // is not loaded.
  absl::Status Unload(const std::string& name, const Refreshed& refreshed = nullptr);
  // Every model on disk, with its versions' states; `ready` keeps only the
  // versions that answer. NOT_FOUND when the repository cannot be read.
  absl::StatusOr<std::vector<IndexEntry>> Index(bool ready) const;

  // The version to answer with: the one asked by number or label, else the
  // config's traffic shares, else the highest available. NOT_FOUND for an
  // unknown model, version or label, UNAVAILABLE while none is loaded, the
  // asked version is loading or failed, or (for a model not seen yet) the
  // first pass over the repository has not ended.
  absl::StatusOr<std::shared_ptr<const ServedModel>> Find(const std::string& name,
                                                          const VersionRequest& asked) const;
  absl::StatusOr<std::shared_ptr<const ServedModel>> Find(const std::string& name,
                                                          int64_t version) const {
    return Find(name, VersionRequest{version, "", ""});
  }

  std::shared_ptr<const RepositorySnapshot> Snapshot() const;

  // Find() within one snapshot, for callers that also read the rest of it.
  static absl::StatusOr<std::shared_ptr<const ServedModel>> FindIn(
      const RepositorySnapshot& snapshot, const std::string& name,
      const VersionRequest& asked);
  static absl::StatusOr<std::shared_ptr<const ServedModel>> FindIn(
      const RepositorySnapshot& snapshot, const std::string& name, int64_t version) {
    return FindIn(snapshot, name, VersionRequest{version, "", ""});
  }

  // The version a label names in `record`'s config; NOT_FOUND naming the
  // labels there are.
  static absl::StatusOr<int64_t> VersionOfLabel(const std::string& name,
                                                const ModelRecord& record,
                                                const std::string& label);

 private:
  void Publish(std::shared_ptr<const RepositorySnapshot> snapshot);
  // `only`: the one model to look at (a Load); the others stay as they are.
  void RefreshLocked(const std::string* only) ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mu_);

  const std::string repository_;
  const Options options_;
  absl::Mutex refresh_mu_;  // one Refresh, Load or Unload at a time
  // Under kExplicit: the models loaded through the API or at start, and the
  // configs Load calls gave.
  std::set<std::string> explicit_models_ ABSL_GUARDED_BY(refresh_mu_);
  bool startup_done_ ABSL_GUARDED_BY(refresh_mu_) = false;
  // A Refresh() has ended: before, a model missing from the snapshot may
  // still be on its way (Find() says UNAVAILABLE, not NOT_FOUND).
  std::atomic<bool> first_pass_done_{false};
  std::map<std::string, v1::ModelConfig> config_overrides_ ABSL_GUARDED_BY(refresh_mu_);
  // Models whose config is read again on the next pass (a Load asked).
  std::set<std::string> reread_config_ ABSL_GUARDED_BY(refresh_mu_);
  mutable absl::Mutex mu_;
  std::shared_ptr<const RepositorySnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  absl::Mutex poll_mu_;
  bool stop_polling_ ABSL_GUARDED_BY(poll_mu_) = false;
  std::thread poller_;
};

}  // namespace seqserve
