#include "auth/tls_files.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <time.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(
    const TlsFiles& files) {
  if (auto checked = ReadTlsFiles(files); !checked.ok()) return checked.status();
  const unsigned refresh_seconds = static_cast<unsigned>(
      std::max<int64_t>(1, absl::ToInt64Seconds(files.refresh_interval)));
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (files.client_ca_file.empty()) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        files.key_file, files.cert_file, refresh_seconds);
  } else {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        files.key_file, files.cert_file, files.client_ca_file, refresh_seconds);
  }
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.client_ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace seqserve
