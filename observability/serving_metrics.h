// seqserve's metrics: what every call, forward pass and model load did,
// recorded through the RequestObserver seam (so every protocol is counted
// the same way) and written in the Prometheus text format on a scrape.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "serving/inference_runner.h"
#include "observability/metrics.h"
#include "serving/model_manager.h"
#include "serving/request_observer.h"

namespace seqserve {

class ServingMetrics : public RequestObserver {
 public:
  // The label of every model name the repository does not hold: a caller
  // cannot add series by making names up.
  static constexpr const char* kUnknownModel = "_unknown";

  ServingMetrics();
  ~ServingMetrics() override;

  // RequestObserver: OnEnd records the call; cheap enough for every call
  // (one shared lock and atomic adds).
  void OnStart(const CallRecord&) override {}
  void OnEnd(const CallRecord& call) override;
  // Shadow versions' comparisons and drops (one lock per copy, off the
  // callers' path but for a drop).
  void OnShadow(const ShadowRecord& shadow) override;

  // For ModelManager::Options::on_load.
  void OnModelLoad(const ModelLoadEvent& load);

  // What only the server knows at scrape time.
  struct Gauges {
    int inflight_requests = 0;
    // The HTTP port's request bodies held, and refused for the budget.
    size_t http_body_bytes = 0;
    uint64_t http_bodies_refused = 0;
    std::vector<InferenceRunner::QueuedRows> queued_rows;
    std::shared_ptr<const RepositorySnapshot> repository;
    // The tokens file, when calls need a token from one.
    struct TokensFile {
      bool valid = true;  // the tokens in force are the file on disk
      uint64_t reload_failures = 0;
    };
    std::optional<TokensFile> tokens_file;
    // Access log lines dropped because the writer fell behind, when the
    // access log is on.
    std::optional<uint64_t> access_log_dropped_lines;
    // notAfter of the TLS certificate served, when TLS is on.
    std::optional<absl::Time> tls_certificate_expiry;
  };
  // Every metric, process_* included, in the text exposition format.
  std::string Render(const Gauges& gauges) const;

 private:
  // One (protocol, method, model, version)'s series. Looked up by a view
  // of the call's own strings: recording copies nothing.
  template <typename Text>
  struct BasicCallKey {
    Text protocol, method, model;
    int64_t version;
  };
  using CallKey = BasicCallKey<std::string>;
  using CallKeyView = BasicCallKey<absl::string_view>;
  struct CallKeyHash {
    using is_transparent = void;
    template <typename Text>
    size_t operator()(const BasicCallKey<Text>& k) const {
      return absl::HashOf(absl::string_view(k.protocol), absl::string_view(k.method),
                          absl::string_view(k.model), k.version);
    }
  };
  struct CallKeyEq {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const BasicCallKey<A>& a, const BasicCallKey<B>& b) const {
      return a.version == b.version && absl::string_view(a.protocol) == b.protocol &&
             absl::string_view(a.method) == b.method && absl::string_view(a.model) == b.model;
    }
  };
  struct CallSeries;
  CallSeries& SeriesFor(const CallRecord& call);
  CallSeries& FindOrAddSeries(const CallKeyView& key);
  void WriteShadowMetrics(ExpositionWriter& out) const;

  // Tells this instance's entries in a thread's cache from another's.
  const uint64_t id_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<CallKey, std::unique_ptr<CallSeries>, CallKeyHash, CallKeyEq> calls_
      ABSL_GUARDED_BY(mu_);
  // Loads by (model, result).
  absl::flat_hash_map<std::pair<std::string, bool>, uint64_t> loads_ ABSL_GUARDED_BY(mu_);
  // Explain calls that reached a method, by model, method and status code.
  absl::flat_hash_map<std::tuple<std::string, std::string, size_t>, uint64_t> explanations_
      ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Histogram> load_duration_;
  // Shadow comparisons by (model, served version, shadow version), and
  // drops by (model, reason).
  struct ShadowSeries;
  mutable absl::Mutex shadow_mu_;
  std::map<std::tuple<std::string, int64_t, int64_t>, std::unique_ptr<ShadowSeries>> shadows_
      ABSL_GUARDED_BY(shadow_mu_);
  std::map<std::pair<std::string, std::string>, uint64_t> shadow_drops_
      ABSL_GUARDED_BY(shadow_mu_);
};

}  // namespace seqserve
