// The seqserve.v1.ModelRepositoryService gRPC service: the repository's
// index and model control (load, unload) in seqserve's own messages, a thin
// translator onto the InferenceService like the Classifier service.
#pragma once

#include "seqserve/v1/repository.grpc.pb.h"
#include "frontends/grpc/arena_message_pool.h"
#include "frontends/grpc/grpc_unary.h"
#include "serving/inference_service.h"

namespace seqserve {

class ModelRepositoryService final
    : public v1::ModelRepositoryService::WithRawCallbackMethod_RepositoryIndex<
          v1::ModelRepositoryService::WithRawCallbackMethod_LoadModel<
              v1::ModelRepositoryService::WithRawCallbackMethod_UnloadModel<
                  v1::ModelRepositoryService::Service>>> {
 public:
  // `inference` and what `edge` points to must outlive the service.
  ModelRepositoryService(InferenceService* inference, GrpcEdge edge);

  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;

 private:
  InferenceService* inference_;
  const GrpcEdge edge_;
  ArenaMessagePool<v1::RepositoryIndexRequest, v1::RepositoryIndexResponse> index_messages_;
  ArenaMessagePool<v1::LoadModelRequest, v1::LoadModelResponse> load_messages_;
  ArenaMessagePool<v1::UnloadModelRequest, v1::UnloadModelResponse> unload_messages_;
};

}  // namespace seqserve
