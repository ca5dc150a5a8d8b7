// Request ids on a real server: x-request-id (gRPC), X-Request-Id (HTTP)
// and the Open Inference Protocol's id route a traffic split (the shares
// hold over 10,000 ids, the same id always reaches the same version,
// whatever the protocol); an id too long or not printable ASCII is
// refused on every transport; every answer carries the call's id, given or
// made, and the access log shows it with a W3C traceparent's trace id.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "frontends/edge/request_id.h"
#include "inference/v2/grpc_predict_v2.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/server_process.h"
#include "tests/support/test_certificates.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using testing::HttpCall;
using testing::HttpReply;

constexpr int kCalls = 10000;
// Binomial: n = 10,000 calls, p = 0.1 to version 2; five sigma.
constexpr double kFiveSigma = 5 * 30.0;

double SeriesValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series + " ")) {
      double value = 0;
      if (absl::SimpleAtod(line, &value)) return value;
    }
  }
  return 0;  // a series not written yet has counted nothing
}

class RequestIdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository_.AddReferenceVersion("species", 1, "species");
    repository_.AddReferenceVersion("species", 2, "species");
    repository_.WriteReferenceConfig("species", "species",
                                     "version_policy { all {} }\n"
                                     "traffic { version: 1 percent: 90 }\n"
                                     "traffic { version: 2 percent: 10 }\n");
    ModelServer::Options options;
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    options.access_log = dir_.Path("access.log");
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    v1_ = v1::Classifier::NewStub(channel);
    v2_ = inference::GRPCInferenceService::NewStub(channel);
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& request_id) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!request_id.empty()) context->AddMetadata("x-request-id", request_id);
    return context;
  }

  grpc::Status Classify(const std::string& request_id, v1::ClassifyResponse* response) {
    v1::ClassifyRequest request;
    request.set_model("species");
    for (float x : {4.0f, 0.0f, 1.0f}) request.add_features(x);
    return v1_->Classify(Context(request_id).get(), request, response);
  }

  // A v2 call with the protocol's `id` and, when given, x-request-id.
  grpc::Status Infer(const std::string& id, const std::string& header,
                     inference::ModelInferResponse* response) {
    inference::ModelInferRequest request;
    request.set_model_name("species");
    request.set_id(id);
    auto* input = request.add_inputs();
    input->set_name(server_->models().Find("species", 1).value()->model->tensor_names().input);
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(3);
    for (float x : {4.0f, 0.0f, 1.0f}) input->mutable_contents()->add_fp32_contents(x);
    return v2_->ModelInfer(Context(header).get(), request, response);
  }

  // The version that answered a REST classify call with this X-Request-Id.
  int64_t RestVersion(const std::string& request_id) {
    const HttpReply reply =
        HttpCall(server_->http_port(), "POST", "/v1/models/species:classify",
                 R"({"features": [4, 0, 1]})", absl::StrCat("X-Request-Id: ", request_id, "\r\n"));
    EXPECT_EQ(reply.status, 200) << reply.body;
    int64_t version = 0;
    EXPECT_TRUE(absl::SimpleAtoi(nlohmann::json::parse(reply.body)["version"].get<std::string>(),
                                 &version));
    return version;
  }

  double Requests(const std::string& protocol, const std::string& method, int version,
                  const std::string& code = "OK") {
    return SeriesValue(server_->MetricsText(),
                       absl::StrCat("seqserve_requests_total{protocol=\"", protocol,
                                    "\",method=\"", method, "\",model=\"species\",version=\"",
                                    version == 0 ? "" : absl::StrCat(version), "\",code=\"",
                                    code, "\"}"));
  }

  testing::TestCertificates dir_;
  testing::TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> v1_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> v2_;
};

