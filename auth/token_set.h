// The bearer tokens a server accepts, kept only as SHA-256 digests: a
// presented token is hashed and compared in constant time against every
// digest, so neither timing nor a memory dump gives a token away.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace seqserve {

using TokenDigest = std::array<uint8_t, 32>;

TokenDigest DigestToken(absl::string_view token);

class TokenSet {
 public:
  // Parses a tokens file: one token per line, optionally "name:token";
  // blank lines and lines starting with '#' are skipped; spaces around a
  // line are ignored. INVALID_ARGUMENT names the line (never its text) of
  // an empty token or a token with spaces inside. A text without any token
  // is a valid, empty set: it accepts no token.
  static absl::StatusOr<TokenSet> Parse(absl::string_view text);

  // Whether `token` is one of the set; `name` gets its name ("" when the
  // line had none). Takes the same time whichever token matches.
  bool Find(absl::string_view token, std::string* name) const;

  size_t size() const { return digests_.size(); }

 private:
  std::vector<TokenDigest> digests_;
  std::vector<std::string> names_;
};

}  // namespace seqserve
