// The seqserve.v1.Classifier gRPC service: each handler parses the request,
// looks up the model, calls core through classify.h, converts the status
// once and finishes.
#pragma once

#include <atomic>
#include <cstdint>

#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/arena_message_pool.h"
#include "server/classify.h"
#include "server/inference_runner.h"
#include "server/model_manager.h"

namespace seqserve {

// Every method takes the raw request bytes and parses them itself, so a
// body that is not the method's message is INVALID_ARGUMENT with a message
// (gRPC's own parse failure answers without one).
class ClassifierService final
    : public v1::Classifier::WithRawCallbackMethod_Classify<
          v1::Classifier::WithRawCallbackMethod_GetModelMetadata<
              v1::Classifier::WithRawCallbackMethod_ListModels<v1::Classifier::Service>>> {
 public:
  // `models` and `runner` must outlive the service. `limits` apply to
  // every Classify (rows: unless a model's config sets its own).
  ClassifierService(const ModelManager* models, InferenceRunner* runner,
                    const RequestLimits& limits);

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelMetadata(grpc::CallbackServerContext* context,
                                             const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

  // Classify calls received and not yet finished.
  int calls_in_flight() const { return calls_in_flight_.load(); }

 private:
  absl::Status Describe(const v1::GetModelMetadataRequest& request,
                        v1::GetModelMetadataResponse* response) const;

  const ModelManager* models_;
  InferenceRunner* runner_;
  const RequestLimits limits_;
  std::atomic<int> calls_in_flight_{0};
  ArenaMessagePool<v1::ClassifyRequest, v1::ClassifyResponse> classify_messages_;
};

}  // namespace seqserve