TEST_F(RequestIdTest, TheSplitFollowsTheSharesAndAnIdAlwaysReachesItsVersion) {
  std::map<int64_t, int> calls;
  std::vector<int64_t> reached(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    v1::ClassifyResponse response;
    const grpc::Status status = Classify(absl::StrCat("split-", i), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    reached[i] = response.version();
    ++calls[response.version()];
  }
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_NEAR(calls[1], 0.9 * kCalls, kFiveSigma);
  EXPECT_NEAR(calls[2], 0.1 * kCalls, kFiveSigma);
  // The metrics count the split by version.
  EXPECT_EQ(Requests("grpc", "Classify", 1), calls[1]);
  EXPECT_EQ(Requests("grpc", "Classify", 2), calls[2]);
  // The same id, the same version: again over gRPC, and over REST.
  for (int i = 0; i < kCalls; i += 10) {
    const std::string id = absl::StrCat("split-", i);
    v1::ClassifyResponse response;
    ASSERT_TRUE(Classify(id, &response).ok());
    EXPECT_EQ(response.version(), reached[i]) << id;
    if (i % 50 == 0) {
      EXPECT_EQ(RestVersion(id), reached[i]) << id;
    }
  }
}

TEST_F(RequestIdTest, TheOpenInferenceProtocolsIdRoutesAndWinsOverTheHeader) {
  std::map<int64_t, int> calls;
  std::map<int64_t, std::string> an_id_of;  // of each version
  for (int i = 0; i < kCalls; ++i) {
    const std::string id = absl::StrCat("v2-", i);
    inference::ModelInferResponse response;
    const grpc::Status status = Infer(id, "", &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.id(), id);
    int64_t version = 0;
    ASSERT_TRUE(absl::SimpleAtoi(response.model_version(), &version));
    ++calls[version];
    an_id_of[version] = id;
  }
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_NEAR(calls[1], 0.9 * kCalls, kFiveSigma);
  EXPECT_NEAR(calls[2], 0.1 * kCalls, kFiveSigma);
  EXPECT_EQ(Requests("grpc", "ModelInfer", 1), calls[1]);
  EXPECT_EQ(Requests("grpc", "ModelInfer", 2), calls[2]);

  // Each id again, under a header that routes to the other version: the
  // id decides, over gRPC and over HTTP.
  for (const auto& [version, id] : an_id_of) {
    const std::string& other = an_id_of[version == 1 ? 2 : 1];
    for (int again = 0; again < 20; ++again) {
      inference::ModelInferResponse response;
      ASSERT_TRUE(Infer(id, other, &response).ok());
      EXPECT_EQ(response.model_version(), absl::StrCat(version)) << id;
      const HttpReply reply = HttpCall(
          server_->http_port(), "POST", "/v2/models/species/infer",
          absl::StrCat(R"({"id": ")", id,
                       R"(", "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32",)"
                       R"( "data": [4, 0, 1]}]})"),
          absl::StrCat("X-Request-Id: ", other, "\r\n"));
      ASSERT_EQ(reply.status, 200) << reply.body;
      EXPECT_EQ(nlohmann::json::parse(reply.body)["model_version"], absl::StrCat(version));
    }
  }
}

// tests/support/raw_h2_call.py: a unary call whose x-request-id may be any
// bytes (gRPC's own clients send only printable ones).
constexpr char kRawH2Client[] = SEQSERVE_TEST_DATA_DIR "/../support/raw_h2_call.py";

