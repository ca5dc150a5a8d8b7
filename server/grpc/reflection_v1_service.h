// grpc.reflection.v1, the stable name of gRPC's server reflection, which
// newer tools ask for first. gRPC 1.51's reflection plugin serves only
// v1alpha; this answers v1 from the same generated descriptor pool, so both
// describe the same services.
#pragma once

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace seqserve {

class ReflectionV1Service final : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // `services`: the full names list_services answers with.
  explicit ReflectionV1Service(std::vector<std::string> services);

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

  // The answer to one request; `sent` holds the files this stream already
  // sent, which are not sent again.
  grpc::reflection::v1::ServerReflectionResponse Answer(
      const grpc::reflection::v1::ServerReflectionRequest& request,
      std::vector<std::string>* sent) const;

 private:
  const std::vector<std::string> services_;
};

}  // namespace seqserve
