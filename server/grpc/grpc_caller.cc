#include "server/grpc/grpc_caller.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>

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

}  // namespace seqserve
