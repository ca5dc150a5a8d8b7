// The one conversion from absl::Status to grpc::Status at the RPC boundary.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace seqserve {

// Keeps the code; the message capped as every front end caps it
// (frontends/edge/status_message.h).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace seqserve
