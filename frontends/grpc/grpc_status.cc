#include "frontends/grpc/grpc_status.h"

#include "frontends/edge/status_message.h"

namespace seqserve {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), CappedStatusMessage(status));
}

}  // namespace seqserve
