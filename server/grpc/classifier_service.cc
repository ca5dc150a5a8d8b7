#include "server/grpc/classifier_service.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/classify.h"
#include "server/client_text.h"
#include "server/grpc/grpc_caller.h"
#include "server/grpc/grpc_status.h"
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

// What gRPC tells of the call, for the inference service.
CallInfo GrpcCall(grpc::CallbackServerContext* context, const char* method) {
  CallInfo call;
  call.protocol = "grpc";
  call.method = method;
  call.caller = GrpcCaller(*context);
  call.deadline = CallDeadline(*context);
  call.cancelled = [context] { return context->IsCancelled(); };
  return call;
}

}  // namespace

ClassifierService::ClassifierService(InferenceService* inference)
    : inference_(inference) {}

grpc::ServerUnaryReactor* ClassifierService::Classify(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Request and response live on a pooled arena until the call finishes.
  grpc::MessageHolder<v1::ClassifyRequest, v1::ClassifyResponse>* messages =
      classify_messages_.AllocateMessages();
  auto finish = [reactor, messages, response_bytes](absl::Status status) {
    if (status.ok()) status = SerializeResponse(*messages->response(), response_bytes);
    if (!status.ok()) {
      spdlog::debug("Classify model={}: {}", QuoteClientText(messages->request()->model()),
                    status.ToString());
    }
    messages->Release();
    reactor->Finish(ToGrpcStatus(status));
  };
  CallInfo call = GrpcCall(context, "Classify");
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
  const CallInfo call = GrpcCall(context, "GetModelMetadata");
  absl::Status status = ParseRequest(*request_bytes, &request);
  status = status.ok() ? inference_->DescribeModel(request, call, &response)
                       : inference_->Refuse(call, std::move(status));
  if (status.ok()) status = SerializeResponse(response, response_bytes);
  return Finish(context->DefaultReactor(), "GetModelMetadata", request.model(), status);
}

grpc::ServerUnaryReactor* ClassifierService::ListModels(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  const CallInfo call = GrpcCall(context, "ListModels");
  absl::Status status = ParseRequest(*request_bytes, &request);
  status = status.ok() ? inference_->ListModels(call, &response)
                       : inference_->Refuse(call, std::move(status));
  if (status.ok()) status = SerializeResponse(response, response_bytes);
  return Finish(context->DefaultReactor(), "ListModels", "", status);
}

}  // namespace seqserve
