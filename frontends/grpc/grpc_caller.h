// Who calls, as gRPC tells it: peer, bearer token, and with mutual TLS the
// client certificate's subject; and the call itself (deadline,
// cancellation) for the inference service. Shared by every gRPC service
// that checks callers.
#pragma once

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "serving/call.h"

namespace seqserve {

CallerCredentials GrpcCaller(const grpc::ServerContextBase& context);

// What gRPC tells of a call to `method`, for the inference service.
// `context` must outlive the call.
CallInfo GrpcCall(grpc::CallbackServerContext* context, const char* method);

// The caller's x-request-id metadata into call->request_id, once checked
// (frontends/edge/request_id.h): INVALID_ARGUMENT for one too long or not
// printable ASCII; a new id when none came. The id goes back to the caller
// as x-request-id initial metadata; a W3C traceparent's trace id into
// call->trace_id.
absl::Status ReadRequestId(grpc::ServerContextBase* context, CallInfo* call);

}  // namespace seqserve
