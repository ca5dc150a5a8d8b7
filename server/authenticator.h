// The seam for caller authentication: one check for every call of every
// protocol, before any model is looked up.
#pragma once

#include "absl/status/status.h"
#include "server/call.h"

namespace seqserve {

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // OK to go on; UNAUTHENTICATED when the caller proved nothing,
  // PERMISSION_DENIED when who it is may not call. Thread-safe.
  virtual absl::Status Check(const CallerCredentials& caller) const = 0;
};

}  // namespace seqserve
