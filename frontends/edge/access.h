// Who may call what, decided once at the transport edge. Every gRPC method
// and every HTTP route is declared with an Access; EdgeGuard applies it
// before a request's body is read (HTTP) or parsed (gRPC), so a caller
// without a token never makes the server build anything from its bytes.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "serving/authenticator.h"
#include "serving/call.h"

namespace seqserve {

enum class Access {
  kOpen,   // probes and health: anyone, always
  kToken,  // everything else: a token when tokens are configured
};

// "open" or "token", for tables and test names.
const char* AccessName(Access access);

class EdgeGuard {
 public:
  // `authenticator` is not owned; null lets every caller in.
  explicit EdgeGuard(const Authenticator* authenticator) : authenticator_(authenticator) {}

  // OK for an open route, or for a caller the authenticator accepts (then
  // caller->name is who it is, for logs); UNAUTHENTICATED or
  // PERMISSION_DENIED otherwise. Thread-safe.
  absl::Status Admit(Access access, CallerCredentials* caller) const;

 private:
  const Authenticator* authenticator_;
};

// The token of an "Authorization: Bearer <token>" header (HTTP or gRPC
// metadata); the scheme matched without regard to case (RFC 7235). Empty
// for any other scheme.
std::string BearerToken(absl::string_view authorization);

}  // namespace seqserve
