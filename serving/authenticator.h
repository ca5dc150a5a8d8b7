// The seam for caller authentication: one check for every call of every
// protocol, before any model is looked up.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "serving/call.h"

namespace seqserve {

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // OK to go on; UNAUTHENTICATED when the caller proved nothing,
  // PERMISSION_DENIED when who it is may not call. Thread-safe.
  virtual absl::Status Check(const CallerCredentials& caller) const = 0;
  // Check(), and on OK the caller's name for logs ("" when it has none).
  virtual absl::Status Identify(const CallerCredentials& caller, std::string* name) const {
    name->clear();
    return Check(caller);
  }
};

}  // namespace seqserve
