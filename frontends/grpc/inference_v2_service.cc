#include "frontends/grpc/inference_v2_service.h"

#include <utility>

#include "frontends/grpc/grpc_caller.h"
#include "frontends/grpc/grpc_messages.h"
#include "frontends/grpc/grpc_status.h"

namespace seqserve {
namespace {

template <typename Response>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, absl::Status status,
                                 const Response& response, grpc::ByteBuffer* bytes) {
  if (status.ok()) status = SerializeResponse(response, bytes);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

InferenceV2Service::InferenceV2Service(OpenInference* open_inference, const EdgeGuard* guard)
    : open_inference_(open_inference), guard_(guard) {}

// Health answers every caller, like grpc.health.v1: probes carry no token.
grpc::ServerUnaryReactor* InferenceV2Service::ServerLive(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request_bytes,
                                                         grpc::ByteBuffer* response_bytes) {
  inference::ServerLiveRequest request;
  inference::ServerLiveResponse response;
  absl::Status status = ParseRequest(*request_bytes, &request);
  response.set_live(true);
  return Answer(context, status, response, response_bytes);
}

grpc::ServerUnaryReactor* InferenceV2Service::ServerReady(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request_bytes,
                                                          grpc::ByteBuffer* response_bytes) {
  inference::ServerReadyRequest request;
  inference::ServerReadyResponse response;
  absl::Status status = ParseRequest(*request_bytes, &request);
  response.set_ready(open_inference_->ServerReady());
  return Answer(context, status, response, response_bytes);
}

grpc::ServerUnaryReactor* InferenceV2Service::ModelReady(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request_bytes,
                                                         grpc::ByteBuffer* response_bytes) {
  inference::ModelReadyRequest request;
  inference::ModelReadyResponse response;
  absl::Status status = ParseRequest(*request_bytes, &request);
  if (status.ok()) {
    // Not ready (unknown, failed, loading) is an answer, not an error; a
    // version that is no number is the caller's mistake.
    const absl::Status ready = open_inference_->ModelReady(request.name(), request.version());
    if (absl::IsInvalidArgument(ready)) status = ready;
    response.set_ready(ready.ok());
  }
  return Answer(context, status, response, response_bytes);
}

grpc::ServerUnaryReactor* InferenceV2Service::ServerMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  inference::ServerMetadataRequest request;
  inference::ServerMetadataResponse response;
  CallInfo call = GrpcCall(context, "ServerMetadata");
  absl::Status status = guard_->Admit(Access::kToken, &call.caller);
  if (!status.ok()) status = open_inference_->Refuse(call, std::move(status));
  if (status.ok()) status = ParseRequest(*request_bytes, &request);
  if (status.ok()) open_inference_->ServerMetadata(&response);
  return Answer(context, status, response, response_bytes);
}

grpc::ServerUnaryReactor* InferenceV2Service::ModelMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  inference::ModelMetadataRequest request;
  inference::ModelMetadataResponse response;
  CallInfo call = GrpcCall(context, "ModelMetadata");
  absl::Status status = guard_->Admit(Access::kToken, &call.caller);
  if (status.ok()) status = ParseRequest(*request_bytes, &request);
  status = status.ok() ? open_inference_->ModelMetadata(request, call, &response)
                       : open_inference_->Refuse(call, std::move(status));
  return Answer(context, status, response, response_bytes);
}

grpc::ServerUnaryReactor* InferenceV2Service::ModelInfer(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request_bytes,
                                                         grpc::ByteBuffer* response_bytes) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Request and response live on a pooled arena until the call finishes.
  grpc::MessageHolder<inference::ModelInferRequest, inference::ModelInferResponse>* messages =
      infer_messages_.AllocateMessages();
  auto finish = FinishPooledCall(reactor, messages, response_bytes, "ModelInfer");
  CallInfo call = GrpcCall(context, "ModelInfer");
  if (absl::Status denied = guard_->Admit(Access::kToken, &call.caller); !denied.ok()) {
    finish(open_inference_->Refuse(call, std::move(denied)));
    return reactor;
  }
  if (absl::Status parsed = ParseRequest(*request_bytes, messages->request()); !parsed.ok()) {
    finish(open_inference_->Refuse(call, std::move(parsed)));
    return reactor;
  }
  open_inference_->Infer(*messages->request(), std::move(call),
                         OpenInference::RawOutput::kWhenAskedOrInputRaw, messages->response(),
                         std::move(finish));
  return reactor;
}

}  // namespace seqserve
