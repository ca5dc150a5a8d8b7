// The seqserve.v1.Classifier gRPC service, a thin translator: each method
// parses its request bytes, describes the call (peer, bearer token,
// deadline, cancellation) and hands it to the InferenceService, then
// serializes the answer and converts the status once.
#pragma once

#include "seqserve/v1/classifier.grpc.pb.h"
#include "frontends/grpc/arena_message_pool.h"
#include "frontends/edge/access.h"
#include "serving/inference_service.h"

namespace seqserve {

// Every method takes the raw request bytes and parses them itself, so a
// body that is not the method's message is INVALID_ARGUMENT with a message
// (gRPC's own parse failure answers without one).
class ClassifierService final
    : public v1::Classifier::WithRawCallbackMethod_Classify<
          v1::Classifier::WithRawCallbackMethod_GetModelMetadata<
              v1::Classifier::WithRawCallbackMethod_ListModels<v1::Classifier::Service>>> {
 public:
  // `inference` and `guard` must outlive the service.
  ClassifierService(InferenceService* inference, const EdgeGuard* guard);

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
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
  const EdgeGuard* guard_;
  ArenaMessagePool<v1::ClassifyRequest, v1::ClassifyResponse> classify_messages_;
};

}  // namespace seqserve
