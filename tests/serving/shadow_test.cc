// Shadow versions on a real server: every protocol's calls feed the
// comparison, which the metrics report exactly; the callers' answers are
// the bytes a server without a shadow sends; a shadow that holds its
// thread, or whose queue is full, delays and fails no caller; a shutdown
// does not wait for a shadow's work.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "serving/version_routing.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/server_process.h"
#include "tests/support/test_certificates.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using Outcome = ShadowRecord::Outcome;
using ::testing::Not;
using testing::HttpCall;
using testing::HttpReply;

// A 3-in, 3-out text model whose logits are its input plus `bias`.
std::string PassThroughModel(const std::string& bias) {
  return absl::StrCat(
      "input_width: 3\n"
      "layers { linear { in_features: 3 out_features: 3 weight: [1,0,0, 0,1,0, 0,0,1] "
      "bias: [", bias, "] } }\n");
}

// Five rows; under a shadow whose bias is [0, 0, 1] the first and the last
// change their predicted class (0 to 2, 1 to 2), the other three do not.
const std::vector<float> kRows = {1, 0, 0.5f, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, 0.2f};
constexpr int kRowCount = 5;
constexpr char kDisagreeingBias[] = "0, 0, 1";
constexpr char kSameBias[] = "0, 0, 0";

// Tells of every shadow copy; a compared one can be held on its thread (a
// shadow that never finishes) until Release().
class ShadowLog : public RequestObserver {
 public:
  explicit ShadowLog(bool hold = false) : hold_(hold) {}

  void OnStart(const CallRecord&) override {}
  void OnEnd(const CallRecord&) override {}
  void OnShadow(const ShadowRecord& shadow) override {
    if (shadow.outcome == Outcome::kCompared && hold_) {
      if (!holding_.HasBeenNotified()) holding_.Notify();
      release_.WaitForNotification();
    }
    absl::MutexLock lock(&mu_);
    ++told_[shadow.outcome];
    ++total_;
  }

  // Lets every held copy (and every later one) finish.
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }
  // True once a compared copy is held; false after 30 s.
  bool WaitUntilHolding() { return holding_.WaitForNotificationWithTimeout(absl::Seconds(30)); }
  // True once `n` copies were told of; false after 30 s.
  bool WaitFor(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return total_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(30));
  }
  int count(Outcome outcome) {
    absl::MutexLock lock(&mu_);
    return told_[outcome];
  }
  int total() {
    absl::MutexLock lock(&mu_);
    return total_;
  }

 private:
  const bool hold_;
  absl::Notification holding_, release_;
  absl::Mutex mu_;
  std::map<Outcome, int> told_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

// Model "animals": version 1 (all traffic; logits = input) and version 2
// (logits = input + `shadow_bias`), the shadow of `percent` of the calls
// (none at 0), on a server of its own with gRPC and HTTP ports.
class AnimalsServer {
 public:
  AnimalsServer(const std::string& shadow_bias, int percent, RequestObserver* observer,
                ModelServer::Options options = {}) {
    repository_.WriteFile("animals/1/model.textproto", PassThroughModel(kSameBias));
    repository_.WriteFile("animals/2/model.textproto", PassThroughModel(shadow_bias));
    repository_.WriteFile(
        "animals/config.textproto",
        absl::StrCat("labels: [\"bird\", \"mammal\", \"reptile\"]\n"
                     "default_output: OUTPUT_MODE_SOFTMAX\n"
                     "version_policy { all {} }\n"
                     "version_labels { key: \"stable\" value: 1 }\n"
                     "traffic { version: 1 percent: 100 }\n",
                     percent > 0 ? absl::StrCat("shadow { version: 2 percent: ", percent, " }\n")
                                 : ""));
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    options.observer = observer;
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return;
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    v1_ = v1::Classifier::NewStub(channel);
    v2_ = inference::GRPCInferenceService::NewStub(channel);
  }

  ModelServer& server() { return *server_; }
  bool started() const { return server_ != nullptr; }

