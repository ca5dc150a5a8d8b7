#include "serving/model_manager.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "core/model_file.h"
#include "serving/client_text.h"
#include "serving/model_config.h"
#include "serving/version_routing.h"
#include "spdlog/spdlog.h"

namespace seqserve {
void FillVersionStatuses(const ModelRecord& record,
                         google::protobuf::RepeatedPtrField<v1::VersionStatus>* out) {
  for (const auto& [version, entry] : record.versions) {
    v1::VersionStatus* status = out->Add();
    status->set_version(version);
    status->set_state(entry.state);
    status->set_error(entry.error);
  }
  std::map<std::string, int64_t> labels(record.config.version_labels().begin(),
                                        record.config.version_labels().end());
  for (const auto& [label, version] : labels) {
    for (v1::VersionStatus& status : *out) {
      if (status.version() == version) status.add_labels(label);
    }
  }
}

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

// Labels, traffic shares and a shadow that name versions the policy does
// not select: they cannot answer, which the model's error says.
std::string RoutingProblems(const ModelRecord& record, const std::vector<int64_t>& selected,
                            bool labels_may_dangle) {
  if (!record.config_loaded) return "";
  const std::set<int64_t> served(selected.begin(), selected.end());
  std::vector<std::string> problems;
  const auto unserved = [&served](int64_t version) { return served.count(version) == 0; };
  std::map<std::string, int64_t> labels(record.config.version_labels().begin(),
                                        record.config.version_labels().end());
  for (const auto& [label, version] : labels) {
    if (unserved(version) && !labels_may_dangle) {
      problems.push_back(absl::StrCat("version label '", label, "' names version ", version,
                                      ", which the version policy does not serve"));
    }
  }
  for (const v1::TrafficShare& share : record.config.traffic()) {
    if (unserved(share.version())) {
      problems.push_back(absl::StrCat("traffic names version ", share.version(),
                                      ", which the version policy does not serve"));
    }
  }
  if (record.config.has_shadow() && unserved(record.config.shadow().version())) {
    problems.push_back(absl::StrCat("shadow version ", record.config.shadow().version(),
                                    " is not one the version policy serves"));
  }
  return absl::StrJoin(problems, "; ");
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

std::optional<ModelControlMode> ParseModelControlMode(absl::string_view name) {
  if (name == "poll") return ModelControlMode::kPoll;
  if (name == "none") return ModelControlMode::kNone;
  if (name == "explicit") return ModelControlMode::kExplicit;
  return std::nullopt;
}

const char* ModelControlModeName(ModelControlMode mode) {
  switch (mode) {
    case ModelControlMode::kPoll:
      return "poll";
    case ModelControlMode::kNone:
      return "none";
    case ModelControlMode::kExplicit:
      return "explicit";
  }
  return "poll";
}

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
    RefreshLocked(nullptr);
  } catch (const std::exception& e) {
    spdlog::error("repository {}: pass stopped: {}", repository_, e.what());
  }
  first_pass_done_ = true;
}

