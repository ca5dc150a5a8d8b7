#include "auth/tls_files.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", what, " ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", what, " ", path));
  }
  return text.str();
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
using Cert = std::unique_ptr<X509, X509Deleter>;
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The certificates of a PEM text, in order.
std::vector<Cert> ParseCertificates(const std::string& pem) {
  std::vector<Cert> certs;
  Bio bio = MemoryBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the text reads as an error
  return certs;
}

std::optional<absl::Time> ToTime(const ASN1_TIME* asn1) {
  struct tm parts = {};
  if (asn1 == nullptr || ASN1_TIME_to_tm(asn1, &parts) != 1) return std::nullopt;
  return absl::FromTimeT(timegm(&parts));
}

std::string Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

// The notAfter of the certificate last accepted from each file, so the
// listeners' certificate can be reported and its warning given once.
struct Accepted {
  absl::Mutex mu;
  std::map<std::string, absl::Time> not_after ABSL_GUARDED_BY(mu);
};
Accepted& AcceptedCertificates() {
  static Accepted* const accepted = new Accepted;  // never destroyed: no exit-order race
  return *accepted;
}

void Accept(const std::string& cert_file, absl::Time not_after, absl::Time now) {
  Accepted& accepted = AcceptedCertificates();
  absl::MutexLock lock(&accepted.mu);
  auto [it, added] = accepted.not_after.emplace(cert_file, not_after);
  if (!added && it->second == not_after) return;  // the same certificate read again
  it->second = not_after;
  if (not_after - now < kTlsExpiryWarning) {
    spdlog::warn("TLS certificate file {}: the certificate expires in {} (notAfter {}); "
                 "replace it before then",
                 cert_file, absl::FormatDuration(absl::Trunc(not_after - now, absl::Minutes(1))),
                 Utc(not_after));
  }
}

}  // namespace

absl::StatusOr<TlsMaterial> ReadTlsFiles(const TlsFiles& files, absl::Time now) {
  TlsMaterial material;
  auto cert = ReadFile(files.cert_file, "TLS certificate file");
  if (!cert.ok()) return cert.status();
  material.cert_chain = std::move(*cert);
  const std::vector<Cert> chain = ParseCertificates(material.cert_chain);
  if (chain.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "TLS certificate file ", files.cert_file, " holds no PEM certificate"));
  }
  const std::optional<absl::Time> not_before = ToTime(X509_get0_notBefore(chain.front().get()));
  const std::optional<absl::Time> not_after = ToTime(X509_get0_notAfter(chain.front().get()));
  if (!not_before.has_value() || !not_after.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "TLS certificate file ", files.cert_file, ": the certificate's dates cannot be read"));
  }
  const std::string dates =
      absl::StrCat("notBefore ", Utc(*not_before), ", notAfter ", Utc(*not_after));
  if (*not_after < now) {
    return absl::FailedPreconditionError(absl::StrCat("TLS certificate file ", files.cert_file,
                                                      ": the certificate has expired (",
                                                      dates, "; now ", Utc(now), ")"));
  }
  if (*not_before > now + kTlsClockSkew) {
    return absl::FailedPreconditionError(absl::StrCat("TLS certificate file ", files.cert_file,
                                                      ": the certificate is not valid yet (",
                                                      dates, "; now ", Utc(now), ")"));
  }
  material.not_before = *not_before;
  material.not_after = *not_after;
  auto key_text = ReadFile(files.key_file, "TLS key file");
  if (!key_text.ok()) return key_text.status();
  material.private_key = std::move(*key_text);
  Bio key_bio = MemoryBio(material.private_key);
  Key key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "TLS key file ", files.key_file, " holds no PEM private key (or one with a passphrase)"));
  }
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::FailedPreconditionError(
        absl::StrCat("TLS key file ", files.key_file,
                     " does not belong to the certificate in ", files.cert_file));
  }
  if (!files.client_ca_file.empty()) {
    auto ca = ReadFile(files.client_ca_file, "TLS client CA file");
    if (!ca.ok()) return ca.status();
    material.client_ca = std::move(*ca);
    if (ParseCertificates(material.client_ca).empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "TLS client CA file ", files.client_ca_file, " holds no PEM certificate"));
    }
  }
  Accept(files.cert_file, material.not_after, now);
  return material;
}

std::optional<absl::Time> TlsCertificateExpiry(const std::string& cert_file) {
  Accepted& accepted = AcceptedCertificates();
  absl::MutexLock lock(&accepted.mu);
  auto it = accepted.not_after.find(cert_file);
  if (it == accepted.not_after.end()) return std::nullopt;
  return it->second;
}

std::string TlsFilesStamp(const TlsFiles& files) {
  std::string stamp;
  for (const std::string* path : {&files.cert_file, &files.key_file, &files.client_ca_file}) {
    struct stat info = {};
    if (path->empty() || stat(path->c_str(), &info) != 0) {
      stamp += "-;";
      continue;
    }
    absl::StrAppend(&stamp, info.st_ino, ",", info.st_size, ",", info.st_mtim.tv_sec, ".",
                    info.st_mtim.tv_nsec, ",", info.st_ctim.tv_sec, ".", info.st_ctim.tv_nsec,
                    ";");
  }
  return stamp;
}

