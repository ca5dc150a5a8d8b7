#include "server/classifier_service.h"


#include "server/classify.h"
#include "server/client_text.h"
#include "server/grpc_status.h"
#include "server/output_mode.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::ServerUnaryReactor* reactor,
                                 const char* method, const std::string& model,
                                 const absl::Status& status) {
  if (!status.ok()) {
    spdlog::debug("{} model={}: {}", method, QuoteClientText(model), status.ToString());
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// The caller's deadline; calls without one never expire in a queue.
absl::Time CallDeadline(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

void FillVersions(const ModelRecord& record,
                  google::protobuf::RepeatedPtrField<v1::VersionStatus>* out) {
  for (const auto& [version, entry] : record.versions) {
    v1::VersionStatus* status = out->Add();
    status->set_version(version);
    status->set_state(entry.state);
    status->set_error(entry.error);
  }
}

}  // namespace

ClassifierService::ClassifierService(const ModelManager* models,
                                     InferenceRunner* runner,
                                     const RequestLimits& limits)
    : models_(models), runner_(runner), limits_(limits) {
  SetMessageAllocatorFor_Classify(&classify_messages_);
}

grpc::ServerUnaryReactor* ClassifierService::Classify(
    grpc::CallbackServerContext* context, const v1::ClassifyRequest* request,
    v1::ClassifyResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ++calls_in_flight_;
  auto finish = [this, reactor, request](const absl::Status& status) {
    // Count down first: once finished, a shutting-down server may go away.
    --calls_in_flight_;
    return Finish(reactor, "Classify", request->model(), status);
  };
  const absl::Time deadline = CallDeadline(*context);
  if (deadline <= absl::Now()) {
    return finish(absl::DeadlineExceededError("deadline passed before the call arrived"));
  }
  auto served = models_->Find(request->model(), request->version());
  if (!served.ok()) return finish(served.status());
  auto plan = PlanClassify(*request, **served, limits_);
  if (!plan.ok()) return finish(plan.status());

  runner_->Run(*served, request->features(), plan->rows, deadline,
               [served = *served, plan = *plan, response,
                finish](absl::StatusOr<absl::Span<float>> logits) {
                 if (!logits.ok()) return finish(logits.status());
                 return finish(BuildClassifyResponse(*served, plan, *logits, response));
               });
  return reactor;
}

grpc::ServerUnaryReactor* ClassifierService::GetModelMetadata(
    grpc::CallbackServerContext* context,
    const v1::GetModelMetadataRequest* request,
    v1::GetModelMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // One snapshot: the versions listed are those of the moment that answered.
  const auto snapshot = models_->Snapshot();
  auto served = ModelManager::FindIn(*snapshot, request->model(), request->version());
  if (!served.ok()) {
    return Finish(reactor, "GetModelMetadata", request->model(), served.status());
  }
  const ServedModel& model = **served;
  response->set_model(model.name);
  response->set_version(model.version);
  response->set_description(model.config.description());
  response->set_input_width(model.model->input_width());
  response->set_output_width(model.model->output_width());
  *response->mutable_labels() = model.config.labels();
  for (const Layer& layer : model.model->layers()) {
    response->add_layers(layer.Describe());
  }
  response->set_default_output(OutputModeForHead(model.default_head));
  response->set_parameter_count(model.model->ParameterCount());
  response->set_threshold(model.threshold);
  auto record = snapshot->models.find(model.name);
  if (record != snapshot->models.end()) {
    FillVersions(record->second, response->mutable_versions());
  }
  return Finish(reactor, "GetModelMetadata", request->model(), absl::OkStatus());
}

grpc::ServerUnaryReactor* ClassifierService::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest*,
    v1::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const auto snapshot = models_->Snapshot();
  for (const auto& [name, record] : snapshot->models) {
    v1::ModelStatus* status = response->add_models();
    status->set_name(name);
    status->set_error(record.error);
    FillVersions(record, status->mutable_versions());
  }
  return Finish(reactor, "ListModels", "", absl::OkStatus());
}

}  // namespace seqserve