  grpc::Status Classify(const std::vector<float>& rows, const std::string& request_id,
                        v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!request_id.empty()) context.AddMetadata("x-request-id", request_id);
    v1::ClassifyRequest request;
    request.set_model("animals");
    request.mutable_features()->Add(rows.begin(), rows.end());
    request.set_rows(static_cast<uint32_t>(rows.size() / 3));
    return v1_->Classify(&context, request, response);
  }

  // The answer's bytes over each protocol, for the same rows and id.
  std::vector<std::string> AnswerOnEveryProtocol(const std::string& request_id) {
    std::vector<std::string> answers;
    v1::ClassifyResponse classified;
    const grpc::Status status = Classify(kRows, request_id, &classified);
    EXPECT_TRUE(status.ok()) << status.error_message();
    answers.push_back(classified.SerializeAsString());

    const std::string header = absl::StrCat("X-Request-Id: ", request_id, "\r\n");
    const std::string features = absl::StrJoin(kRows, ",");
    for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
             {"/v1/models/animals:classify",
              absl::StrCat("{\"features\": [", features, "], \"rows\": ", kRowCount, "}")},
             {"/v1/models/animals:predict",
              absl::StrCat("{\"instances\": [", RowsAsJson(), "]}")},
             {"/v2/models/animals/infer",
              absl::StrCat("{\"inputs\": [{\"name\": \"input\", \"shape\": [", kRowCount,
                           ", 3], \"datatype\": \"FP32\", \"data\": [", features, "]}]}")}}) {
      const HttpReply reply = HttpCall(server_->http_port(), "POST", path, body, header);
      EXPECT_EQ(reply.status, 200) << path << ": " << reply.body;
      answers.push_back(reply.body);
    }

    inference::ModelInferRequest request;
    request.set_model_name("animals");
    request.set_id(request_id);
    auto* input = request.add_inputs();
    input->set_name("input");
    input->set_datatype("FP32");
    input->add_shape(kRowCount);
    input->add_shape(3);
    input->mutable_contents()->mutable_fp32_contents()->Add(kRows.begin(), kRows.end());
    inference::ModelInferResponse inferred;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status v2_status = v2_->ModelInfer(&context, request, &inferred);
    EXPECT_TRUE(v2_status.ok()) << v2_status.error_message();
    answers.push_back(inferred.SerializeAsString());
    return answers;
  }
  static constexpr int kProtocols = 5;

 private:
  static std::string RowsAsJson() {
    std::vector<std::string> rows;
    for (int r = 0; r < kRowCount; ++r) {
      rows.push_back(absl::StrCat("[", kRows[3 * r], ",", kRows[3 * r + 1], ",",
                                  kRows[3 * r + 2], "]"));
    }
    return absl::StrJoin(rows, ",");
  }

  testing::TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> v1_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> v2_;
};

// The value of one series in a metrics text; NaN when absent.
double SeriesValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series + " ")) {
      double value = 0;
      if (absl::SimpleAtod(line, &value)) return value;
    }
  }
  return std::nan("");
}

constexpr char kVersions[] = "model=\"animals\",served_version=\"1\",shadow_version=\"2\"";

std::string Series(const std::string& name, const std::string& extra = "") {
  return absl::StrCat(name, "{", kVersions, extra, "}");
}

// Nothing is dropped for want of room: every copy is compared.
ModelServer::Options RoomForEveryCopy() {
  ModelServer::Options options;
  options.shadow.max_pending_calls = 1'000'000;
  options.shadow.max_pending_rows = 100'000'000;
  return options;
}

TEST(Shadow, IdenticalWeightsAgreeOnEveryRowOfEveryProtocol) {
  ShadowLog log;
  AnimalsServer server(kSameBias, 100, &log, RoomForEveryCopy());
  ASSERT_TRUE(server.started());
  constexpr int kRounds = 4;
  for (int i = 0; i < kRounds; ++i) server.AnswerOnEveryProtocol(absl::StrCat("same-", i));
  constexpr int kCalls = kRounds * AnimalsServer::kProtocols;
  ASSERT_TRUE(log.WaitFor(kCalls)) << log.total();
  EXPECT_EQ(log.count(Outcome::kCompared), kCalls);

  const std::string text = server.server().MetricsText();
  constexpr double kSentRows = kCalls * kRowCount;
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_compared_rows_total")), kSentRows);
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_agreed_rows_total")), kSentRows);
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_agreement_ratio")), 1.0);
  // The same weights give the same bits: every row in the 0 bucket.
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_score_difference_bucket", ",le=\"0\"")),
            kSentRows);
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_score_difference_count")), kSentRows);
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_score_difference_sum")), 0.0);
  EXPECT_THAT(text, Not(::testing::HasSubstr("seqserve_shadow_dropped_total{")));
  // Only version 1 answered the callers.
  EXPECT_EQ(SeriesValue(text, "seqserve_requests_total{protocol=\"grpc\",method=\"Classify\","
                              "model=\"animals\",version=\"1\",code=\"OK\"}"),
            kRounds);

  // promtool (Debian's prometheus package) checks format and naming.
  testing::TestCertificates dir;
  const std::string file = dir.Path("metrics.txt");
  std::ofstream(file) << text;
  const testing::CommandResult check =
      testing::RunCommand("promtool check metrics < " + file + " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << "promtool warned";
}

