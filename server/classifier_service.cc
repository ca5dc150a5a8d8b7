#include "server/classifier_service.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include "absl/strings/str_cat.h"
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

// The request's bytes as `Message`: INVALID_ARGUMENT (not gRPC's bare
// UNIMPLEMENTED or INTERNAL) when they are not one.
template <typename Message>
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, Message* message) {
  grpc::ByteBuffer shared(bytes);  // the reader needs a mutable buffer; slices are shared
  grpc::ProtoBufferReader reader(&shared);
  if (!message->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request body is not a valid ", Message::descriptor()->full_name(),
        " (truncated, invalid UTF-8 in a string, or another message)"));
  }
  return absl::OkStatus();
}

template <typename Message>
absl::Status SerializeResponse(const Message& message, grpc::ByteBuffer* bytes) {
  bool own_buffer;
  const grpc::Status status =
      grpc::SerializationTraits<Message>::Serialize(message, bytes, &own_buffer);
  if (!status.ok()) return absl::InternalError(status.error_message());
  return absl::OkStatus();
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
    : models_(models), runner_(runner), limits_(limits) {}

grpc::ServerUnaryReactor* ClassifierService::Classify(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ++calls_in_flight_;
  // Request and response live on a pooled arena until the call finishes.
  grpc::MessageHolder<v1::ClassifyRequest, v1::ClassifyResponse>* messages =
      classify_messages_.AllocateMessages();
  const v1::ClassifyRequest* request = messages->request();
  auto finish = [this, reactor, messages, response_bytes](absl::Status status) {
    if (status.ok()) status = SerializeResponse(*messages->response(), response_bytes);
    if (!status.ok()) {
      spdlog::debug("Classify model={}: {}", QuoteClientText(messages->request()->model()),
                    status.ToString());
    }
    messages->Release();
    // Count down first: once finished, a shutting-down server may go away.
    --calls_in_flight_;
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  };
  if (absl::Status parsed = ParseRequest(*request_bytes, messages->request()); !parsed.ok()) {
    return finish(parsed);
  }
  const absl::Time deadline = CallDeadline(*context);
  if (deadline <= absl::Now()) {
    return finish(absl::DeadlineExceededError("deadline passed before the call arrived"));
  }
  auto served = models_->Find(request->model(), request->version());
  if (!served.ok()) return finish(served.status());
  auto plan = PlanClassify(*request, **served, limits_);
  if (!plan.ok()) return finish(plan.status());

  // The features stay on the arena, and the logits are the runner's, until
  // `done` has built the response.
  runner_->Run(*served, request->features(), plan->rows, deadline,
               [served = *served, plan = *plan, response = messages->response(),
                finish](absl::StatusOr<absl::Span<float>> logits) {
                 if (!logits.ok()) return finish(logits.status());
                 return finish(BuildClassifyResponse(*served, plan, *logits, response));
               });
  return reactor;
}

grpc::ServerUnaryReactor* ClassifierService::GetModelMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  v1::GetModelMetadataRequest request;
  v1::GetModelMetadataResponse response;
  absl::Status status = ParseRequest(*request_bytes, &request);
  if (status.ok()) status = Describe(request, &response);
  if (status.ok()) status = SerializeResponse(response, response_bytes);
  return Finish(context->DefaultReactor(), "GetModelMetadata", request.model(), status);
}

absl::Status ClassifierService::Describe(const v1::GetModelMetadataRequest& request,
                                         v1::GetModelMetadataResponse* response) const {
  // One snapshot: the versions listed are those of the moment that answered.
  const auto snapshot = models_->Snapshot();
  auto served = ModelManager::FindIn(*snapshot, request.model(), request.version());
  if (!served.ok()) return served.status();
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
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ClassifierService::ListModels(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  absl::Status status = ParseRequest(*request_bytes, &request);
  if (status.ok()) {
    const auto snapshot = models_->Snapshot();
    for (const auto& [name, record] : snapshot->models) {
      v1::ModelStatus* model = response.add_models();
      model->set_name(name);
      model->set_error(record.error);
      FillVersions(record, model->mutable_versions());
    }
    status = SerializeResponse(response, response_bytes);
  }
  return Finish(context->DefaultReactor(), "ListModels", "", status);
}

}  // namespace seqserve
