#include "frontends/grpc/grpc_unary.h"

namespace seqserve {

absl::Status GrpcEdge::Screen(const GrpcMethod& method, CallInfo* call) const {
  // gRPC stops dispatching once its own Shutdown begins; a call that got
  // here just before is told to go elsewhere, which retry policies do,
  // rather than being cancelled by that shutdown (CANCELLED is not retried).
  if (closing != nullptr && closing()) {
    return absl::UnavailableError("the server is shutting down; retry");
  }
  return guard->Admit(method.access, &call->caller);
}

}  // namespace seqserve
