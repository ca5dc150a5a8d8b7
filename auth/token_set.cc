#include "auth/token_set.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace seqserve {

TokenDigest DigestToken(absl::string_view token) {
  // Fetched once: EVP_sha256() makes OpenSSL 3 look the implementation up
  // on every digest, which costs more than the digest of a short token.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  TokenDigest digest{};
  unsigned int length = 0;
  if (sha256 == nullptr ||
      EVP_Digest(token.data(), token.size(), digest.data(), &length, sha256, nullptr) != 1 ||
      length != digest.size()) {
    // SHA-256 is built into libcrypto; failing here means a broken install.
    std::abort();
  }
  return digest;
}

absl::StatusOr<TokenSet> TokenSet::Parse(absl::string_view text) {
  TokenSet set;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    absl::string_view name;
    absl::string_view token = line;
    if (const size_t colon = line.find(':'); colon != absl::string_view::npos) {
      name = absl::StripAsciiWhitespace(line.substr(0, colon));
      token = absl::StripAsciiWhitespace(line.substr(colon + 1));
    }
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, " has no token"));
    }
    for (char c : token) {
      if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
          absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "line ", line_number, ": a token must not contain spaces or control characters"));
      }
    }
    set.digests_.push_back(DigestToken(token));
    set.names_.emplace_back(name);
  }
  return set;
}

bool TokenSet::Find(absl::string_view token, std::string* name) const {
  const TokenDigest presented = DigestToken(token);
  // Every digest is compared, whichever matches: no early exit.
  size_t match = digests_.size();
  for (size_t i = 0; i < digests_.size(); ++i) {
    const bool equal = CRYPTO_memcmp(presented.data(), digests_[i].data(), presented.size()) == 0;
    match = equal ? i : match;
  }
  if (match == digests_.size()) return false;
  *name = names_[match];
  return true;
}

}  // namespace seqserve
