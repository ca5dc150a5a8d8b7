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
  kToken,  // inference and reading: a token when tokens are configured
  // Changing what is served (model control): an admin token when tokens
  // are configured; anyone when none are.
  kAdmin,
};

// "open", "token" or "admin", for tables and test names.
const char* AccessName(Access access);

class EdgeGuard {
 public:
  // Neither is owned. A null `authenticator` lets every caller into kToken
  // routes. kAdmin routes need an `admin` token; with no `admin` they are
  // open when `authenticator` is null too, else refused to every caller
  // (PERMISSION_DENIED for a good token). An admin token is good for
  // kToken routes too.
  explicit EdgeGuard(const Authenticator* authenticator, const Authenticator* admin = nullptr)
      : authenticator_(authenticator), admin_(admin) {}

  // OK for an open route, or for a caller the route's authenticator accepts
  // (then caller->name is who it is, for logs); UNAUTHENTICATED, or
  // PERMISSION_DENIED for a caller whose token is good but not for this.
  // Thread-safe.
  absl::Status Admit(Access access, CallerCredentials* caller) const;

 private:
  const Authenticator* authenticator_;
  const Authenticator* admin_;
};

// The token of an "Authorization: Bearer <token>" header (HTTP or gRPC
// metadata); the scheme matched without regard to case (RFC 7235). Empty
// for any other scheme.
std::string BearerToken(absl::string_view authorization);

}  // namespace seqserve
