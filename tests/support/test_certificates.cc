#include "tests/support/test_certificates.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/support/server_process.h"

namespace seqserve::testing {
namespace {

void Run(const std::string& command) {
  const CommandResult result = RunCommand(command);
  ASSERT_EQ(result.exit_code, 0) << command << "\n" << result.output;
}

}  // namespace

TestCertificates::TestCertificates() {
  std::string pattern = ::testing::TempDir() + "/certs-XXXXXX";
  if (mkdtemp(pattern.data()) != nullptr) dir_ = pattern;
  EXPECT_FALSE(dir_.empty()) << "cannot make a directory for certificates";
}

PemFiles TestCertificates::MakeCa(const std::string& name) {
  PemFiles ca{Path(name + ".pem"), Path(name + ".key")};
  Run(absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 ",
                   "-nodes -days 2 -subj '/CN=", name, "' -keyout ", ca.key, " -out ", ca.cert,
                   " 2>&1"));
  return ca;
}

PemFiles TestCertificates::MakeLeaf(const std::string& name, const PemFiles& ca) {
  PemFiles leaf{Path(name + ".pem"), Path(name + ".key")};
  const std::string request = Path(name + ".csr");
  const std::string extensions = Path(name + ".ext");
  ReplaceFile(extensions, "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  Run(absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
                   "-subj '/CN=", name, "' -keyout ", leaf.key, " -out ", request, " 2>&1"));
  Run(absl::StrCat("openssl x509 -req -in ", request, " -CA ", ca.cert, " -CAkey ", ca.key,
                   " -CAcreateserial -days 2 -extfile ", extensions, " -out ", leaf.cert,
                   " 2>&1"));
  return leaf;
}

PemFiles TestCertificates::MakeLeafValid(const std::string& name, const PemFiles& ca,
                                        absl::Time not_before, absl::Time not_after) {
  PemFiles leaf{Path(name + ".pem"), Path(name + ".key")};
  const std::string request = Path(name + ".csr");
  // `openssl x509 -req` (OpenSSL 3.0) dates a certificate from now only;
  // `openssl ca` takes any dates, with a database and a serial file of its own.
  const std::string config = Path(name + ".ca.cnf");
  ReplaceFile(Path(name + ".ca.db"), "");
  ReplaceFile(Path(name + ".ca.serial"), "01\n");
  ReplaceFile(config, absl::StrCat("[ca]\ndefault_ca = test_ca\n[test_ca]\ndatabase = ",
                                   Path(name + ".ca.db"), "\nserial = ", Path(name + ".ca.serial"),
                                   "\nnew_certs_dir = ", dir_,
                                   "\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
                                   "x509_extensions = leaf\n[any]\ncommonName = supplied\n"
                                   "[leaf]\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n"));
  auto date = [](absl::Time t) {
    return absl::FormatTime("%Y%m%d%H%M%SZ", t, absl::UTCTimeZone());
  };
  Run(absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
                   "-subj '/CN=", name, "' -keyout ", leaf.key, " -out ", request, " 2>&1"));
  Run(absl::StrCat("openssl ca -batch -notext -config ", config, " -cert ", ca.cert,
                   " -keyfile ", ca.key, " -in ", request, " -out ", leaf.cert, " -startdate ",
                   date(not_before), " -enddate ", date(not_after), " 2>&1"));
  return leaf;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void ReplaceFile(const std::string& path, const std::string& contents) {
  const std::string temporary = path + ".new";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << contents;
  }
  ASSERT_EQ(std::rename(temporary.c_str(), path.c_str()), 0) << path;
}

}  // namespace seqserve::testing
