#include "frontends/grpc/grpc_caller.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>

#include <chrono>

#include "frontends/edge/access.h"
#include "frontends/edge/request_id.h"

namespace seqserve {

CallerCredentials GrpcCaller(const grpc::ServerContextBase& context) {
  CallerCredentials caller;
  caller.peer = context.peer();
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    caller.bearer_token = BearerToken(absl::string_view(it->second.data(), it->second.size()));
  }
  // Only with mutual TLS does the auth context carry a verified subject.
  if (const auto auth = context.auth_context(); auth != nullptr && auth->IsPeerAuthenticated()) {
    const auto subjects = auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
    if (!subjects.empty()) {
      caller.client_certificate_subject.assign(subjects.front().data(), subjects.front().size());
    }
  }
  return caller;
}

namespace {

// gRPC's clock resolution for deadlines: it carries grpc-timeout rounded to
// milliseconds, so a caller's deadline can arrive up to about this much
// later than the caller meant.
constexpr auto kDeadlineResolution = std::chrono::milliseconds(1);

// The caller's deadline; calls without one never expire in a queue.
absl::Time CallDeadline(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  const auto now = std::chrono::system_clock::now();
  if (deadline >= now + std::chrono::hours(24 * 365)) return absl::InfiniteFuture();
  // A deadline closer than gRPC's resolution may have passed already (a
  // "1n" timeout arrives with up to ~1 ms left): it counts as passed, so the
  // call is answered DEADLINE_EXCEEDED without running, instead of racing
  // gRPC's own deadline timer.
  if (deadline - now < kDeadlineResolution) return absl::FromChrono(now);
  return absl::FromChrono(deadline);
}

}  // namespace

CallInfo GrpcCall(grpc::CallbackServerContext* context, const char* method) {
  CallInfo call;
  call.protocol = "grpc";
  call.method = method;
  call.caller = GrpcCaller(*context);
  call.deadline = CallDeadline(*context);
  call.cancelled = [context] { return context->IsCancelled(); };
  return call;
}

absl::Status ReadRequestId(grpc::ServerContextBase* context, CallInfo* call) {
  const auto& metadata = context->client_metadata();
  auto value = [&metadata](const char* key) {
    auto it = metadata.find(key);
    return it == metadata.end() ? absl::string_view()
                                : absl::string_view(it->second.data(), it->second.size());
  };
  const absl::string_view id = value("x-request-id");
  if (absl::Status bad = CheckRequestId(id, "x-request-id"); !bad.ok()) return bad;
  CallIds ids = AssignCallIds(id, value("traceparent"));
  call->request_id = std::move(ids.request_id);
  call->request_id_made = ids.made;
  call->trace_id = std::move(ids.trace_id);
  context->AddInitialMetadata("x-request-id", call->request_id);
  return absl::OkStatus();
}

}  // namespace seqserve
