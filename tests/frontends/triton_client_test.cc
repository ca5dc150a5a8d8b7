// Triton's own Python clients (tritonclient.http and tritonclient.grpc,
// vendored in tests/third_party/tritonclient) against the real server:
// tests/frontends/triton_client.py runs a named scenario through both and
// compares the answers with PyTorch's reference numbers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/support/reference_data.h"
#include "tests/support/server_process.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TestRepository;

// The script's command for `scenario` against the ports of `server`;
// `ports` is "--http", "--grpc" or both.
std::string TritonClientCommand(const ServerProcess& server, const std::string& scenario,
                                const std::string& ports = "--http --grpc") {
  std::string command = absl::StrCat(
      "timeout 120 /usr/bin/python3 " SEQSERVE_TESTS_DIR "/frontends/triton_client.py"
      " --library " SEQSERVE_TRITON_CLIENT " --reference ",
      testing::ReferenceDir(), "/species.json");
  if (absl::StrContains(ports, "--http")) {
    absl::StrAppend(&command, " --http 127.0.0.1:", server.http_port());
  }
  if (absl::StrContains(ports, "--grpc")) absl::StrAppend(&command, " --grpc ", server.target());
  return absl::StrCat(command, " ", scenario, " 2>&1");
}

// One server for the suite: the reference species model under its name,
// with its labels, so answers can be held to PyTorch's numbers.
class TritonClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repository_ = new TestRepository();
    repository_->AddReferenceVersion("species", 1, "species");
    repository_->WriteReferenceConfig("species", "species");
    repository_->AddReferenceVersion("pets", 1, "species");
    repository_->WriteReferenceConfig(
        "pets", "species",
        "feature_names: ['limbs', 'coat']\n"
        "preprocessing { feature: 'coat' one_hot { categories: ['feathers', 'hair'] "
        "unknown: UNKNOWN_ZEROS } }\n");
    server_ = new ServerProcess(
        SEQSERVE_PATH, {"--model_repository=" + repository_->root(), "--poll_seconds=0"});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete repository_;
  }
  void SetUp() override { ASSERT_TRUE(server_->ready()) << server_->output(); }

  static inline TestRepository* repository_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
};

TEST_F(TritonClientTest, InferOverHttpAndGrpcMatchesTheReference) {
  const auto result = RunCommand(TritonClientCommand(*server_, "infer"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* protocol : {"http", "grpc"}) {
    SCOPED_TRACE(protocol);
    const std::string p = absl::StrCat(protocol, ": ");
    EXPECT_THAT(result.output, HasSubstr(p + "server live and ready, model species ready, "
                                             "no-such-model not ready"));
    EXPECT_THAT(result.output, HasSubstr(p + "server seqserve " SEQSERVE_VERSION
                                             ", extensions: classification binary_tensor_data "
                                             "model_repository"));
    EXPECT_THAT(result.output, HasSubstr(p + "model species: input features FP32 [-1, 3], "
                                             "outputs logits sigmoid softmax log_softmax"));
    EXPECT_THAT(result.output, HasSubstr(p + "top-2 classes of 15 rows match the reference: "
                                             "4,0,1 -> 1:1:mammal"));
  }
  EXPECT_THAT(result.output, HasSubstr("http: softmax of 15 rows (JSON) matches the reference"));
  EXPECT_THAT(result.output,
              HasSubstr("http: softmax of 15 rows (binary) matches the reference"));
  EXPECT_THAT(result.output, HasSubstr("grpc: softmax of 15 rows (raw) matches the reference"));
  EXPECT_THAT(result.output,
              HasSubstr("infer: the http JSON, http binary, grpc raw answers are identical"));
  EXPECT_THAT(result.output, HasSubstr("infer: OK"));
  EXPECT_THAT(result.output, Not(HasSubstr("Traceback")));
  EXPECT_THAT(result.output, Not(HasSubstr("Warning")));
}

// A preprocessed model's features as inputs by name, text as BYTES, in
// each client's forms (HTTP JSON and binary, gRPC raw).
TEST_F(TritonClientTest, FeaturesByNameOverHttpAndGrpc) {
  const auto result = RunCommand(TritonClientCommand(*server_, "features"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* line : {"http: model pets: inputs limbs FP32 [-1], coat BYTES [-1]",
                           "grpc: model pets: inputs limbs FP32 [-1], coat BYTES [-1]",
                           "http: pets by feature (JSON) answers species' bits for 4 rows",
                           "http: pets by feature (binary) answers species' bits for 4 rows",
                           "grpc: pets by feature (raw) answers species' bits for 4 rows",
                           "features: OK"}) {
    EXPECT_THAT(result.output, HasSubstr(line));
  }
  EXPECT_THAT(result.output, Not(HasSubstr("Traceback")));
}

// Triton's load_model, unload_model and get_model_repository_index against
// a server under explicit model control, over both clients.
TEST(TritonClient, RepositoryCallsIndexLoadAndUnloadOverHttpAndGrpc) {
  TestRepository repository;
  for (const char* name : {"species", "mammal"}) {
    repository.AddReferenceVersion(name, 1, name);
    repository.WriteReferenceConfig(name, name);
  }
  ServerProcess server(SEQSERVE_PATH, {"--model_repository=" + repository.root(),
                                       "--model_control_mode=explicit", "--load_model=species"});
  ASSERT_TRUE(server.ready()) << server.output();
  const auto result = RunCommand(TritonClientCommand(server, "repository"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* protocol : {"http", "grpc"}) {
    SCOPED_TRACE(protocol);
    const std::string p = absl::StrCat(protocol, ": ");
    EXPECT_THAT(result.output,
                HasSubstr(p + "index: species 1 READY, mammal UNAVAILABLE (unloaded)"));
    EXPECT_THAT(result.output, HasSubstr(p + "load_model('mammal'): ready"));
    EXPECT_THAT(result.output,
                HasSubstr(p + "load_model with a config: 4,0,1 -> Mammal, then mammal again"));
    EXPECT_THAT(result.output, HasSubstr(p + "unload_model('mammal'): not ready"));
    EXPECT_THAT(result.output, HasSubstr(p + "load_model('no-such-model') refused: model "
                                             "'no-such-model' is not in the repository"));
  }
  EXPECT_THAT(result.output, HasSubstr("repository: OK"));
  EXPECT_THAT(result.output, Not(HasSubstr("Traceback")));
}

// The script fails, naming the client and the row, when the answers are
// not the reference's: the sample species model of models/ is another
// training of the same network.
TEST(TritonClient, InferFailsWhenTheServerAnswersOtherNumbers) {
  ServerProcess other(SEQSERVE_PATH,
                      {"--model_repository=" SEQSERVE_MODELS_DIR, "--poll_seconds=0"});
  ASSERT_TRUE(other.ready()) << other.output();
  auto result = RunCommand(TritonClientCommand(other, "infer"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("triton_client.py: infer FAILED: http: softmax (JSON) row "));
  EXPECT_THAT(result.output, HasSubstr(", the reference "));
  EXPECT_THAT(result.output, Not(HasSubstr("infer: OK")));
  result = RunCommand(TritonClientCommand(other, "infer", "--grpc"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("triton_client.py: infer FAILED: grpc: softmax (raw) row "));
  // A refused call names the client and the call.
  other.Stop(SIGTERM);
  result = RunCommand(TritonClientCommand(other, "infer", "--grpc"));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("triton_client.py: infer FAILED: grpc: is_server_live: "
                        "[StatusCode.UNAVAILABLE]"));
}

}  // namespace
}  // namespace seqserve
