#include "frontends/grpc/grpc_unary.h"

namespace seqserve {

absl::Status GrpcEdge::Screen(const GrpcMethod& method, CallInfo* call) const {
  return guard->Admit(method.access, &call->caller);
}

}  // namespace seqserve