TEST(Shadow, DifferentWeightsDisagreeWhereTheyShouldAndNoAnswerChanges) {
  ShadowLog log;
  AnimalsServer shadowed(kDisagreeingBias, 100, &log, RoomForEveryCopy());
  AnimalsServer alone(kDisagreeingBias, 0, nullptr);
  ASSERT_TRUE(shadowed.started() && alone.started());
  constexpr int kRounds = 4;
  for (int i = 0; i < kRounds; ++i) {
    const std::string id = absl::StrCat("differ-", i);
    // Byte for byte what the same server without a shadow answers.
    EXPECT_EQ(shadowed.AnswerOnEveryProtocol(id), alone.AnswerOnEveryProtocol(id));
  }
  constexpr int kCalls = kRounds * AnimalsServer::kProtocols;
  ASSERT_TRUE(log.WaitFor(kCalls)) << log.total();
  EXPECT_EQ(log.count(Outcome::kCompared), kCalls);

  const std::string text = shadowed.server().MetricsText();
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_compared_rows_total")), kCalls * 5);
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_agreed_rows_total")), kCalls * 3);
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_agreement_ratio")), 0.6);
  // Every row's softmax moved: none is in the 0 bucket, all below 1.
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_score_difference_bucket", ",le=\"0\"")), 0);
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_score_difference_bucket", ",le=\"1\"")),
            kCalls * 5);
  const std::string plain = alone.server().MetricsText();
  EXPECT_THAT(plain, Not(::testing::HasSubstr("seqserve_shadow_compared_rows_total{")));
}

TEST(Shadow, ASampleIsCopiedByTheRequestIdIndependentlyOfTheTrafficSplit) {
  ShadowLog log;
  AnimalsServer server(kSameBias, 30, &log, RoomForEveryCopy());
  ASSERT_TRUE(server.started());
  constexpr int kCalls = 2000;
  int expected = 0, low_traffic_point = 0, both_low = 0;
  for (int i = 0; i < kCalls; ++i) {
    const std::string id = absl::StrCat("sample-", i);
    v1::ClassifyResponse response;
    ASSERT_TRUE(server.Classify({3, 0, 0}, id, &response).ok());
    const bool copied = ShadowPoint(id) < 30;
    expected += copied;
    // Were the sample keyed as the split is, a 30% share would be copied
    // wholly or not at all.
    low_traffic_point += TrafficPoint(id) < 30;
    both_low += copied && TrafficPoint(id) < 30;
  }
  ASSERT_TRUE(log.WaitFor(expected)) << log.total();
  EXPECT_EQ(log.total(), expected);  // each sampled id, and no other
  // Binomial, n = 2000, p = 0.3: sigma 20.5; five of them.
  EXPECT_NEAR(expected, 600, 103);
  // Independent: about 30% of the calls a 30% share takes are copied
  // (n = ~600, p = 0.3: sigma ~11).
  EXPECT_NEAR(both_low, 0.3 * low_traffic_point, 56);
  const std::string text = server.server().MetricsText();
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_compared_rows_total")), expected);
}

TEST(Shadow, AShadowThatHoldsItsThreadDelaysNoCallerAndAFullQueueDropsCopies) {
  ShadowLog log(/*hold=*/true);
  AnimalsServer server(kSameBias, 100, &log);
  ASSERT_TRUE(server.started());
  const ShadowRunner::Limits limits;
  constexpr int kCalls = 200;
  for (int i = 0; i < kCalls; ++i) {
    v1::ClassifyResponse response;
    const grpc::Status status = server.Classify(kRows, absl::StrCat("held-", i), &response);
    ASSERT_TRUE(status.ok()) << "call " << i << ": " << status.error_message();
    ASSERT_EQ(response.results_size(), kRowCount);
  }
  ASSERT_TRUE(log.WaitUntilHolding());
  // The queue took its fill (the held copy among them); the rest were
  // dropped as their calls were answered.
  const int queued = static_cast<int>(limits.max_pending_calls);
  EXPECT_EQ(log.count(Outcome::kQueueFull), kCalls - queued);
  EXPECT_EQ(log.count(Outcome::kCompared), 0);
  log.Release();
  ASSERT_TRUE(log.WaitFor(kCalls)) << log.total();
  EXPECT_EQ(log.count(Outcome::kCompared), queued);
  const std::string text = server.server().MetricsText();
  EXPECT_EQ(SeriesValue(text, Series("seqserve_shadow_compared_rows_total")),
            queued * kRowCount);
  EXPECT_EQ(SeriesValue(text,
                        "seqserve_shadow_dropped_total{model=\"animals\",reason=\"queue_full\"}"),
            kCalls - queued);
  EXPECT_EQ(SeriesValue(text, "seqserve_requests_total{protocol=\"grpc\",method=\"Classify\","
                              "model=\"animals\",version=\"1\",code=\"OK\"}"),
            kCalls);
}

