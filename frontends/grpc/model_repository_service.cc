#include "frontends/grpc/model_repository_service.h"

#include <optional>
#include <utility>

namespace seqserve {
namespace {

const GrpcMethod& Method(const char* name) {
  return FindGrpcMethod(v1::ModelRepositoryService::service_full_name(), name);
}

}  // namespace

ModelRepositoryService::ModelRepositoryService(InferenceService* inference, GrpcEdge edge)
    : inference_(inference), edge_(std::move(edge)) {}

grpc::ServerUnaryReactor* ModelRepositoryService::RepositoryIndex(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("RepositoryIndex");
  return ServeUnary(edge_, method, &index_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto* out, auto done) {
                      std::move(done)(inference_->RepositoryIndex(in.ready(), call, out));
                    });
}

grpc::ServerUnaryReactor* ModelRepositoryService::LoadModel(grpc::CallbackServerContext* context,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("LoadModel");
  return ServeUnary(edge_, method, &load_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto* out, auto done) {
                      std::optional<v1::ModelConfig> config;
                      if (in.has_config()) config = in.config();
                      inference_->LoadModel(in.model(), std::move(config), std::move(call),
                                            out->mutable_status(), std::move(done));
                    });
}

grpc::ServerUnaryReactor* ModelRepositoryService::UnloadModel(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("UnloadModel");
  return ServeUnary(edge_, method, &unload_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto*, auto done) {
                      std::move(done)(inference_->UnloadModel(in.model(), call));
                    });
}

}  // namespace seqserve
