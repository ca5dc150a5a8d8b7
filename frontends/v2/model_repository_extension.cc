#include "frontends/v2/model_repository_extension.h"

#include <google/protobuf/util/json_util.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "serving/client_text.h"

namespace seqserve {
namespace {

using inference::ModelRepositoryParameter;

// Triton's words for a version's state.
const char* TritonState(v1::ModelState state) {
  switch (state) {
    case v1::MODEL_STATE_AVAILABLE: return "READY";
    case v1::MODEL_STATE_LOADING: return "LOADING";
    default: return "UNAVAILABLE";
  }
}

}  // namespace

absl::StatusOr<std::optional<v1::ModelConfig>> ReadLoadParameters(
    const google::protobuf::Map<std::string, ModelRepositoryParameter>& parameters) {
  std::optional<v1::ModelConfig> config;
  for (const auto& [key, value] : parameters) {
    if (key != "config") {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter ", QuoteClientText(key),
          " is not supported: a load takes only \"config\" (a seqserve.v1.ModelConfig in JSON)"));
    }
    if (value.parameter_choice_case() != ModelRepositoryParameter::kStringParam) {
      return absl::InvalidArgumentError("parameter \"config\" must be a string");
    }
    const std::string& json = value.string_param();
    if (json.size() > kMaxLoadConfigBytes) {
      return absl::InvalidArgumentError(absl::StrCat("parameter \"config\" is over ",
                                                     kMaxLoadConfigBytes, " bytes"));
    }
    v1::ModelConfig parsed;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    const auto status = google::protobuf::util::JsonStringToMessage(json, &parsed, options);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter \"config\" is not a seqserve.v1.ModelConfig in JSON: ",
                       EscapeInvalidUtf8(std::string(status.message()))));
    }
    config = std::move(parsed);
  }
  return config;
}

absl::Status ModelRepositoryExtension::Index(const inference::RepositoryIndexRequest& request,
                                             const CallInfo& call,
                                             inference::RepositoryIndexResponse* response) {
  v1::RepositoryIndexResponse index;
  const absl::Status status = inference_->RepositoryIndex(request.ready(), call, &index);
  if (!status.ok()) return status;
  for (const v1::RepositoryIndexResponse::Entry& entry : index.entries()) {
    auto* model = response->add_models();
    model->set_name(entry.model());
    if (entry.version() == 0) {
      // As Triton lists a model it does not serve.
      model->set_state("UNAVAILABLE");
      model->set_reason(entry.reason().empty() ? "unloaded" : entry.reason());
      continue;
    }
    model->set_version(absl::StrCat(entry.version()));
    model->set_state(TritonState(entry.state()));
    model->set_reason(entry.reason());
  }
  return absl::OkStatus();
}

void ModelRepositoryExtension::Load(const inference::RepositoryModelLoadRequest& request,
                                    CallInfo call, InferenceService::Done done) {
  auto config = ReadLoadParameters(request.parameters());
  if (!config.ok()) {
    return std::move(done)(inference_->Refuse(call, config.status()));
  }
  // The versions' status is seqserve's answer; Triton's is empty.
  auto status = std::make_unique<v1::ModelStatus>();
  v1::ModelStatus* raw = status.get();
  inference_->LoadModel(request.model_name(), std::move(*config), call, raw,
                        [status = std::move(status), done = std::move(done)](
                            absl::Status loaded) mutable { std::move(done)(loaded); });
}

absl::Status ModelRepositoryExtension::Unload(
    const inference::RepositoryModelUnloadRequest& request, const CallInfo& call) {
  // "unload_dependents" asks for nothing more here: a Sequential has no
  // dependent models.
  for (const auto& [key, value] : request.parameters()) {
    if (key != "unload_dependents") {
      return inference_->Refuse(
          call, absl::InvalidArgumentError(absl::StrCat(
                    "parameter ", QuoteClientText(key),
                    " is not supported: an unload takes only \"unload_dependents\"")));
    }
  }
  return inference_->UnloadModel(request.model_name(), call);
}

}  // namespace seqserve