void ModelManager::RefreshLocked(const std::string* only) {
  // Under none and explicit control only the first pass reads the disk on
  // its own; a Load reads its model's directory.
  if (only == nullptr && options_.control != ModelControlMode::kPoll) {
    if (startup_done_) return;
  }
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

  const bool explicit_control = options_.control == ModelControlMode::kExplicit;
  // The first pass of its own (a Load may come before it).
  const bool startup = only == nullptr && !startup_done_;
  if (only == nullptr) startup_done_ = true;
  if (explicit_control && startup) {
    for (const std::string& name : options_.startup_models) {
      if (name != "*") {
        explicit_models_.insert(name);
        continue;
      }
      for (const ModelOnDisk& model : *disk) explicit_models_.insert(model.name);
    }
    for (const std::string& name : explicit_models_) {
      if (std::none_of(disk->begin(), disk->end(),
                       [&name](const ModelOnDisk& model) { return model.name == name; })) {
        spdlog::error("--load_model names model {}, which is not in {}",
                      QuoteClientText(name), repository_);
      }
    }
  }
  // The models this pass looks at.
  const auto looked_at = [&](const std::string& name) {
    if (only != nullptr) return name == *only;
    return !explicit_control || explicit_models_.count(name) > 0;
  };
  if (only != nullptr) {  // the others stay as they are
    for (const auto& [name, record] : old->models) {
      if (name != *only) next->models[name] = record;
    }
  }

  for (const ModelOnDisk& model : *disk) {
    if (!looked_at(model.name)) continue;
    auto found = old->models.find(model.name);
    ModelRecord record = found != old->models.end() ? found->second : ModelRecord{};
    if (model.problem != record.disk_problem && !model.problem.empty()) {
      spdlog::error("model {}: {}", model.name, model.problem);
    }
    record.disk_problem = model.problem;
    bool config_changed = false;
    const bool reread = reread_config_.erase(model.name) > 0;
    const auto override_config = config_overrides_.find(model.name);
    const bool from_api = override_config != config_overrides_.end();
    // A config is read again only when its file changed (or a Load asked):
    // a broken one is reported once, not on every poll.
    if (reread || from_api != record.config_from_api ||
        record.config_stamp != model.config_stamp ||
        (!record.config_loaded && record.config_error.empty())) {
      auto config = from_api ? absl::StatusOr<v1::ModelConfig>(override_config->second)
                    : model.config_path.empty()
                        ? absl::StatusOr<v1::ModelConfig>(v1::ModelConfig())
                        : LoadModelConfig(model.config_path);
      record.config_stamp = model.config_stamp;
      if (config.ok()) {
        config_changed = record.config_loaded;
        record.config = std::move(*config);
        record.config_loaded = true;
        record.config_from_api = from_api;
        record.config_error.clear();
      } else {
        record.config_error = std::string(config.status().message());
        spdlog::error("model {}: {}", model.name, record.config_error);
      }
    }
    record.error = JoinProblems(
        {record.config_error, record.disk_problem, MissingPolicyVersions(record, model),
         RoutingProblems(record, SelectVersions(record.config.version_policy(), model.versions),
                         options_.allow_labels_for_unavailable)});
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
      const std::string source = record.config_from_api  ? std::string("a load call")
                                 : model.config_path.empty() ? std::string("defaults (config removed)")
                                                             : model.config_path;
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
    if (!looked_at(model.name) || !loaded->models.count(model.name)) continue;
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

namespace {

// What keeps a model from serving as its load asked, in one line; empty
// when every version it selects is available.
std::string LoadProblems(const ModelRecord& record, bool allow_labels_for_unavailable) {
  std::vector<std::string> problems;
  if (!record.error.empty()) problems.push_back(record.error);
  for (const auto& [version, entry] : record.versions) {
    if (entry.state == v1::MODEL_STATE_FAILED || !entry.error.empty()) {
      problems.push_back(absl::StrCat("version ", version, ": ", entry.error));
    }
  }
  if (record.versions.empty() && record.error.empty()) {
    problems.push_back("no version to load");
  }
  if (!allow_labels_for_unavailable) {
    std::map<std::string, int64_t> labels(record.config.version_labels().begin(),
                                          record.config.version_labels().end());
    for (const auto& [label, version] : labels) {
      auto entry = record.versions.find(version);
      if (entry == record.versions.end() || entry->second.served == nullptr) {
        problems.push_back(absl::StrCat(
            "version label '", label, "' names version ", version,
            ", which is not available (--allow_version_labels_for_unavailable_models "
            "allows it)"));
      }
    }
  }
  return absl::StrJoin(problems, "; ");
}

v1::ModelStatus StatusOf(const std::string& name, const ModelRecord& record) {
  v1::ModelStatus status;
  status.set_name(name);
  status.set_error(record.error);
  FillVersionStatuses(record, status.mutable_versions());
  return status;
}

absl::Status RefusedUnlessExplicit(ModelControlMode mode, absl::string_view what) {
  if (mode == ModelControlMode::kExplicit) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what, " through the API needs --model_control_mode=explicit; this server runs with "
      "--model_control_mode=", ModelControlModeName(mode)));
}

}  // namespace

