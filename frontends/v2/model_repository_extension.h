// Triton's model repository extension (extension_model_repository.md) over
// the inference service's model control, shared by its gRPC methods
// (RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload) and its
// HTTP endpoints (/v2/repository/...). The "config" parameter of a load
// holds a seqserve.v1.ModelConfig in protobuf's JSON mapping.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference/v2/grpc_predict_v2.pb.h"
#include "serving/call.h"
#include "serving/inference_service.h"

namespace seqserve {

// The longest "config" parameter a load takes: a config is a few hundred
// bytes; this bounds what its JSON parser may build.
inline constexpr size_t kMaxLoadConfigBytes = 64 * 1024;

// A load's parameters: its "config" as a ModelConfig (nullopt without one);
// INVALID_ARGUMENT for any other parameter (a "file:<version>/<name>" the
// server would not use must not be ignored silently) or a config that is
// not a string holding a ModelConfig in JSON.
absl::StatusOr<std::optional<v1::ModelConfig>> ReadLoadParameters(
    const google::protobuf::Map<std::string, inference::ModelRepositoryParameter>& parameters);

class ModelRepositoryExtension {
 public:
  // `inference` must outlive this.
  explicit ModelRepositoryExtension(InferenceService* inference) : inference_(inference) {}

  // Every model of the repository; a version's state is READY, LOADING or
  // UNAVAILABLE (with the reason), a model not loaded has no version and
  // state UNAVAILABLE, reason "unloaded".
  absl::Status Index(const inference::RepositoryIndexRequest& request, const CallInfo& call,
                     inference::RepositoryIndexResponse* response);
  // Loads or reloads; `done` runs once the model's versions are available
  // or the load failed (what serves then is untouched).
  void Load(const inference::RepositoryModelLoadRequest& request, CallInfo call,
            InferenceService::Done done);
  absl::Status Unload(const inference::RepositoryModelUnloadRequest& request,
                      const CallInfo& call);

 private:
  InferenceService* inference_;
};

}  // namespace seqserve