namespace {

// What the gRPC port's file watcher reads: in-memory files (memfd) at fixed
// /proc/self/fd paths holding the last material ReadTlsFiles accepted. The
// key and its certificate chain share one file (PEM readers skip blocks of
// another type), so replacing it with dup3() swaps the pair at once.
class CheckedCopies {
 public:
  static absl::StatusOr<std::unique_ptr<CheckedCopies>> Start(const TlsFiles& files,
                                                              const TlsMaterial& material) {
    std::unique_ptr<CheckedCopies> copies(new CheckedCopies(files));
    copies->stamp_ = TlsFilesStamp(files);
    if (auto written = copies->Write(material); !written.ok()) return written;
    if (files.refresh_interval > absl::ZeroDuration()) {
      CheckedCopies* raw = copies.get();
      copies->watcher_ = std::thread([raw] {
        while (!raw->stop_.WaitForNotificationWithTimeout(raw->files_.refresh_interval)) {
          raw->Refresh();
        }
      });
    }
    return copies;
  }
  ~CheckedCopies() {
    stop_.Notify();
    if (watcher_.joinable()) watcher_.join();
    for (int fd : {identity_fd_, ca_fd_}) {
      if (fd >= 0) close(fd);
    }
  }
  std::string identity_path() const { return absl::StrCat("/proc/self/fd/", identity_fd_); }
  std::string ca_path() const { return absl::StrCat("/proc/self/fd/", ca_fd_); }

 private:
  explicit CheckedCopies(const TlsFiles& files) : files_(files) {}

  // Puts `text` in a new in-memory file, then makes *fd (kept at the same
  // number, so at the same path) that file.
  static absl::Status Replace(const char* name, const std::string& text, int* fd) {
    const int fresh = memfd_create(name, MFD_CLOEXEC);
    if (fresh < 0) {
      return absl::InternalError(
          absl::StrCat("cannot copy the TLS files into memory: ", std::strerror(errno)));
    }
    size_t written = 0;
    while (written < text.size()) {
      const ssize_t n = write(fresh, text.data() + written, text.size() - written);
      if (n <= 0) {
        close(fresh);
        return absl::InternalError("cannot copy the TLS files into memory");
      }
      written += static_cast<size_t>(n);
    }
    if (*fd < 0) {
      *fd = fresh;
      return absl::OkStatus();
    }
    // dup3 keeps close-on-exec on *fd (dup2 would clear it): no child
    // process inherits the key.
    const int replaced = dup3(fresh, *fd, O_CLOEXEC);
    close(fresh);
    if (replaced < 0) return absl::InternalError("cannot replace the TLS files in memory");
    return absl::OkStatus();
  }

  absl::Status Write(const TlsMaterial& material) {
    if (auto done = Replace("seqserve-tls-identity",
                            absl::StrCat(material.private_key, "\n", material.cert_chain),
                            &identity_fd_);
        !done.ok()) {
      return done;
    }
    if (files_.client_ca_file.empty()) return absl::OkStatus();
    return Replace("seqserve-tls-client-ca", material.client_ca, &ca_fd_);
  }

  void Refresh() {
    const std::string stamp = TlsFilesStamp(files_);
    if (stamp == stamp_ || stamp == refused_stamp_) return;
    auto material = ReadTlsFiles(files_);
    absl::Status status = material.ok() ? Write(*material) : material.status();
    if (!status.ok()) {
      // Logged once per change; half-written files (a key before its
      // certificate) land here too, and the next look takes them settled.
      refused_stamp_ = stamp;
      spdlog::error("gRPC port: {}; the certificate in force stays",
                    std::string(status.message()));
      return;
    }
    stamp_ = stamp;
    refused_stamp_.clear();
    spdlog::info("gRPC port: TLS files changed; new connections get the new certificate");
  }

  const TlsFiles files_;
  int identity_fd_ = -1;
  int ca_fd_ = -1;
  // Only the watcher thread touches these once it runs.
  std::string stamp_;
  std::string refused_stamp_;
  absl::Notification stop_;
  std::thread watcher_;
};

// The credentials and the copies they read, released together.
struct CredentialsWithCopies {
  std::unique_ptr<CheckedCopies> copies;
  std::shared_ptr<grpc::ServerCredentials> credentials;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(
    const TlsFiles& files) {
  auto checked = ReadTlsFiles(files);
  if (!checked.ok()) return checked.status();
  auto copies = CheckedCopies::Start(files, *checked);
  if (!copies.ok()) return copies.status();
  // The copies are in memory: gRPC may look at them every second, and a
  // change reaches it within the files' refresh interval and one second.
  constexpr unsigned kReadCopiesEverySeconds = 1;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (files.client_ca_file.empty()) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        (*copies)->identity_path(), (*copies)->identity_path(), kReadCopiesEverySeconds);
  } else {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        (*copies)->identity_path(), (*copies)->identity_path(), (*copies)->ca_path(),
        kReadCopiesEverySeconds);
  }
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.client_ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  auto held = std::make_shared<CredentialsWithCopies>();
  held->copies = std::move(*copies);
  held->credentials = grpc::experimental::TlsServerCredentials(options);
  // Shares `held`'s lifetime: the copies live as long as the credentials.
  return std::shared_ptr<grpc::ServerCredentials>(held, held->credentials.get());
}

}  // namespace seqserve
