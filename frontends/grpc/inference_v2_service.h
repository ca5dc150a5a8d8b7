// The Open Inference Protocol's gRPC service (inference.GRPCInferenceService),
// a thin translator like the Classifier service: each method goes through
// the one unary skeleton (grpc_unary.h) and hands its call to
// OpenInference, which runs it on the protocol-neutral inference path.
#pragma once

#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "frontends/grpc/arena_message_pool.h"
#include "frontends/grpc/grpc_unary.h"
#include "frontends/v2/model_repository_extension.h"
#include "frontends/v2/open_inference.h"

namespace seqserve {

namespace v2grpc {
using Service = inference::GRPCInferenceService;
using Base = Service::WithRawCallbackMethod_ServerLive<
    Service::WithRawCallbackMethod_ServerReady<Service::WithRawCallbackMethod_ModelReady<
        Service::WithRawCallbackMethod_ServerMetadata<Service::WithRawCallbackMethod_ModelMetadata<
            Service::WithRawCallbackMethod_ModelInfer<Service::WithRawCallbackMethod_RepositoryIndex<
                Service::WithRawCallbackMethod_RepositoryModelLoad<
                    Service::WithRawCallbackMethod_RepositoryModelUnload<Service::Service>>>>>>>>>;
}  // namespace v2grpc

class InferenceV2Service final : public v2grpc::Base {
 public:
  // `open_inference`, `repository` and what `edge` points to must outlive
  // the service.
  InferenceV2Service(OpenInference* open_inference, ModelRepositoryExtension* repository,
                     GrpcEdge edge);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* context,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* request,
                                                  grpc::ByteBuffer* response) override;

 private:
  OpenInference* open_inference_;
  ModelRepositoryExtension* repository_;
  const GrpcEdge edge_;
  ArenaMessagePool<inference::ServerLiveRequest, inference::ServerLiveResponse> live_messages_;
  ArenaMessagePool<inference::ServerReadyRequest, inference::ServerReadyResponse>
      server_ready_messages_;
  ArenaMessagePool<inference::ModelReadyRequest, inference::ModelReadyResponse>
      model_ready_messages_;
  ArenaMessagePool<inference::ServerMetadataRequest, inference::ServerMetadataResponse>
      server_metadata_messages_;
  ArenaMessagePool<inference::ModelMetadataRequest, inference::ModelMetadataResponse>
      model_metadata_messages_;
  ArenaMessagePool<inference::ModelInferRequest, inference::ModelInferResponse> infer_messages_;
  ArenaMessagePool<inference::RepositoryIndexRequest, inference::RepositoryIndexResponse>
      index_messages_;
  ArenaMessagePool<inference::RepositoryModelLoadRequest, inference::RepositoryModelLoadResponse>
      load_messages_;
  ArenaMessagePool<inference::RepositoryModelUnloadRequest,
                   inference::RepositoryModelUnloadResponse>
      unload_messages_;
};

}  // namespace seqserve
