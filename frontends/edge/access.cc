#include "frontends/edge/access.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"

namespace seqserve {

const char* AccessName(Access access) {
  switch (access) {
    case Access::kOpen: return "open";
    case Access::kToken: return "token";
    case Access::kAdmin: return "admin";
  }
  return "token";
}

absl::Status EdgeGuard::Admit(Access access, CallerCredentials* caller) const {
  caller->name.clear();
  if (access == Access::kOpen) return absl::OkStatus();
  if (access == Access::kAdmin && (admin_ != nullptr || authenticator_ != nullptr)) {
    absl::Status admitted = admin_ != nullptr ? admin_->Identify(*caller, &caller->name)
                                              : absl::UnauthenticatedError("no admin tokens");
    if (admitted.ok() || !absl::IsUnauthenticated(admitted) || authenticator_ == nullptr) {
      return admitted;
    }
    // A caller's token is known, but not enough to change what is served.
    std::string name;
    absl::Status caller_token = authenticator_->Identify(*caller, &name);
    if (caller_token.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "this call changes what the server serves: it needs a token of --admin_tokens_file",
          admin_ == nullptr ? " (this server has none)" : ""));
    }
    return admin_ != nullptr ? admitted : caller_token;
  }
  if (authenticator_ == nullptr) return absl::OkStatus();
  absl::Status admitted = authenticator_->Identify(*caller, &caller->name);
  if (!admitted.ok() && admin_ != nullptr && admin_->Identify(*caller, &caller->name).ok()) {
    return absl::OkStatus();
  }
  return admitted;
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