TEST(Shadow, ShutdownDropsTheShadowsWorkInsteadOfWaitingForIt) {
  ShadowLog log(/*hold=*/true);
  AnimalsServer server(kSameBias, 100, &log);
  ASSERT_TRUE(server.started());
  v1::ClassifyResponse response;
  ASSERT_TRUE(server.Classify(kRows, "first", &response).ok());
  ASSERT_TRUE(log.WaitUntilHolding());  // its pass ran; it holds its thread
  constexpr int kQueued = 9;
  for (int i = 0; i < kQueued; ++i) {
    ASSERT_TRUE(server.Classify(kRows, absl::StrCat("queued-", i), &response).ok());
  }
  EXPECT_EQ(log.total(), 0);

  const absl::Duration grace = absl::Seconds(2);
  absl::Notification stopped;
  std::thread stopper([&] {
    server.server().Shutdown(grace);
    stopped.Notify();
  });
  // The held copy still holds its thread: a shutdown that waited for it
  // would not return.
  const bool in_time = stopped.WaitForNotificationWithTimeout(grace + absl::Seconds(3));
  log.Release();
  stopper.join();
  ASSERT_TRUE(in_time) << "Shutdown waited for the shadow's work";
  ASSERT_TRUE(log.WaitFor(kQueued + 1)) << log.total();
  EXPECT_EQ(log.count(Outcome::kShutdown), kQueued);
  EXPECT_EQ(log.count(Outcome::kCompared), 1);
  EXPECT_EQ(SeriesValue(server.server().MetricsText(),
                        "seqserve_shadow_dropped_total{model=\"animals\",reason=\"shutdown\"}"),
            kQueued);
}

TEST(Shadow, AShadowThatCannotTakeTheRowsFailsNoCaller) {
  ShadowLog log;
  testing::TestRepository repository;
  repository.WriteFile("animals/1/model.textproto", PassThroughModel(kSameBias));
  // Four inputs: the served rows do not fit it.
  repository.WriteFile("animals/2/model.textproto",
                       "input_width: 4\n"
                       "layers { linear { in_features: 4 out_features: 3 "
                       "weight: [1,0,0,0, 0,1,0,0, 0,0,1,0] bias: [0,0,0] } }\n");
  repository.WriteFile("animals/config.textproto",
                       "version_policy { all {} }\n"
                       "traffic { version: 1 percent: 100 }\n"
                       "shadow { version: 2 percent: 100 }\n");
  ModelServer::Options options;
  options.model_repository = repository.root();
  options.poll_interval = absl::ZeroDuration();
  options.observer = &log;
  auto server = testing::StartLocalServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Classifier::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    v1::ClassifyRequest request;
    request.set_model("animals");
    request.mutable_features()->Add(kRows.begin(), kRows.end());
    v1::ClassifyResponse response;
    const grpc::Status status = stub->Classify(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.version(), 1);
  }
  ASSERT_TRUE(log.WaitFor(3));
  EXPECT_EQ(log.count(Outcome::kFailed), 3);
  EXPECT_EQ(SeriesValue((*server)->MetricsText(),
                        "seqserve_shadow_dropped_total{model=\"animals\",reason=\"failed\"}"),
            3);
}

TEST(Shadow, ACallThatNamesAVersionOrALabelIsNotCopied) {
  ShadowLog log;
  // One background pass at a time: copies are compared in the order made.
  AnimalsServer server(kSameBias, 100, &log, RoomForEveryCopy());
  ASSERT_TRUE(server.started());
  // Through the HTTP paths that name a version or a label; then one routed
  // call, so that the log has something to wait for.
  for (const char* path : {"/v1/models/animals/versions/1:classify",
                           "/v1/models/animals/labels/stable:classify",
                           "/v2/models/animals/versions/1/infer"}) {
    const std::string body =
        absl::StrContains(path, "v2")
            ? "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 3], \"datatype\": \"FP32\", "
              "\"data\": [3, 0, 0]}]}"
            : "{\"features\": [3, 0, 0]}";
    const HttpReply reply = HttpCall(server.server().http_port(), "POST", path, body);
    ASSERT_EQ(reply.status, 200) << path << ": " << reply.body;
  }
  v1::ClassifyResponse response;
  ASSERT_TRUE(server.Classify({3, 0, 0}, "routed", &response).ok());
  ASSERT_TRUE(log.WaitFor(1));
  EXPECT_EQ(log.total(), 1);
  EXPECT_EQ(SeriesValue(server.server().MetricsText(),
                        Series("seqserve_shadow_compared_rows_total")),
            1);
}

}  // namespace
}  // namespace seqserve
