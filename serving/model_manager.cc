#include "serving/model_manager.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model_file.h"
#include "serving/client_text.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace {

// Which versions stay loaded: the selected ones that are available, topped
// up (for a latest-N policy) or replaced (when none is available) by older
// available versions, so a failed new version never leaves a gap.
std::set<int64_t> VersionsToKeep(const ModelRecord& record,
                                 const std::vector<int64_t>& selected,
                                 const std::set<int64_t>& on_disk) {
  const auto& policy = record.config.version_policy();
  const bool latest = policy.policy_case() == v1::VersionPolicy::kLatest ||
                      policy.policy_case() == v1::VersionPolicy::POLICY_NOT_SET;
  const size_t wanted =
      latest ? std::max<uint32_t>(1, policy.latest().num_versions()) : selected.size();
  std::set<int64_t> keep;
  for (int64_t version : selected) {
    auto it = record.versions.find(version);
    if (it != record.versions.end() && it->second.served) keep.insert(version);
  }
  for (const auto& [version, entry] : record.versions) {  // highest first
    if ((latest && keep.size() >= wanted) || (!latest && !keep.empty())) break;
    if (entry.served && on_disk.count(version)) keep.insert(version);
  }
  return keep;
}

// A specific version policy naming versions that are not on disk.
std::string MissingPolicyVersions(const ModelRecord& record, const ModelOnDisk& model) {
  const auto& policy = record.config.version_policy();
  if (!record.config_loaded || policy.policy_case() != v1::VersionPolicy::kSpecific) {
    return "";
  }
  std::set<int64_t> on_disk;
  for (const auto& version : model.versions) on_disk.insert(version.version);
  std::set<int64_t> missing;
  for (int64_t version : policy.specific().versions()) {
    if (!on_disk.count(version)) missing.insert(version);
  }
  if (missing.empty()) return "";
  return absl::StrCat("version_policy names versions that are not on disk: ",
                      absl::StrJoin(missing, ", "));
}

std::string JoinProblems(std::initializer_list<absl::string_view> problems) {
  std::vector<absl::string_view> present;
  for (absl::string_view problem : problems) {
    if (!problem.empty()) present.push_back(problem);
  }
  // Errors quote file and directory names: ListModels needs valid UTF-8.
  return EscapeInvalidUtf8(absl::StrJoin(present, "; "));
}

}  // namespace

ModelManager::ModelManager(std::string repository, Options options)
    : repository_(std::move(repository)),
      options_(std::move(options)),
      snapshot_(std::make_shared<RepositorySnapshot>()) {}

ModelManager::~ModelManager() { StopPolling(); }

std::shared_ptr<const RepositorySnapshot> ModelManager::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return snapshot_;
}

void ModelManager::Publish(std::shared_ptr<const RepositorySnapshot> snapshot) {
  absl::MutexLock lock(&mu_);
  snapshot_ = std::move(snapshot);
}

void ModelManager::Refresh() {
  absl::MutexLock refresh_lock(&refresh_mu_);
  // It runs on the poller's and the first load's threads: nothing may end
  // the process from here; what is loaded keeps serving.
  try {
    RefreshLocked();
  } catch (const std::exception& e) {
    spdlog::error("repository {}: pass stopped: {}", repository_, e.what());
  }
}

