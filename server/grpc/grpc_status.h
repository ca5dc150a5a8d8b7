// The one conversion from absl::Status to grpc::Status at the RPC boundary.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace seqserve {

// Keeps the code; caps the message so a huge error never bloats a reply.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Longest message ToGrpcStatus passes on.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

}  // namespace seqserve
