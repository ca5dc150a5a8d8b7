// The TLS files of the serving ports (--tls_cert_file, --tls_key_file,
// --tls_client_ca_file): checked at start so a wrong file (or a certificate
// outside its dates) stops the server with its name, then re-read every
// refresh interval: files that pass the same check reach new connections
// while open ones keep their certificate; files that fail it are logged and
// the certificate in force stays.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace seqserve {

struct TlsFiles {
  std::string cert_file;  // PEM, the server certificate first, then its chain
  std::string key_file;  // PEM private key of the first certificate
  // PEM CAs whose client certificates are accepted; empty: no mutual TLS.
  std::string client_ca_file;
  absl::Duration refresh_interval = absl::Seconds(60);
};

// The contents of the files as they are now.
struct TlsMaterial {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;  // empty without mutual TLS
  // When the served certificate (the first of cert_chain) is valid.
  absl::Time not_before;
  absl::Time not_after;
};

// A served certificate that expires sooner than this is warned about.
inline constexpr absl::Duration kTlsExpiryWarning = absl::Hours(7 * 24);
// How far ahead of this machine's clock a certificate's notBefore may be:
// a certificate issued a moment ago by a machine whose clock runs ahead
// would otherwise be refused until its file changes again.
inline constexpr absl::Duration kTlsClockSkew = absl::Minutes(5);

// Reads and checks the files: each parses as PEM, the first certificate is
// valid at `now` (its notBefore not past now + kTlsClockSkew, its notAfter
// not past), the key belongs to it, the CA file holds at least one
// certificate. FAILED_PRECONDITION naming the file (and, for the dates,
// notBefore and notAfter in UTC) otherwise. Each certificate accepted that
// expires within kTlsExpiryWarning is logged at warning, once.
absl::StatusOr<TlsMaterial> ReadTlsFiles(const TlsFiles& files, absl::Time now = absl::Now());

// notAfter of the certificate ReadTlsFiles last accepted from `cert_file`,
// which is what the listeners serve: both take their certificate only
// through it at start, and the HTTP port at each rotation (a file refused
// leaves the value as it was). nullopt before the first.
std::optional<absl::Time> TlsCertificateExpiry(const std::string& cert_file);

// What tells a change of any of the files apart (inode, size, mtime and
// ctime of each, following symlinks as a Kubernetes Secret's swap needs);
// empty parts for files that cannot be read.
std::string TlsFilesStamp(const TlsFiles& files);

// TLS credentials for a gRPC port that follow the files: with a client CA
// file, clients without a certificate signed by one of its CAs are refused
// in the handshake. Checks the files first (ReadTlsFiles). gRPC's file
// watcher is given in-memory copies of what passed ReadTlsFiles, kept
// while the credentials live: a replacement that fails it (expired, a key
// of another certificate) never reaches the port.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(
    const TlsFiles& files);

}  // namespace seqserve
