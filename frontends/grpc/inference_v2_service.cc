#include "frontends/grpc/inference_v2_service.h"

#include <utility>

namespace seqserve {
namespace {

const GrpcMethod& Method(const char* name) {
  return FindGrpcMethod(inference::GRPCInferenceService::service_full_name(), name);
}

}  // namespace

InferenceV2Service::InferenceV2Service(OpenInference* open_inference,
                                       ModelRepositoryExtension* repository, GrpcEdge edge)
    : open_inference_(open_inference), repository_(repository), edge_(std::move(edge)) {}

grpc::ServerUnaryReactor* InferenceV2Service::ServerLive(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("ServerLive");
  return ServeUnary(edge_, method, &live_messages_, context, request, response,
                    [](const auto&, CallInfo, auto* out, auto done) {
                      out->set_live(true);
                      std::move(done)(absl::OkStatus());
                    });
}

grpc::ServerUnaryReactor* InferenceV2Service::ServerReady(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request,
                                                          grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("ServerReady");
  return ServeUnary(edge_, method, &server_ready_messages_, context, request, response,
                    [this](const auto&, CallInfo, auto* out, auto done) {
                      out->set_ready(open_inference_->ServerReady());
                      std::move(done)(absl::OkStatus());
                    });
}

grpc::ServerUnaryReactor* InferenceV2Service::ModelReady(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("ModelReady");
  return ServeUnary(edge_, method, &model_ready_messages_, context, request, response,
                    [this](const auto& in, CallInfo, auto* out, auto done) {
                      // Not ready (unknown, failed, loading) is an answer, not an
                      // error; a version that is no number is the caller's mistake.
                      const absl::Status ready = open_inference_->ModelReady(in.name(), in.version());
                      out->set_ready(ready.ok());
                      std::move(done)(absl::IsInvalidArgument(ready) ? ready : absl::OkStatus());
                    });
}

grpc::ServerUnaryReactor* InferenceV2Service::ServerMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("ServerMetadata");
  return ServeUnary(edge_, method, &server_metadata_messages_, context, request, response,
                    [this](const auto&, CallInfo, auto* out, auto done) {
                      open_inference_->ServerMetadata(out);
                      std::move(done)(absl::OkStatus());
                    });
}

grpc::ServerUnaryReactor* InferenceV2Service::ModelMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("ModelMetadata");
  return ServeUnary(edge_, method, &model_metadata_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto* out, auto done) {
                      std::move(done)(open_inference_->ModelMetadata(in, call, out));
                    });
}

grpc::ServerUnaryReactor* InferenceV2Service::ModelInfer(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("ModelInfer");
  return ServeUnary(edge_, method, &infer_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto* out, auto done) {
                      open_inference_->Infer(in, std::move(call),
                                             OpenInference::RawOutput::kWhenAskedOrInputRaw, out,
                                             std::move(done));
                    });
}

grpc::ServerUnaryReactor* InferenceV2Service::RepositoryIndex(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("RepositoryIndex");
  return ServeUnary(edge_, method, &index_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto* out, auto done) {
                      std::move(done)(repository_->Index(in, call, out));
                    });
}

grpc::ServerUnaryReactor* InferenceV2Service::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("RepositoryModelLoad");
  return ServeUnary(edge_, method, &load_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto*, auto done) {
                      repository_->Load(in, std::move(call), std::move(done));
                    });
}

grpc::ServerUnaryReactor* InferenceV2Service::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("RepositoryModelUnload");
  return ServeUnary(edge_, method, &unload_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto*, auto done) {
                      std::move(done)(repository_->Unload(in, call));
                    });
}

}  // namespace seqserve
