// The seqserve.v1.Classifier gRPC service, a thin translator: each method
// hands its call to the one unary skeleton (grpc_unary.h), which admits the
// caller, parses the request bytes and describes the call (peer, bearer
// token, deadline, cancellation); the method then runs it on the
// InferenceService.
#pragma once

#include "seqserve/v1/classifier.grpc.pb.h"
#include "frontends/grpc/arena_message_pool.h"
#include "frontends/grpc/grpc_unary.h"
#include "serving/inference_service.h"

namespace seqserve {

// Every method takes the raw request bytes and parses them itself, so a
// body that is not the method's message is INVALID_ARGUMENT with a message
// (gRPC's own parse failure answers without one).
class ClassifierService final
    : public v1::Classifier::WithRawCallbackMethod_Classify<
          v1::Classifier::WithRawCallbackMethod_Explain<
              v1::Classifier::WithRawCallbackMethod_GetModelMetadata<
                  v1::Classifier::WithRawCallbackMethod_ListModels<v1::Classifier::Service>>>> {
 public:
  // `inference` and what `edge` points to must outlive the service.
  ClassifierService(InferenceService* inference, GrpcEdge edge);

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Explain(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelMetadata(grpc::CallbackServerContext* context,
                                             const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

 private:
  InferenceService* inference_;
  const GrpcEdge edge_;
  ArenaMessagePool<v1::ClassifyRequest, v1::ClassifyResponse> classify_messages_;
  ArenaMessagePool<v1::ExplainRequest, v1::ExplainResponse> explain_messages_;
  ArenaMessagePool<v1::GetModelMetadataRequest, v1::GetModelMetadataResponse>
      metadata_messages_;
  ArenaMessagePool<v1::ListModelsRequest, v1::ListModelsResponse> list_messages_;
};

}  // namespace seqserve
