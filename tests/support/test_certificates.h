// Certificates made with the openssl command at test time: CAs, and server
// or client certificates they sign, as PEM files in a fresh directory.
#pragma once

#include <string>

#include "absl/time/time.h"

namespace seqserve::testing {

struct PemFiles {
  std::string cert;  // path of the certificate
  std::string key;  // path of its private key
};

class TestCertificates {
 public:
  // A new directory under the test's temporary directory.
  TestCertificates();

  // A self-signed CA with the subject CN=`name`.
  PemFiles MakeCa(const std::string& name);
  // A certificate signed by `ca` for CN=`name`, valid for localhost and
  // 127.0.0.1 (server or client alike).
  PemFiles MakeLeaf(const std::string& name, const PemFiles& ca);
  // The same, valid from `not_before` to `not_after` (whole seconds, UTC):
  // expired, not yet valid or about to expire, as `openssl ca` can date it.
  PemFiles MakeLeafValid(const std::string& name, const PemFiles& ca, absl::Time not_before,
                         absl::Time not_after);

  const std::string& dir() const { return dir_; }
  // dir()/file
  std::string Path(const std::string& file) const { return dir_ + "/" + file; }

 private:
  std::string dir_;
};

// Reads a whole file; empty when it cannot be read.
std::string ReadWholeFile(const std::string& path);
// Writes `contents` to a temporary file beside `path`, then renames it over
// `path`, so a reader sees the old file or the new one, never half of it.
void ReplaceFile(const std::string& path, const std::string& contents);

}  // namespace seqserve::testing