TEST_F(RequestIdTest, AnIdTooLongOrNotPrintableIsRefusedOnEveryTransport) {
  const std::string longest(128, 'a'), too_long(129, 'a');
  // gRPC, seqserve.v1 and v2: the header, then v2's own id.
  v1::ClassifyResponse classified;
  EXPECT_TRUE(Classify(longest, &classified).ok());
  grpc::Status status = Classify(too_long, &classified);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("the request id (x-request-id) has 129 bytes; at most 128"));
  inference::ModelInferResponse inferred;
  EXPECT_TRUE(Infer(longest, longest, &inferred).ok());
  EXPECT_EQ(Infer("", too_long, &inferred).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  status = Infer(too_long, "", &inferred);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("the request id (id) has 129 bytes"));
  status = Infer("line\nbreak", "", &inferred);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("has byte 0x0a at offset 4; only printable ASCII is allowed"));

  // gRPC's clients send no control byte in metadata; a raw HTTP/2 client
  // does. Refused (3: INVALID_ARGUMENT) before the call runs.
  ASSERT_EQ(testing::RunCommand("/usr/bin/python3 -c 'print(1)'").exit_code, 0);
  v1::ClassifyRequest request;
  request.set_model("species");
  for (float x : {4.0f, 0.0f, 1.0f}) request.add_features(x);
  auto raw = [&](const std::string& id) {
    const testing::CommandResult result = testing::RunCommand(absl::StrCat(
        "/usr/bin/python3 ", kRawH2Client, " 127.0.0.1 ", server_->port(),
        " /seqserve.v1.Classifier/Classify - ",
        absl::BytesToHexString(request.SerializeAsString()), " 1 x-request-id=",
        absl::BytesToHexString(id), " 2>&1"));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return std::string(absl::StripTrailingAsciiWhitespace(result.output));
  };
  EXPECT_EQ(raw("printable-id"), "0");  // the script is right
  const double runs_before = Requests("grpc", "Classify", 1) + Requests("grpc", "Classify", 2);
  const std::string refused_series =
      "seqserve_requests_total{protocol=\"grpc\",method=\"Classify\",model=\"\",version=\"\","
      "code=\"INVALID_ARGUMENT\"}";
  const double refused_before = SeriesValue(server_->MetricsText(), refused_series);
  EXPECT_EQ(raw(std::string("tab\there", 8)), "3");
  EXPECT_EQ(raw(std::string("bell\x07", 5)), "3");
  EXPECT_EQ(Requests("grpc", "Classify", 1) + Requests("grpc", "Classify", 2), runs_before);
  // Refused by the edge's check (accounted), not by gRPC's transport.
  EXPECT_EQ(SeriesValue(server_->MetricsText(), refused_series), refused_before + 2);

  // HTTP: seqserve's REST, TF Serving's REST and v2, by the header; v2 by
  // its id too. Each in its protocol's error shape.
  const int port = server_->http_port();
  const std::string rows = R"({"features": [4, 0, 1]})";
  const std::string instances = R"({"instances": [[4, 0, 1]]})";
  const std::string v2_body =
      R"({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32",)"
      R"( "data": [4, 0, 1]}]})";
  for (const std::string& header : {absl::StrCat("X-Request-Id: ", too_long, "\r\n"),
                                    std::string("X-Request-Id: tab\there\r\n")}) {
    for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
             {"/v1/models/species:classify", rows},
             {"/v1/models/species:predict", instances},
             {"/v2/models/species/infer", v2_body}}) {
      const HttpReply reply = HttpCall(port, "POST", path, body, header);
      EXPECT_EQ(reply.status, 400) << path << " " << header;
      const nlohmann::json error = nlohmann::json::parse(reply.body);
      EXPECT_THAT(error["error"].get<std::string>(), HasSubstr("the request id (X-Request-Id)"))
          << path;
      if (path.rfind("/v1/", 0) == 0) {
        EXPECT_EQ(error["code"], "INVALID_ARGUMENT");
      }
    }
    // A probe is not refused for it.
    EXPECT_EQ(HttpCall(port, "GET", "/healthz", "", header).status, 200);
  }
  EXPECT_EQ(HttpCall(port, "POST", "/v1/models/species:classify", rows,
                     absl::StrCat("X-Request-Id: ", longest, "\r\n"))
                .status,
            200);
  const HttpReply bad_id = HttpCall(
      port, "POST", "/v2/models/species/infer",
      R"({"id": "a\u0001b", "inputs": [{"name": "features", "shape": [1, 3],)"
      R"( "datatype": "FP32", "data": [4, 0, 1]}]})");
  EXPECT_EQ(bad_id.status, 400);
  EXPECT_THAT(nlohmann::json::parse(bad_id.body)["error"].get<std::string>(),
              HasSubstr("the request id (id) has byte 0x01 at offset 1"));
  // Every refusal was accounted, as any call is (by its route: refused
  // before the body was read).
  EXPECT_EQ(SeriesValue(server_->MetricsText(),
                        "seqserve_requests_total{protocol=\"http\",method=\"/v1/models/"
                        "{model}:classify\",model=\"\",version=\"\",code=\"INVALID_ARGUMENT\"}"),
            2);
}

