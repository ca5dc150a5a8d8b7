#include "frontends/edge/access.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace seqserve {

const char* AccessName(Access access) {
  switch (access) {
    case Access::kOpen: return "open";
    case Access::kToken: return "token";
  }
  return "token";
}

absl::Status EdgeGuard::Admit(Access access, CallerCredentials* caller) const {
  caller->name.clear();
  if (access == Access::kOpen || authenticator_ == nullptr) return absl::OkStatus();
  return authenticator_->Identify(*caller, &caller->name);
}

std::string BearerToken(absl::string_view authorization) {
  constexpr absl::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() ||
      !absl::StartsWithIgnoreCase(authorization, kScheme) ||
      authorization[kScheme.size()] != ' ') {
    return "";
  }
  return std::string(absl::StripAsciiWhitespace(authorization.substr(kScheme.size() + 1)));
}

}  // namespace seqserve
