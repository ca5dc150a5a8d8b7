// The one skeleton of every unary method of the Classifier and the v2
// services: closing? -> admit -> request id -> parse -> run -> finish. A
// caller that is refused never has its bytes parsed, and every refusal of
// a method that needs a token is accounted as the inference path accounts
// any call.
#pragma once

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "frontends/edge/access.h"
#include "frontends/grpc/arena_message_pool.h"
#include "frontends/grpc/grpc_caller.h"
#include "frontends/grpc/grpc_messages.h"
#include "frontends/grpc/grpc_methods.h"
#include "serving/call.h"
#include "serving/inference_service.h"

namespace seqserve {

// What the gRPC services share with the rest of the server.
struct GrpcEdge {
  // Admits callers; not owned, must outlive the services.
  const EdgeGuard* guard = nullptr;
  // Accounts a call refused before it ran (InferenceService::Refuse) and
  // returns its answer; null: not accounted.
  std::function<absl::Status(const CallInfo&, absl::Status)> refuse;
  // True once the server stopped taking calls (ModelServer::Shutdown);
  // null: never.
  std::function<bool()> closing;

  // UNAVAILABLE when closing, else the guard's answer.
  absl::Status Screen(const GrpcMethod& method, CallInfo* call) const;
};

// Answers one unary call of `method` with messages from `pool`: `run(request,
// call, response, done)` is called only for an admitted caller whose bytes
// parsed, and calls `done` once (on any thread) when `response` is complete
// or with the error. Probes (open methods) are not accounted, as HTTP's
// health routes are not.
template <typename Request, typename Response, typename Run>
grpc::ServerUnaryReactor* ServeUnary(const GrpcEdge& edge, const GrpcMethod& method,
                                     ArenaMessagePool<Request, Response>* pool,
                                     grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request_bytes,
                                     grpc::ByteBuffer* response_bytes, Run&& run) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Request and response live on a pooled arena until the call finishes.
  grpc::MessageHolder<Request, Response>* messages = pool->AllocateMessages();
  auto finish = FinishPooledCall(reactor, messages, response_bytes, method.name);
  CallInfo call = GrpcCall(context, method.name);
  absl::Status refused = edge.Screen(method, &call);
  // Probes carry no request id worth checking: they are not accounted.
  if (refused.ok() && method.access != Access::kOpen) refused = ReadRequestId(context, &call);
  if (refused.ok()) refused = ParseRequest(*request_bytes, messages->request());
  if (!refused.ok()) {
    const bool accounted = method.access != Access::kOpen && edge.refuse != nullptr;
    finish(accounted ? edge.refuse(call, std::move(refused)) : std::move(refused));
    return reactor;
  }
  std::forward<Run>(run)(*messages->request(), std::move(call), messages->response(),
                         InferenceService::Done(std::move(finish)));
  return reactor;
}

}  // namespace seqserve