void ModelManager::RefreshLocked() {
  auto disk = ScanRepository(repository_);
  if (!disk.ok()) {
    // Keep serving what is loaded: an unreadable directory is more likely a
    // passing problem than a request to unload everything.
    spdlog::error("{}", disk.status().ToString());
    return;
  }
  const auto old = Snapshot();
  auto next = std::make_shared<RepositorySnapshot>();

  // Loads to do once the LOADING states are visible.
  struct Load {
    std::string model;
    int64_t version;
    std::string path;
    FileStamp stamp;
  };
  std::vector<Load> loads;

  for (const ModelOnDisk& model : *disk) {
    auto found = old->models.find(model.name);
    ModelRecord record = found != old->models.end() ? found->second : ModelRecord{};
    if (model.problem != record.disk_problem && !model.problem.empty()) {
      spdlog::error("model {}: {}", model.name, model.problem);
    }
    record.disk_problem = model.problem;
    bool config_changed = false;
    // A config is read again only when its file changed: a broken one is
    // reported once, not on every poll.
    if (record.config_stamp != model.config_stamp ||
        (!record.config_loaded && record.config_error.empty())) {
      auto config = model.config_path.empty()
                        ? absl::StatusOr<v1::ModelConfig>(v1::ModelConfig())
                        : LoadModelConfig(model.config_path);
      record.config_stamp = model.config_stamp;
      if (config.ok()) {
        config_changed = record.config_loaded;
        record.config = std::move(*config);
        record.config_loaded = true;
        record.config_error.clear();
      } else {
        record.config_error = std::string(config.status().message());
        spdlog::error("model {}: {}", model.name, record.config_error);
      }
    }
    record.error = JoinProblems({record.config_error, record.disk_problem,
                                 MissingPolicyVersions(record, model)});
    if (!record.config_loaded) {  // a new model whose config does not parse
      next->models[model.name] = std::move(record);
      continue;
    }
    for (int64_t version : SelectVersions(record.config.version_policy(), model.versions)) {
      const VersionOnDisk& disk_version = *std::find_if(
          model.versions.begin(), model.versions.end(),
          [version](const VersionOnDisk& v) { return v.version == version; });
      VersionRecord& entry = record.versions[version];
      if (disk_version.model_path.empty()) {
        if (entry.error != EscapeInvalidUtf8(disk_version.problem)) {
          spdlog::error("model {} version {}: {}", model.name, version,
                        disk_version.problem);
        }
        entry.state = entry.served ? entry.state : v1::MODEL_STATE_FAILED;
        entry.error = EscapeInvalidUtf8(disk_version.problem);
        continue;
      }
      if (entry.state != v1::MODEL_STATE_UNSPECIFIED && entry.stamp == disk_version.stamp) {
        continue;  // loaded or failed from this very file already
      }
      if (!entry.served) entry.state = v1::MODEL_STATE_LOADING;
      loads.push_back({model.name, version, disk_version.model_path, disk_version.stamp});
    }
    if (config_changed) {
      // Same weights, new labels or defaults: rebuild what is served.
      std::vector<int64_t> applied;
      for (auto& [version, entry] : record.versions) {
        if (!entry.served) continue;
        auto rebuilt = MakeServedModel(model.name, version, entry.served->model,
                                       record.config);
        if (rebuilt.ok()) {
          entry.served = std::move(*rebuilt);
          applied.push_back(version);
        } else {
          record.config_error =
              absl::StrCat("config not applied: ", rebuilt.status().message());
          record.error = JoinProblems({record.config_error, record.disk_problem,
                                       MissingPolicyVersions(record, model)});
          spdlog::error("model {} version {}: {}", model.name, version, record.config_error);
        }
      }
      // Said only of the versions it reached: a refusal is its own line.
      const std::string source =
          model.config_path.empty() ? "defaults (config removed)" : model.config_path;
      if (!applied.empty()) {
        spdlog::info("model {}: config applied from {} to version{} {}", model.name, source,
                     applied.size() == 1 ? "" : "s", absl::StrJoin(applied, ", "));
      } else if (record.config_error.empty()) {
        spdlog::info("model {}: config applied from {} (no version is loaded)", model.name,
                     source);
      }
    }
    next->models[model.name] = std::move(record);
  }
  if (!loads.empty()) Publish(next);

  // Load outside every lock that readers take.
  auto loaded = std::make_shared<RepositorySnapshot>(*next);
  for (const Load& load : loads) {
    ModelRecord& record = loaded->models[load.model];
    VersionRecord& entry = record.versions[load.version];
    entry.stamp = load.stamp;
    const absl::Time load_start = absl::Now();
    auto model = LoadModelFile(load.path, options_.load);
    absl::StatusOr<std::shared_ptr<const ServedModel>> served =
        model.ok() ? MakeServedModel(load.model, load.version,
                                     std::shared_ptr<const Sequential>(std::move(*model)),
                                     record.config)
                   : model.status();
    if (options_.on_load) {
      options_.on_load(
          ModelLoadEvent{load.model, load.version, served.ok(), absl::Now() - load_start});
    }
    if (served.ok()) {
      const bool replaced = entry.served != nullptr;
      entry.served = std::move(*served);
      entry.state = v1::MODEL_STATE_AVAILABLE;
      entry.error.clear();
      spdlog::info("model {} version {} {} from {} in {:.1f} ms{}", load.model, load.version,
                   replaced ? "reloaded" : "loaded", load.path,
                   absl::ToDoubleMilliseconds(absl::Now() - load_start),
                   replaced ? ": its files changed" : "");
    } else if (entry.served) {
      entry.error = EscapeInvalidUtf8(absl::StrCat(
          "replacement failed to load, still serving the previous file: ",
          served.status().message()));
      spdlog::error("model {} version {}: {}", load.model, load.version, entry.error);
    } else {
      entry.state = v1::MODEL_STATE_FAILED;
      entry.error = EscapeInvalidUtf8(served.status().message());
      spdlog::error("model {} version {} failed to load: {}", load.model,
                    load.version, entry.error);
    }
  }

  // Settle which versions stay, and drop what left the disk or the policy.
  for (const ModelOnDisk& model : *disk) {
    ModelRecord& record = loaded->models[model.name];
    std::set<int64_t> on_disk;
    for (const auto& version : model.versions) on_disk.insert(version.version);
    const std::vector<int64_t> selected =
        SelectVersions(record.config.version_policy(), model.versions);
    const std::set<int64_t> keep = VersionsToKeep(record, selected, on_disk);
    const std::set<int64_t> selected_set(selected.begin(), selected.end());
    for (auto it = record.versions.begin(); it != record.versions.end();) {
      const bool stays = keep.count(it->first) ||
                         (selected_set.count(it->first) && !it->second.served);
      if (stays) {
        ++it;
        continue;
      }
      if (it->second.served) {
        spdlog::info("model {} version {} unloaded: {}", model.name, it->first,
                     on_disk.count(it->first)
                         ? absl::StrCat("the version policy, ",
                                        DescribeVersionPolicy(record.config.version_policy()),
                                        ", no longer selects it")
                         : std::string("its directory is gone"));
      }
      it = record.versions.erase(it);
    }
  }
  for (const auto& [name, record] : old->models) {
    if (loaded->models.count(name) == 0) {
      spdlog::info("model {} removed: its directory is gone", name);
    }
  }
  Publish(std::move(loaded));
}