bool IsMadeId(const std::string& id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";

// The id goes back with every answer, the caller's or one made for it,
// on both ports; the access log has the same id, and a traceparent's trace
// id beside it, so one call can be followed from a proxy's log to here.
TEST_F(RequestIdTest, EveryAnswerCarriesTheCallsIdAndTheLogHasItWithTheTraceId) {
  std::vector<std::string> echoed;
  for (const std::string& id : {std::string("trace-7f3a"), std::string(), std::string()}) {
    auto context = Context(id);
    context->AddMetadata("traceparent", kTraceparent);
    v1::ClassifyRequest request;
    request.set_model("species");
    for (float x : {4.0f, 0.0f, 1.0f}) request.add_features(x);
    v1::ClassifyResponse response;
    ASSERT_TRUE(v1_->Classify(context.get(), request, &response).ok());
    const auto& metadata = context->GetServerInitialMetadata();
    auto it = metadata.find("x-request-id");
    ASSERT_NE(it, metadata.end());
    echoed.emplace_back(it->second.data(), it->second.size());
  }
  EXPECT_EQ(echoed[0], "trace-7f3a");
  EXPECT_TRUE(IsMadeId(echoed[1])) << echoed[1];
  EXPECT_TRUE(IsMadeId(echoed[2])) << echoed[2];
  EXPECT_NE(echoed[1], echoed[2]);
  for (const std::string& header :
       {std::string("X-Request-Id: rest-1\r\n"), absl::StrCat("traceparent: ", kTraceparent, "\r\n"),
        std::string("traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n")}) {
    const HttpReply reply = HttpCall(server_->http_port(), "POST", "/v1/models/species:classify",
                                     R"({"features": [4, 0, 1]})", header);
    ASSERT_EQ(reply.status, 200) << reply.body;
    echoed.push_back(reply.headers.count("x-request-id") ? reply.headers.at("x-request-id") : "");
  }
  EXPECT_EQ(echoed[3], "rest-1");
  EXPECT_TRUE(IsMadeId(echoed[4])) << echoed[4];
  EXPECT_TRUE(IsMadeId(echoed[5])) << echoed[5];

  server_.reset();  // the log is written out
  std::ifstream file(dir_.Path("access.log"));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), echoed.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["request_id"], echoed[i]) << "call " << i;
    // The gRPC calls and the second REST call sent a valid traceparent;
    // the last one's all-zero trace id makes it invalid: ignored.
    const bool traced = i < 3 || i == 4;
    EXPECT_EQ(lines[i].contains("trace_id"), traced) << "call " << i;
    if (traced) {
      EXPECT_EQ(lines[i]["trace_id"], kTraceId) << "call " << i;
    }
  }
}

// A made id never reaches the answer of the Open Inference Protocol (only
// a caller's own id routes a split or samples a shadow: CallInfo's
// callers_request_id()).
TEST_F(RequestIdTest, AMadeIdIsNotTheOpenInferenceProtocolsId) {
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer("", "", &response).ok());
  EXPECT_EQ(response.id(), "");
}

TEST(TraceContext, TheTraceIdOfAValidTraceparentOnly) {
  EXPECT_EQ(TraceIdOf(kTraceparent), kTraceId);
  // A later version may add fields; version 00 may not.
  EXPECT_EQ(TraceIdOf(absl::StrCat("cc", std::string(kTraceparent).substr(2), "-what-next")),
            kTraceId);
  EXPECT_EQ(TraceIdOf(absl::StrCat(kTraceparent, "-extra")), "");
  for (const std::string bad : {
           "", "00", "garbage",
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
           "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  // misplaced dash
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",  // not hex
       }) {
    EXPECT_EQ(TraceIdOf(bad), "") << bad;
  }
}

TEST(TraceContext, MadeIdsAreHexAndDiffer) {
  const std::string a = NewRequestId(), b = NewRequestId();
  EXPECT_TRUE(IsMadeId(a)) << a;
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace seqserve
