// The web console in a real browser: Debian's chromium, driven by
// tests/web/console-check.js (puppeteer-core), against the seqserve binary
// on a repository with the species sample, a binary model with two labels
// (and a row limit that refuses integrated gradients' 50 steps) and a model
// whose labels are HTML; plain, with tokens, and over TLS with tokens.
// Skipped, with the reason, only when chromium cannot start here.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/server_process.h"
#include "tests/support/test_certificates.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;

// Runs console-check.js against a server on the species sample, a binary
// model and a model whose labels are HTML; with `token`, the server
// requires it; with `tls`, both ports speak TLS with a certificate signed
// by a CA made here, saved as ca.pem (the name the page's commands use).
void CheckConsole(const std::string& token, bool tls = false) {
  testing::TestRepository repository;
  repository.AddReferenceVersion("species", 1, "species");
  repository.WriteReferenceConfig("species", "species",
                                  "feature_names: ['limbs', 'lays_eggs', 'has_hair']\n"
                                  "drift { baseline_file: 'baseline.textproto' }\n");
  repository.WriteFile("species/baseline.textproto",
                       "features { name: 'limbs' edges: [1, 3, 5] counts: [1, 1, 8, 1] }\n"
                       "features { name: 'lays_eggs' edges: [0.5] counts: [5, 5] }\n"
                       "features { name: 'has_hair' edges: [0.5] counts: [5, 5] }\n"
                       "class_counts: [3, 4, 3]\n");
  repository.AddReferenceVersion("churn", 1, "mammal");
  // 16 rows a request: under the 50 of integrated gradients.
  repository.WriteFile("churn/config.textproto",
                       "labels: ['stays', 'churns']\nmax_request_rows: 16\n");
  repository.AddReferenceVersion("canary", 1, "species");
  repository.AddReferenceVersion("canary", 2, "species");
  repository.WriteFile("canary/config.textproto",
                       "version_policy { all {} }\n"
                       "version_labels { key: 'stable' value: 1 }\n"
                       "traffic { version: 1 percent: 100 }\n"
                       "shadow { version: 2 percent: 100 }\n");
  repository.AddReferenceVersion("pets", 1, "species");
  repository.WriteReferenceConfig("pets", "species",
                                  "feature_names: ['limbs', 'coat']\n"
                                  "preprocessing { feature: 'limbs' missing_value: 4 }\n"
                                  "preprocessing { feature: 'coat' "
                                  "one_hot { categories: ['feathers', 'hair'] } }\n");
  repository.AddReferenceVersion("hostile", 1, "species");
  repository.WriteFile("hostile/config.textproto",
                       "labels: ['<script>window.pwned=1</script>', "
                       "'<img src=x onerror=window.pwned=2>', 'plain']\n");
  std::vector<std::string> flags = {"--model_repository=" + repository.root(),
                                    "--poll_seconds=0"};
  if (!token.empty()) {
    repository.WriteFile("tokens.txt", "console:" + token + "\n");
    flags.push_back("--auth_tokens_file=" + repository.root() + "/tokens.txt");
  }
  testing::TestCertificates certificates;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (tls) {
    const testing::PemFiles ca = certificates.MakeCa("ca");
    const testing::PemFiles served = certificates.MakeLeaf("server", ca);
    flags.push_back("--tls_cert_file=" + served.cert);
    flags.push_back("--tls_key_file=" + served.key);
    credentials = grpc::SslCredentials(
        grpc::SslCredentialsOptions{testing::ReadWholeFile(ca.cert), "", ""});
  }
  testing::ServerProcess server(SEQSERVE_PATH, flags, credentials);
  ASSERT_TRUE(server.ready()) << server.output();
  ASSERT_GT(server.http_port(), 0);
  const std::string screenshot =
      ::testing::TempDir() + (tls ? "/seqserve-console-tls.png" : "/seqserve-console.png");
  const auto result = testing::RunCommand(absl::StrCat(
      tls ? "SEQSERVE_CA_DIR=" + certificates.dir() + " " : "", "node ", SEQSERVE_SOURCE_DIR,
      "/tests/web/console-check.js ", tls ? "https" : "http", "://127.0.0.1:",
      server.http_port(), " ", screenshot, " ", server.port(), " ", token, " 2>&1"));
  if (result.exit_code == 77) GTEST_SKIP() << result.output;
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("ok   sigmoid: chart scores"));
  EXPECT_THAT(result.output, HasSubstr("ok   churn logits: chart scores"));
  EXPECT_THAT(result.output, HasSubstr("ok   log_softmax: the likeliest class has the longest bar"));
  EXPECT_THAT(result.output, HasSubstr("ok   live panel counts the 3 unserved calls in one row"));
  EXPECT_THAT(result.output, HasSubstr("ok   curl command runs and answers as REST does"));
  EXPECT_THAT(result.output, HasSubstr("ok   live panel shows the shadow's agreement"));
  EXPECT_THAT(result.output, HasSubstr("ok   species logits shapley: values printed"));
  EXPECT_THAT(result.output,
              HasSubstr("ok   species softmax integrated_gradients: up right of the axis"));
  EXPECT_THAT(result.output, HasSubstr("ok   species softmax: limbs pushed mammal down"));
  EXPECT_THAT(result.output, HasSubstr("ok   churn integrated_gradients: the server's refusal"));
  EXPECT_THAT(result.output, HasSubstr("ok   species drift: a chart per feature and the class"));
  if (!token.empty()) {
    EXPECT_THAT(result.output, HasSubstr("ok   without a token the page says why"));
  }
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(WebConsole, WorksInChromiumAndShowsHostileLabelsAsText) { CheckConsole(""); }

TEST(WebConsole, AsksForTheTokenWhenTheServerRequiresOne) { CheckConsole("console-secret"); }

TEST(WebConsole, OverTlsItsCommandsNameTheCaAndTheToken) {
  CheckConsole("console-secret", /*tls=*/true);
}

}  // namespace
}  // namespace seqserve
