#include "frontends/grpc/classifier_service.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "serving/classify.h"
#include "frontends/grpc/grpc_caller.h"
#include "frontends/grpc/grpc_messages.h"
#include "frontends/grpc/grpc_status.h"

namespace seqserve {
namespace {

// Failed calls are logged once, by the inference service's call log
// (observability/call_log.h); only an answer that cannot be serialized is logged
// here.
grpc::ServerUnaryReactor* Finish(grpc::ServerUnaryReactor* reactor,
                                 const absl::Status& status) {
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

ClassifierService::ClassifierService(InferenceService* inference, const EdgeGuard* guard)
    : inference_(inference), guard_(guard) {}

grpc::ServerUnaryReactor* ClassifierService::Classify(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Request and response live on a pooled arena until the call finishes.
  grpc::MessageHolder<v1::ClassifyRequest, v1::ClassifyResponse>* messages =
      classify_messages_.AllocateMessages();
  auto finish = FinishPooledCall(reactor, messages, response_bytes, "Classify");
  CallInfo call = GrpcCall(context, "Classify");
  if (absl::Status denied = guard_->Admit(Access::kToken, &call.caller); !denied.ok()) {
    finish(inference_->Refuse(call, std::move(denied)));
    return reactor;
  }
  if (absl::Status parsed = ParseRequest(*request_bytes, messages->request()); !parsed.ok()) {
    finish(inference_->Refuse(call, std::move(parsed)));
    return reactor;
  }
  inference_->Classify(*messages->request(), std::move(call), messages->response(),
                       std::move(finish));
  return reactor;
}

grpc::ServerUnaryReactor* ClassifierService::GetModelMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  v1::GetModelMetadataRequest request;
  v1::GetModelMetadataResponse response;
  CallInfo call = GrpcCall(context, "GetModelMetadata");
  absl::Status status = guard_->Admit(Access::kToken, &call.caller);
  if (status.ok()) status = ParseRequest(*request_bytes, &request);
  status = status.ok() ? inference_->DescribeModel(request, call, &response)
                       : inference_->Refuse(call, std::move(status));
  if (status.ok()) status = SerializeResponse(response, response_bytes);
  return Finish(context->DefaultReactor(), status);
}

grpc::ServerUnaryReactor* ClassifierService::ListModels(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  CallInfo call = GrpcCall(context, "ListModels");
  absl::Status status = guard_->Admit(Access::kToken, &call.caller);
  if (status.ok()) status = ParseRequest(*request_bytes, &request);
  status = status.ok() ? inference_->ListModels(call, &response)
                       : inference_->Refuse(call, std::move(status));
  if (status.ok()) status = SerializeResponse(response, response_bytes);
  return Finish(context->DefaultReactor(), status);
}

}  // namespace seqserve
