#include "frontends/grpc/grpc_methods.h"

namespace seqserve {

const std::vector<GrpcMethod>& GrpcMethods() {
  static const std::vector<GrpcMethod>* const methods = new std::vector<GrpcMethod>{
      {"seqserve.v1.Classifier", "Classify", Access::kToken},
      {"seqserve.v1.Classifier", "Explain", Access::kToken},
      {"seqserve.v1.Classifier", "GetModelMetadata", Access::kToken},
      {"seqserve.v1.Classifier", "ListModels", Access::kToken},
      // Probes carry no token, like grpc.health.v1.
      {"inference.GRPCInferenceService", "ServerLive", Access::kOpen},
      {"inference.GRPCInferenceService", "ServerReady", Access::kOpen},
      {"inference.GRPCInferenceService", "ModelReady", Access::kOpen},
      // Names the server's version and extensions: for callers only.
      {"inference.GRPCInferenceService", "ServerMetadata", Access::kToken},
      {"inference.GRPCInferenceService", "ModelMetadata", Access::kToken},
      {"inference.GRPCInferenceService", "ModelInfer", Access::kToken},
      // Triton's model repository extension: reading is for callers,
      // changing what is served for admins.
      {"inference.GRPCInferenceService", "RepositoryIndex", Access::kToken},
      {"inference.GRPCInferenceService", "RepositoryModelLoad", Access::kAdmin},
      {"inference.GRPCInferenceService", "RepositoryModelUnload", Access::kAdmin},
      {"seqserve.v1.ModelRepositoryService", "RepositoryIndex", Access::kToken},
      {"seqserve.v1.ModelRepositoryService", "LoadModel", Access::kAdmin},
      {"seqserve.v1.ModelRepositoryService", "UnloadModel", Access::kAdmin},
      {"grpc.reflection.v1.ServerReflection", "ServerReflectionInfo", Access::kToken},
      {"grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", Access::kToken},
      // gRPC's built-in health service: it admits every caller itself.
      {"grpc.health.v1.Health", "Check", Access::kOpen},
      {"grpc.health.v1.Health", "Watch", Access::kOpen},
  };
  return *methods;
}

const GrpcMethod& FindGrpcMethod(absl::string_view service, absl::string_view name) {
  for (const GrpcMethod& method : GrpcMethods()) {
    if (service == method.service && name == method.name) return method;
  }
  static const GrpcMethod unknown{"", "", Access::kToken};
  return unknown;
}

}  // namespace seqserve