void ModelManager::StartPolling(absl::Duration interval, Refreshed refreshed) {
  if (interval <= absl::ZeroDuration() || poller_.joinable()) return;
  poller_ = std::thread([this, interval, refreshed = std::move(refreshed)] {
    absl::MutexLock lock(&poll_mu_);
    while (!poll_mu_.AwaitWithTimeout(absl::Condition(&stop_polling_), interval)) {
      poll_mu_.Unlock();
      Refresh();
      if (refreshed) refreshed(*Snapshot());
      poll_mu_.Lock();
    }
  });
}

void ModelManager::StopPolling() {
  {
    absl::MutexLock lock(&poll_mu_);
    stop_polling_ = true;
  }
  if (poller_.joinable()) poller_.join();
}

absl::StatusOr<std::shared_ptr<const ServedModel>> ModelManager::Find(
    const std::string& name, int64_t version) const {
  return FindIn(*Snapshot(), name, version);
}

absl::StatusOr<std::shared_ptr<const ServedModel>> ModelManager::FindIn(
    const RepositorySnapshot& snapshot, const std::string& name, int64_t version) {
  auto model = snapshot.models.find(name);
  if (model == snapshot.models.end()) {
    // The name is the client's: quoted, never echoed as is.
    return absl::NotFoundError(
        absl::StrCat("model ", QuoteClientText(name), " is not served"));
  }
  const ModelRecord& record = model->second;
  if (version == 0) {
    bool loading = false;
    std::string error = record.error;
    for (const auto& [number, entry] : record.versions) {
      if (entry.served) return entry.served;
      loading = loading || entry.state == v1::MODEL_STATE_LOADING;
      if (error.empty()) error = entry.error;
    }
    if (loading || error.empty()) {
      return absl::UnavailableError(
          absl::StrCat("model '", name, "' has no version loaded yet"));
    }
    return absl::UnavailableError(
        absl::StrCat("model '", name, "' has no loadable version: ", error));
  }
  auto entry = record.versions.find(version);
  if (entry == record.versions.end()) {
    std::vector<int64_t> numbers;
    for (const auto& [number, unused] : record.versions) numbers.push_back(number);
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ",
                                            version, " (versions: ",
                                            absl::StrJoin(numbers, ", "), ")"));
  }
  if (entry->second.served) return entry->second.served;
  if (entry->second.state == v1::MODEL_STATE_LOADING) {
    return absl::UnavailableError(absl::StrCat(
        "version ", version, " of model '", name, "' is still loading"));
  }
  return absl::UnavailableError(absl::StrCat("version ", version, " of model '",
                                             name, "' failed to load: ",
                                             entry->second.error));
}

}  // namespace seqserve
