#include "frontends/grpc/classifier_service.h"

#include <utility>

namespace seqserve {
namespace {

const GrpcMethod& Method(const char* name) {
  return FindGrpcMethod(v1::Classifier::service_full_name(), name);
}

}  // namespace

ClassifierService::ClassifierService(InferenceService* inference, GrpcEdge edge)
    : inference_(inference), edge_(std::move(edge)) {}

grpc::ServerUnaryReactor* ClassifierService::Classify(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("Classify");
  return ServeUnary(edge_, method, &classify_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto* out, auto done) {
                      inference_->Classify(in, std::move(call), out, std::move(done));
                    });
}

grpc::ServerUnaryReactor* ClassifierService::Explain(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("Explain");
  return ServeUnary(edge_, method, &explain_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto* out, auto done) {
                      inference_->Explain(in, std::move(call), out, std::move(done));
                    });
}

grpc::ServerUnaryReactor* ClassifierService::GetModelMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("GetModelMetadata");
  return ServeUnary(edge_, method, &metadata_messages_, context, request, response,
                    [this](const auto& in, CallInfo call, auto* out, auto done) {
                      std::move(done)(inference_->DescribeModel(in, call, out));
                    });
}

grpc::ServerUnaryReactor* ClassifierService::ListModels(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  static const GrpcMethod& method = Method("ListModels");
  return ServeUnary(edge_, method, &list_messages_, context, request, response,
                    [this](const auto&, CallInfo call, auto* out, auto done) {
                      std::move(done)(inference_->ListModels(call, out));
                    });
}

}  // namespace seqserve
