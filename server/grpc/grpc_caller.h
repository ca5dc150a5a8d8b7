// Who calls, as gRPC tells it: peer, bearer token, and with mutual TLS the
// client certificate's subject. Shared by every gRPC service that checks
// callers.
#pragma once

#include <grpcpp/server_context.h>

#include "server/call.h"

namespace seqserve {

CallerCredentials GrpcCaller(const grpc::ServerContextBase& context);

}  // namespace seqserve