absl::StatusOr<v1::ModelStatus> ModelManager::Load(
    const std::string& name, const std::optional<v1::ModelConfig>& config,
    const Refreshed& refreshed) {
  if (absl::Status mode = RefusedUnlessExplicit(options_.control, "loading a model");
      !mode.ok()) {
    return mode;
  }
  if (config.has_value()) {
    if (absl::Status checked = CheckModelConfig(*config); !checked.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("config: ", checked.message()));
    }
    // A load call must not choose where the server writes or what it reads.
    if (config->has_capture() || config->has_drift()) {
      return absl::InvalidArgumentError(
          "config: capture and drift name files, so they are set in the model's "
          "config.textproto, not by a load call");
    }
  }
  absl::StatusOr<v1::ModelStatus> result;
  {
    absl::MutexLock lock(&refresh_mu_);
    const bool was_loaded = explicit_models_.count(name) > 0;
    std::optional<v1::ModelConfig> previous;
    if (auto it = config_overrides_.find(name); it != config_overrides_.end()) {
      previous = it->second;
    }
    // Puts the model's config source back as it was, after a failed load.
    const auto restore = [&] {
      if (previous.has_value()) {
        config_overrides_[name] = *previous;
      } else {
        config_overrides_.erase(name);
      }
      reread_config_.insert(name);
    };
    explicit_models_.insert(name);
    if (config.has_value()) {
      config_overrides_[name] = *config;
    } else {
      config_overrides_.erase(name);
    }
    reread_config_.insert(name);
    try {
      RefreshLocked(&name);
    } catch (const std::exception& e) {
      restore();
      return absl::InternalError(absl::StrCat("loading model ", QuoteClientText(name),
                                              " stopped: ", e.what()));
    }
    const auto snapshot = Snapshot();
    auto found = snapshot->models.find(name);
    if (found == snapshot->models.end()) {
      if (!was_loaded) explicit_models_.erase(name);
      restore();
      reread_config_.erase(name);
      result = absl::NotFoundError(absl::StrCat("model ", QuoteClientText(name),
                                                " is not in the repository"));
    } else if (std::string problems =
                   LoadProblems(found->second, options_.allow_labels_for_unavailable);
               !problems.empty()) {
      // A config of the call's that did not fit: the one before comes back,
      // with the same weights.
      if (config.has_value()) {
        restore();
        RefreshLocked(&name);
      }
      std::vector<int64_t> serving;
      for (const auto& [version, entry] : Snapshot()->models.at(name).versions) {
        if (entry.served) serving.push_back(version);
      }
      // Files named from the repository's root: the caller need not know
      // where the server keeps it.
      absl::StrReplaceAll(
          {{absl::StrCat(absl::StripSuffix(repository_, "/"), "/"), ""}}, &problems);
      result = absl::InvalidArgumentError(absl::StrCat(
          "model '", name, "' failed to load: ", problems,
          serving.empty() ? std::string("")
                          : absl::StrCat(" (still serving version",
                                         serving.size() == 1 ? " " : "s ",
                                         absl::StrJoin(serving, ", "), ")")));
    } else {
      result = StatusOf(name, found->second);
    }
  }
  if (refreshed) refreshed(*Snapshot());
  return result;
}

