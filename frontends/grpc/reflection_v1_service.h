// gRPC server reflection, both grpc.reflection.v1 (the stable name newer
// tools ask for first) and v1alpha (older tools), answered from the
// generated descriptor pool. gRPC 1.51's reflection plugin serves only
// v1alpha and lets every caller in; these check callers with the server's
// EdgeGuard first, so with tokens configured reflection needs one too.
#pragma once

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "frontends/edge/access.h"

namespace seqserve {

class ReflectionV1Service final : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // `services`: the full names list_services answers with.
  // `guard` (not owned) admits each
  // stream before its first answer.
  ReflectionV1Service(std::vector<std::string> services,
                      const EdgeGuard* guard);

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

  // The answer to one request; `sent` holds the files this stream already
  // sent, which are not sent again.
  grpc::reflection::v1::ServerReflectionResponse Answer(
      const grpc::reflection::v1::ServerReflectionRequest& request,
      std::vector<std::string>* sent) const;

  // OK when the caller of `context` may use reflection `service` (v1's or
  // v1alpha's full name), as the method table says.
  absl::Status CheckCaller(const grpc::CallbackServerContext& context,
                           const char* service) const;

 private:
  const std::vector<std::string> services_;
  const EdgeGuard* guard_;
};

// v1alpha: its messages are v1's under another package, so each request
// is re-read as v1 and answered by `v1` (not owned).
class ReflectionV1AlphaService final
    : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  explicit ReflectionV1AlphaService(const ReflectionV1Service* v1) : v1_(v1) {}

  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

 private:
  const ReflectionV1Service* v1_;
};

}  // namespace seqserve