absl::Status ModelManager::Unload(const std::string& name, const Refreshed& refreshed) {
  if (absl::Status mode = RefusedUnlessExplicit(options_.control, "unloading a model");
      !mode.ok()) {
    return mode;
  }
  {
    absl::MutexLock lock(&refresh_mu_);
    const auto old = Snapshot();
    if (old->models.count(name) == 0) {
      return absl::NotFoundError(
          absl::StrCat("model ", QuoteClientText(name), " is not loaded"));
    }
    auto next = std::make_shared<RepositorySnapshot>(*old);
    next->models.erase(name);
    explicit_models_.erase(name);
    config_overrides_.erase(name);
    reread_config_.erase(name);
    Publish(std::move(next));
    spdlog::info("model {} unloaded: an unload call", name);
  }
  if (refreshed) refreshed(*Snapshot());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<IndexEntry>> ModelManager::Index(bool ready) const {
  auto disk = ScanRepository(repository_);
  if (!disk.ok()) return disk.status();
  const auto snapshot = Snapshot();
  std::set<std::string> names;
  for (const ModelOnDisk& model : *disk) names.insert(model.name);
  for (const auto& [name, record] : snapshot->models) names.insert(name);
  std::vector<IndexEntry> index;
  for (const std::string& name : names) {
    auto found = snapshot->models.find(name);
    if (found == snapshot->models.end() || found->second.versions.empty()) {
      if (ready) continue;
      IndexEntry entry{EscapeInvalidUtf8(name), 0, v1::MODEL_STATE_UNLOADED, ""};
      if (found != snapshot->models.end()) entry.reason = found->second.error;
      index.push_back(std::move(entry));
      continue;
    }
    for (const auto& [version, record] : found->second.versions) {
      if (ready && record.served == nullptr) continue;
      index.push_back({EscapeInvalidUtf8(name), version, record.state, record.error});
    }
  }
  return index;
}

void ModelManager::StartPolling(absl::Duration interval, Refreshed refreshed) {
  if (options_.control != ModelControlMode::kPoll) return;
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
    const std::string& name, const VersionRequest& asked) const {
  // The flag first: once it is set, the snapshot read after it is the
  // first pass's or later.
  const bool first_pass_done = first_pass_done_.load();
  const auto snapshot = Snapshot();
  if (!first_pass_done && snapshot->models.count(name) == 0) {
    // Not "not found" yet: a replica that just started may have it soon.
    return absl::UnavailableError("the server is still loading its model repository; retry");
  }
  return FindIn(*snapshot, name, asked);
}

absl::StatusOr<int64_t> ModelManager::VersionOfLabel(const std::string& name,
                                                     const ModelRecord& record,
                                                     const std::string& label) {
  auto found = record.config.version_labels().find(label);
  if (found != record.config.version_labels().end()) return found->second;
  std::set<std::string> labels;
  for (const auto& [known, version] : record.config.version_labels()) labels.insert(known);
  return absl::NotFoundError(absl::StrCat(
      "model '", name, "' has no version label ", QuoteClientText(label),
      labels.empty() ? std::string(" (it has none)")
                     : absl::StrCat(" (labels: ", absl::StrJoin(labels, ", "), ")")));
}

absl::StatusOr<std::shared_ptr<const ServedModel>> ModelManager::FindIn(
    const RepositorySnapshot& snapshot, const std::string& name, const VersionRequest& asked) {
  auto model = snapshot.models.find(name);
  if (model == snapshot.models.end()) {
    // The name is the client's: quoted, never echoed as is.
    return absl::NotFoundError(
        absl::StrCat("model ", QuoteClientText(name), " is not served"));
  }
  const ModelRecord& record = model->second;
  int64_t version = asked.version;
  if (!asked.label.empty()) {
    if (version != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("a call names version ", version, " and version label ",
                       QuoteClientText(asked.label), ": give one of them"));
    }
    auto labelled = VersionOfLabel(name, record, asked.label);
    if (!labelled.ok()) return labelled.status();
    version = *labelled;
  }
  if (version == 0 && !record.config.traffic().empty()) {
    std::set<int64_t> available;
    for (const auto& [number, entry] : record.versions) {
      if (entry.served) available.insert(number);
    }
    const int64_t chosen = ChooseShare(record.config.traffic(), available,
                                       TrafficPoint(asked.routing_key));
    if (chosen != 0) return record.versions.at(chosen).served;
  }
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
