// Payload capture: real servers' calls read back from the capture files
// (count and content), sampling at 0.1 within a binomial bound, rotation by
// size, age and total, CloudEvents received by an HTTP sink in the test,
// and a stalled sink that neither slows calls nor holds the shutdown.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/text_format.h"
#include "nlohmann/json.hpp"
#include "observability/capture_files.h"
#include "observability/payload_capture.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "serving/client_text.h"
#include "serving/model_config.h"
#include "serving/preprocessing.h"
#include "tests/auth/log_capture.h"
#include "tests/support/http_client.h"
#include "tests/support/local_server.h"
#include "tests/support/test_repository.h"

namespace seqserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The lines of every capture file of `model` in `directory`, oldest first.
std::vector<json> ReadCaptured(const std::string& directory, const std::string& model) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    if (CaptureFiles::IsCaptureFile(model, name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::vector<json> records;
  for (const std::string& name : names) {
    std::ifstream in(fs::path(directory) / name);
    for (std::string line; std::getline(in, line);) records.push_back(json::parse(line));
  }
  return records;
}

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

// A 3-in, 3-out text model whose logits are its input.
constexpr char kPassThrough[] =
    "input_width: 3\n"
    "layers { linear { in_features: 3 out_features: 3 weight: [1,0,0, 0,1,0, 0,0,1] "
    "bias: [0, 0, 0] } }\n";

// Model "animals" with capture as `capture` says, on a server with gRPC and
// HTTP ports.
class CaptureServer {
 public:
  explicit CaptureServer(const std::string& capture, ModelServer::Options options = {}) {
    repository_.WriteFile("animals/1/model.textproto", kPassThrough);
    repository_.WriteFile("animals/config.textproto",
                          absl::StrCat("labels: [\"bird\", \"mammal\", \"reptile\"]\n"
                                       "feature_names: [\"limbs\", \"eggs\", \"hair\"]\n"
                                       "default_output: OUTPUT_MODE_SOFTMAX\n"
                                       "capture { ",
                                       capture, " }\n"));
    options.model_repository = repository_.root();
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options, /*with_http=*/true);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return;
    server_ = std::move(*server);
    stub_ = v1::Classifier::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  ModelServer& server() { return *server_; }
  bool started() const { return server_ != nullptr; }
  const std::string& root() const { return repository_.root(); }

  grpc::Status Classify(const std::vector<float>& rows, const std::string& request_id,
                        v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    context.AddMetadata("x-request-id", request_id);
    v1::ClassifyRequest request;
    request.set_model("animals");
    request.mutable_features()->Add(rows.begin(), rows.end());
    return stub_->Classify(&context, request, response);
  }

 private:
  testing::TestRepository repository_;
  std::unique_ptr<ModelServer> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

// Rows of call `i`: 1 to 3 rows, values that differ per call.
std::vector<float> RowsOf(int i) {
  std::vector<float> rows;
  for (int r = 0; r <= i % 3; ++r) {
    rows.insert(rows.end(), {static_cast<float>(i), 0.25f * r, -1.5f + i * 0.1f});
  }
  return rows;
}

TEST(PayloadCapture, EveryCallAtRateOneReadsBackAsItWasMade) {
  CaptureServer animals("sample_rate: 1 files { directory: \"captured\" }");
  ASSERT_TRUE(animals.started());
  constexpr int kCalls = 8;  // each over gRPC and over REST
  std::map<std::string, std::pair<std::vector<float>, json>> made;  // by request id
  for (int i = 0; i < kCalls; ++i) {
    const std::vector<float> rows = RowsOf(i);
    v1::ClassifyResponse response;
    const std::string grpc_id = absl::StrCat("grpc-", i);
    const grpc::Status status = animals.Classify(rows, grpc_id, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    json answer = json::array();
    for (const v1::RowResult& row : response.results()) {
      json expected = json::object();
      expected["scores"] = std::vector<float>(row.scores().begin(), row.scores().end());
      expected["predicted_index"] = row.predicted_index();
      expected["predicted_label"] = row.predicted_label();
      answer.push_back(expected);
    }
    made[grpc_id] = {rows, answer};

    const std::string http_id = absl::StrCat("http-", i);
    const testing::HttpReply reply = testing::HttpCall(
        animals.server().http_port(), "POST", "/v1/models/animals:classify",
        absl::StrCat("{\"features\": [", absl::StrJoin(rows, ","), "]}"),
        absl::StrCat("X-Request-Id: ", http_id, "\r\n"));
    ASSERT_EQ(reply.status, 200) << reply.body;
    json rest_answer = json::array();
    const json rest = json::parse(reply.body);
    for (const json& row : rest.at("results")) {
      json expected = json::object();
      expected["scores"] = row["scores"];
      expected["predicted_index"] = row["predicted_index"];
      expected["predicted_label"] = row["predicted_label"];
      rest_answer.push_back(expected);
    }
    made[http_id] = {rows, rest_answer};
  }
  animals.server().Shutdown(absl::Seconds(10));  // writes what is queued

  const std::vector<json> records =
      ReadCaptured((fs::path(animals.root()) / "animals" / "captured").string(), "animals");
  ASSERT_EQ(records.size(), 2u * kCalls);
  for (json record : records) {  // copies: a missing key reads as null
    const std::string id = record["request_id"];
    ASSERT_TRUE(made.count(id)) << record.dump();
    auto [rows, answer] = made.at(id);
    EXPECT_EQ(record["model"], "animals");
    EXPECT_EQ(record["version"], 1);
    EXPECT_EQ(record["protocol"], absl::StartsWith(id, "grpc") ? "grpc" : "http");
    EXPECT_EQ(record["output"], "softmax");
    EXPECT_EQ(record["labels"], json({"bird", "mammal", "reptile"}));
    ASSERT_EQ(record["rows"].size(), rows.size() / 3) << id;
    for (size_t r = 0; r < rows.size() / 3; ++r) {
      json row = record["rows"][r];
      json features = row["features"];
      EXPECT_EQ(features["limbs"].get<float>(), rows[3 * r]) << id;
      EXPECT_EQ(features["eggs"].get<float>(), rows[3 * r + 1]) << id;
      EXPECT_EQ(features["hair"].get<float>(), rows[3 * r + 2]) << id;
      EXPECT_EQ(row["inputs"].get<std::vector<float>>(),
                std::vector<float>(rows.begin() + 3 * r, rows.begin() + 3 * r + 3));
      EXPECT_EQ(row["scores"].get<std::vector<float>>(),
                answer[r]["scores"].get<std::vector<float>>())
          << id;
      EXPECT_EQ(row["predicted_index"], answer[r]["predicted_index"]) << id;
      EXPECT_EQ(row["predicted_label"], answer[r]["predicted_label"]) << id;
    }
    made.erase(id);  // each call exactly once
  }
  EXPECT_TRUE(made.empty());
}

// A served model and the pieces of one answered one-row call, for telling
// the observer directly.
struct SyntheticCall {
  explicit SyntheticCall(const std::string& capture_text) {
    served.name = "synthetic";
    served.version = 3;
    served.config.add_feature_names("x");
    served.config.add_feature_names("colour");
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(capture_text,
                                                              served.config.mutable_capture()));
    numbers = {2.5f, 0};
    categories.Add("");
    categories.Add("red");
    response.set_output(v1::OUTPUT_MODE_SIGMOID);
    v1::RowResult* row = response.add_results();
    row->add_scores(0.75f);
    row->set_predicted_index(1);
    row->set_score(0.75f);
    inputs = {2.5f, 1, 0};
  }
  // Its one row as sent; Record() points at it.
  RawRowsView Raw() const { return RawRowsView(1, 2, numbers, categories, {0, 1}); }
  // The call as the server reports it, over `raw` (from Raw()).
  PayloadRecord Record(const RawRowsView& raw) const {
    PayloadRecord record;
    record.served = &served;
    record.raw = &raw;
    record.inputs = inputs;
    record.response = &response;
    return record;
  }
  void TellTo(PayloadObserver& observer, const std::string& request_id) {
    const RawRowsView raw = Raw();
    PayloadRecord record = Record(raw);
    record.protocol = "grpc";
    record.request_id = request_id;
    record.time = absl::Now();
    observer.OnPayload(record);
  }
  ServedModel served;
  std::vector<float> numbers;
  google::protobuf::RepeatedPtrField<std::string> categories;
  v1::ClassifyResponse response;
  std::vector<float> inputs;
};

TEST(PayloadCapture, SamplesAboutRateTimesCallsAndEveryCallAtOne) {
  const std::string directory = ::testing::TempDir() + "/capture-sampling";
  fs::remove_all(directory);
  for (const double rate : {0.1, 1.0}) {
    SyntheticCall call(absl::StrCat("sample_rate: ", rate, " files { directory: \"", directory,
                                    "/", rate, "\" }"));
    PayloadCapture::Options options;
    options.max_queued_records = 20000;  // no drops: the count is the sampling's
    PayloadCapture capture(options);
    constexpr int kCalls = 10000;
    for (int i = 0; i < kCalls; ++i) call.TellTo(capture, absl::StrCat("id-", i));
    capture.Shutdown(absl::Now() + absl::Seconds(30));
    const size_t written = ReadCaptured(absl::StrCat(directory, "/", rate), "synthetic").size();
    EXPECT_EQ(capture.written("synthetic", "files"), written);
    EXPECT_EQ(capture.dropped("synthetic"), 0u);
    if (rate == 1.0) {
      EXPECT_EQ(written, static_cast<size_t>(kCalls));
    } else {
      // Six standard deviations of Binomial(10000, 0.1): 6 * 30.
      EXPECT_NEAR(static_cast<double>(written), kCalls * rate, 180.0);
    }
  }
  // Categories as strings, numbers as numbers, in the model's order.
  json first = ReadCaptured(directory + "/1", "synthetic").front();
  EXPECT_EQ(first["rows"][0]["features"], json::parse(R"({"x": 2.5, "colour": "red"})"));
  EXPECT_EQ(first["rows"][0]["inputs"], json::parse("[2.5, 1, 0]"));
  EXPECT_EQ(first["output"], "sigmoid");
  EXPECT_EQ(first["version"], 3);
}

// The record's exact bytes: feature names written as keys from the
// version's shared shape, categories and numbers in the model's order.
TEST(CaptureRecord, AFormattedCallIsExactlyItsLine) {
  SyntheticCall call("sample_rate: 1 files { directory: \"unused\" }");
  call.served.config.add_labels("no");
  call.served.config.add_labels("y\"es");
  const RawRowsView raw = call.Raw();
  PayloadRecord record = call.Record(raw);
  record.protocol = "http";
  record.request_id = "r-1";
  record.caller = "ops";
  record.time = absl::FromUnixMicros(1796479488020263);
  const std::shared_ptr<const CaptureShape> shape = MakeCaptureShape(call.served, 2);
  const CapturedCall first = CopyPayload(record, shape);
  const CapturedCall second = CopyPayload(record, shape);
  EXPECT_EQ(first.shape, shape);  // shared, not copied
  EXPECT_EQ(second.shape, shape);
  const std::string expected =
      R"({"model":"synthetic","version":3,"time":"2026-12-05T14:04:48.020263Z",)"
      R"("request_id":"r-1","caller":"ops","protocol":"http","output":"sigmoid",)"
      R"("labels":["no","y\"es"],"rows":[{"features":{"x":2.5,"colour":"red"},)"
      R"("inputs":[2.5,1,0],"scores":[0.75],"predicted_index":1,"predicted_label":"",)"
      R"("score":0.75}]})";
  EXPECT_EQ(FormatCapturedCall(first), expected);
  // A shape made for another width is not used: the names are this call's.
  const CapturedCall third = CopyPayload(record, MakeCaptureShape(call.served, 3));
  EXPECT_EQ(FormatCapturedCall(third), expected);
}

// Times in UTC to the microsecond, whatever second each record falls in
// (the writer keeps the part up to the second between records).
TEST(CaptureRecord, TimesAreUtcToTheMicrosecond) {
  SyntheticCall call("sample_rate: 1 files { directory: \"unused\" }");
  const RawRowsView raw = call.Raw();
  PayloadRecord record = call.Record(raw);
  for (const int64_t micros : {int64_t{1796479488000001}, int64_t{1796479488999999},
                               int64_t{1796479489000000}, int64_t{1796479488020263},
                               int64_t{0}, int64_t{-1}, int64_t{-1000000}}) {
    record.time = absl::FromUnixMicros(micros);
    const json line = json::parse(FormatCapturedCall(CopyPayload(record)));
    EXPECT_EQ(line["time"],
              absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", record.time, absl::UTCTimeZone()))
        << micros;
  }
  // Beyond what int64 microseconds hold: written as absl writes them.
  for (const absl::Time time : {absl::InfinitePast(), absl::InfiniteFuture()}) {
    record.time = time;
    const json line = json::parse(FormatCapturedCall(CopyPayload(record)));
    EXPECT_EQ(line["time"], absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone()));
  }
}

// A model without preprocessing reads the features as sent: its inputs are
// written with the same text, a missing value as null.
TEST(CaptureRecord, InputsThatAreTheFeaturesAreTheirText) {
  ServedModel served;
  served.name = "plain";
  served.version = 1;
  for (const char* name : {"a", "b", "c"}) served.config.add_feature_names(name);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> numbers = {1.5f, -0.0f, 1e-45f, nan, 3.4028235e38f, 0.1f};
  const google::protobuf::RepeatedPtrField<std::string> no_categories;
  const RawRowsView raw(2, 3, numbers, no_categories, {0, 1, 2});
  v1::ClassifyResponse response;
  response.set_output(v1::OUTPUT_MODE_LOGITS);
  for (int r = 0; r < 2; ++r) {
    v1::RowResult* row = response.add_results();
    row->add_scores(0.5f);
    row->set_score(0.5f);
  }
  PayloadRecord record;
  record.served = &served;
  record.raw = &raw;
  record.inputs = numbers;
  record.response = &response;
  record.time = absl::FromUnixMicros(1796479488020263);
  const std::string line = FormatCapturedCall(CopyPayload(record));
  EXPECT_THAT(line, ::testing::HasSubstr(
                        R"("rows":[{"features":{"a":1.5,"b":-0,"c":1e-45},"inputs":[1.5,-0,1e-45],)"))
      << line;
  EXPECT_THAT(line, ::testing::HasSubstr(
                        R"({"features":{"a":null,"b":3.4028235e+38,"c":0.1},)"
                        R"("inputs":[null,3.4028235e+38,0.1],)"))
      << line;
  // Inputs that differ from the features are their own numbers.
  const std::vector<float> scaled = {3, -1, 0.5f, nan, 2, 0.25f};
  record.inputs = scaled;
  EXPECT_THAT(FormatCapturedCall(CopyPayload(record)),
              ::testing::HasSubstr(R"("inputs":[3,-1,0.5],)"));
}

// Client text is quoted as JsonQuoteClientText quotes it, whether plain
// ASCII (written as it is) or not.
TEST(CaptureRecord, ClientTextIsQuotedAsEverywhere) {
  SyntheticCall call("sample_rate: 1 files { directory: \"unused\" }");
  const RawRowsView raw = call.Raw();
  PayloadRecord record = call.Record(raw);
  for (const std::string& text :
       {std::string(""), std::string("abc-123 ~{}"), std::string("a\"b"), std::string("a\\b"),
        std::string("line\nbreak"), std::string("del\x7f"), std::string("caf\xc3\xa9"),
        std::string("bad\xff"), std::string("\xf0\x9f\x98\x80"), std::string(" !/~")}) {
    record.request_id = text;
    const std::string line = FormatCapturedCall(CopyPayload(record));
    EXPECT_THAT(line, ::testing::HasSubstr(absl::StrCat("\"request_id\":",
                                             JsonQuoteClientText(text, size_t{1} << 30),
                                             ",\"caller\":")))
        << line;
  }
}

// A new version at the same address (its own preprocessing) brings its own
// capture config: records go where the answering version says.
TEST(PayloadCapture, ANewVersionAtTheSameAddressTakesItsOwnConfig) {
  const std::string directory = ::testing::TempDir() + "/capture-same-address";
  fs::remove_all(directory);
  SyntheticCall call(absl::StrCat("sample_rate: 1 files { directory: \"", directory, "/a\" }"));
  auto preprocessing = [&] {
    auto made = Preprocessing::Create(call.served.config, 2);
    EXPECT_TRUE(made.ok()) << made.status();
    return *made;
  };
  call.served.preprocessing = preprocessing();
  PayloadCapture capture;
  for (int i = 0; i < 3; ++i) call.TellTo(capture, absl::StrCat("a-", i));
  call.served.config.mutable_capture()->mutable_files()->set_directory(directory + "/b");
  call.served.config.set_feature_names(0, "y");
  call.served.preprocessing = preprocessing();
  for (int i = 0; i < 2; ++i) call.TellTo(capture, absl::StrCat("b-", i));
  capture.Shutdown(absl::Now() + absl::Seconds(10));
  const std::vector<json> a = ReadCaptured(directory + "/a", "synthetic");
  const std::vector<json> b = ReadCaptured(directory + "/b", "synthetic");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[0]["rows"][0]["features"], json::parse(R"({"x": 2.5, "colour": "red"})"));
  EXPECT_EQ(b[1]["rows"][0]["features"], json::parse(R"({"y": 2.5, "colour": "red"})"));
  EXPECT_EQ(capture.written("synthetic", "files"), 5u);
}

TEST(PayloadCapture, QueueBeyondItsBoundDropsAndCounts) {
  const std::string directory = ::testing::TempDir() + "/capture-bound";
  fs::remove_all(directory);
  SyntheticCall call(absl::StrCat("sample_rate: 1 files { directory: \"", directory, "\" }"));
  PayloadCapture::Options options;
  options.max_queued_records = 0;  // nothing fits
  PayloadCapture capture(options);
  for (int i = 0; i < 100; ++i) call.TellTo(capture, "x");
  capture.Shutdown(absl::Now() + absl::Seconds(10));
  EXPECT_EQ(capture.dropped("synthetic"), 100u);
  ExpositionWriter out;
  capture.RenderMetrics(out);
  EXPECT_EQ(SeriesValue(out.text(), "seqserve_capture_dropped_total{model=\"synthetic\"}"), 100);
}

TEST(CaptureFiles, RotatesBySizeAndAgeAndRemovesTheOldestPastTheTotal) {
  const std::string directory = ::testing::TempDir() + "/capture-rotation";
  fs::remove_all(directory);
  fs::create_directories(directory);
  // Another model's file in the same directory is never touched.
  std::ofstream(fs::path(directory) / "other-20260101T000000.000000Z-000001.jsonl") << "{}\n";
  v1::CaptureConfig::Files config;
  config.set_directory(directory + "/created");  // made when missing
  config.set_max_file_bytes(1000);
  config.set_max_total_bytes(3000);
  auto files = CaptureFiles::Create("m", config);
  ASSERT_TRUE(files.ok()) << files.status();
  const absl::Time start = absl::FromUnixSeconds(1'800'000'000);
  const std::string line(99, 'x');  // 100 bytes with its newline
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE((*files)->Write(absl::StrCat(i, ":", line.substr(3)), start).ok());
  }
  (*files)->Flush();
  std::vector<std::string> names;
  uint64_t total = 0;
  for (const auto& entry : fs::directory_iterator(config.directory())) {
    names.push_back(entry.path().filename().string());
    EXPECT_LE(entry.file_size(), 1000u) << names.back();
    total += entry.file_size();
  }
  // 10 files of 10 lines were begun; past 3000 bytes the oldest went.
  EXPECT_LE(total, 3000u + 1000u);
  EXPECT_GE(names.size(), 3u);
  EXPECT_LE(names.size(), 4u);
  std::vector<json> kept;
  std::sort(names.begin(), names.end());
  {
    std::ifstream oldest(fs::path(config.directory()) / names.front());
    std::string first;
    std::getline(oldest, first);
    EXPECT_TRUE(absl::StartsWith(first, absl::StrCat(100 - 10 * names.size(), ":")))
        << first << " in " << names.front();
  }
  EXPECT_TRUE(fs::exists(fs::path(directory) / "other-20260101T000000.000000Z-000001.jsonl"));

  // Age: a write past max_file_seconds (default 3600) begins a new file.
  const std::string before = (*files)->current_path();
  ASSERT_TRUE((*files)->Write("late", start + absl::Seconds(3601)).ok());
  EXPECT_NE((*files)->current_path(), before);
  // And an idle file is closed once old.
  (*files)->Tick(start + absl::Seconds(2 * 3601 + 1));
  EXPECT_EQ((*files)->current_path(), "");
}

// An HTTP/1.1 server on a free port that records each POST and answers
// 200, or (stalled) reads requests and never answers.
class TestSink {
 public:
  struct Event {
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
  };

  explicit TestSink(bool stall) : stall_(stall) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(listen(listener_, 16), 0);
    socklen_t length = sizeof(address);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestSink() {
    stop_ = true;
    thread_.join();
    close(listener_);
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_, "/events"); }
  bool WaitForEvents(size_t n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(30));
  }
  std::vector<Event> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  // Waits up to 100 ms for `fd` to be readable; false when stopping.
  bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, 100) > 0;
  }
  void Serve() {
    while (!stop_) {
      if (!Readable(listener_)) continue;
      const int connection = accept(listener_, nullptr, nullptr);
      if (connection < 0) continue;
      Converse(connection);
      close(connection);
    }
  }
  void Converse(int connection) {
    std::string buffer;
    char chunk[4096];
    while (!stop_) {
      if (!Readable(connection)) continue;
      const ssize_t got = read(connection, chunk, sizeof(chunk));
      if (got <= 0) return;  // the client closed (a timeout, a new connection)
      buffer.append(chunk, static_cast<size_t>(got));
      for (;;) {
        const size_t end = buffer.find("\r\n\r\n");
        if (end == std::string::npos) break;
        Event event;
        size_t length = 0;
        std::vector<std::string> lines = absl::StrSplit(buffer.substr(0, end), "\r\n");
        for (size_t i = 1; i < lines.size(); ++i) {
          const size_t colon = lines[i].find(':');
          if (colon == std::string::npos) continue;
          std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
          std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
          if (name == "content-length") {
            EXPECT_TRUE(absl::SimpleAtoi(value, &length));
          }
          event.headers[name] = value;
        }
        if (buffer.size() < end + 4 + length) break;
        event.body = buffer.substr(end + 4, length);
        buffer.erase(0, end + 4 + length);
        {
          absl::MutexLock lock(&mu_);
          events_.push_back(std::move(event));
        }
        if (stall_) continue;  // never answered
        const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        EXPECT_EQ(write(connection, ok.data(), ok.size()), static_cast<ssize_t>(ok.size()));
      }
    }
  }

  const bool stall_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
};

TEST(PayloadCapture, SinkReceivesCloudEventsWithTheToken) {
  TestSink sink(/*stall=*/false);
  const std::string token_file = ::testing::TempDir() + "/capture-sink-token";
  std::ofstream(token_file) << "s3cret-token\n";
  CaptureServer animals(absl::StrCat("sample_rate: 1 http { url: \"", sink.url(),
                                     "\" token_file: \"", token_file, "\" }"));
  ASSERT_TRUE(animals.started());
  constexpr int kCalls = 3;
  for (int i = 0; i < kCalls; ++i) {
    v1::ClassifyResponse response;
    ASSERT_TRUE(animals.Classify(RowsOf(i), absl::StrCat("call-", i), &response).ok());
  }
  ASSERT_TRUE(sink.WaitForEvents(kCalls));
  const std::vector<TestSink::Event> events = sink.events();
  ASSERT_EQ(events.size(), static_cast<size_t>(kCalls));  // no retries of a 200
  for (int i = 0; i < kCalls; ++i) {
    const auto& headers = events[i].headers;
    EXPECT_EQ(headers.at("ce-specversion"), "1.0");
    EXPECT_EQ(headers.at("ce-id"), absl::StrCat("call-", i));
    EXPECT_EQ(headers.at("ce-type"), "org.seqserve.capture.payload");
    EXPECT_THAT(headers.at("ce-source"), ::testing::MatchesRegex("seqserve://.+/models/animals"));
    absl::Time time;
    std::string error;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, headers.at("ce-time"), &time, &error))
        << headers.at("ce-time") << ": " << error;
    EXPECT_LT(absl::AbsDuration(absl::Now() - time), absl::Minutes(1));
    EXPECT_EQ(headers.at("ce-inferenceservicename"), "animals");
    EXPECT_EQ(headers.at("ce-modelversion"), "1");
    EXPECT_EQ(headers.at("ce-endpoint"), "1");
    EXPECT_EQ(headers.at("ce-component"), "predictor");
    EXPECT_EQ(headers.at("content-type"), "application/json");
    EXPECT_EQ(headers.at("authorization"), "Bearer s3cret-token");
    json body = json::parse(events[i].body);
    EXPECT_EQ(body["request_id"], absl::StrCat("call-", i));
    EXPECT_EQ(body["model"], "animals");
    EXPECT_EQ(body["rows"].size(), static_cast<size_t>(i % 3 + 1));
    EXPECT_EQ(body["rows"][0]["features"]["limbs"], i);
  }
  animals.server().Shutdown(absl::Seconds(5));
  EXPECT_EQ(SeriesValue(animals.server().MetricsText(),
                        "seqserve_capture_records_total{model=\"animals\",destination=\"http\"}"),
            kCalls);
}

TEST(PayloadCapture, StalledSinkSlowsNoCallAndHoldsNoShutdown) {
  TestSink sink(/*stall=*/true);
  ModelServer::Options options;
  options.capture.sink.max_queued_events = 4;
  CaptureServer animals(absl::StrCat("sample_rate: 1 http { url: \"", sink.url(), "\" }"),
                        options);
  ASSERT_TRUE(animals.started());
  const std::string dropped = "seqserve_capture_dropped_total{model=\"animals\"}";
  for (int i = 0; i < 50; ++i) {
    v1::ClassifyResponse response;
    const absl::Time start = absl::Now();
    ASSERT_TRUE(animals.Classify(RowsOf(i), absl::StrCat("stalled-", i), &response).ok());
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "call " << i;
  }
  // One event is held by the sink, four wait: the rest are dropped as the
  // writer reaches them.
  ASSERT_TRUE(sink.WaitForEvents(1));
  double seen = 0;
  for (const absl::Time until = absl::Now() + absl::Seconds(30);
       absl::Now() < until && !(seen >= 45); absl::SleepFor(absl::Milliseconds(20))) {
    seen = SeriesValue(animals.server().MetricsText(), dropped);
  }
  EXPECT_GE(seen, 45);
  const absl::Time start = absl::Now();
  animals.server().Shutdown(absl::Seconds(2));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  // What the sink never took is counted too.
  EXPECT_EQ(SeriesValue(animals.server().MetricsText(), dropped), 50);
}

TEST(PayloadCapture, SinkThatIsDownIsRetriedAndNoSecretIsLogged) {
  // A port nothing listens on: bound, then closed.
  int port = 0;
  {
    TestSink gone(/*stall=*/false);
    port = std::stoi(gone.url().substr(gone.url().rfind(':') + 1));
  }
  const std::string token_file = ::testing::TempDir() + "/capture-down-token";
  std::ofstream(token_file) << "t0ken-in-file\n";
  testing::LogCapture log;
  {
    SyntheticCall call(absl::StrCat("sample_rate: 1 http { url: \"http://user:pa55word@127.0.0.1:",
                                    port, "/events?key=qu3ry\" token_file: \"", token_file,
                                    "\" }"));
    PayloadCapture capture;
    call.TellTo(capture, "down-1");
    // Failures come back off after 100 ms, 200 ms, ...: several within a second.
    for (const absl::Time until = absl::Now() + absl::Seconds(30);
         capture.errors("synthetic", "http") < 3 && absl::Now() < until;) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_GE(capture.errors("synthetic", "http"), 3u);
    EXPECT_EQ(capture.written("synthetic", "http"), 0u);
    capture.Shutdown(absl::Now() + absl::Milliseconds(200));
    EXPECT_EQ(capture.dropped("synthetic"), 1u);  // never sent: lost at the shutdown
  }
  EXPECT_FALSE(log.Lines("retrying with backoff").empty()) << log.text();
  for (const char* secret : {"pa55word", "qu3ry", "t0ken-in-file"}) {
    EXPECT_THAT(log.text(), ::testing::Not(::testing::HasSubstr(secret)));
  }
}

TEST(PayloadCapture, ConfigsOutOfRangeAreRefusedAtLoad) {
  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"capture { sample_rate: 1.5 files { directory: \"c\" } }", "between 0 and 1"},
           {"capture { sample_rate: -0.1 files { directory: \"c\" } }", "between 0 and 1"},
           {"capture { sample_rate: nan files { directory: \"c\" } }", "between 0 and 1"},
           {"capture { sample_rate: 1 files { max_file_bytes: 10 } }", "needs a directory"},
           {"capture { sample_rate: 1 http { url: \"ftp://sink\" } }", "not an http://"}}) {
    v1::ModelConfig config;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
    const absl::Status checked = CheckModelConfig(config);
    EXPECT_EQ(checked.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(checked.message(), ::testing::HasSubstr(message)) << text;
  }
  v1::ModelConfig good;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      "capture { sample_rate: 0.5 files { directory: \"c\" } http { url: \"HTTPS://sink\" } }",
      &good));
  EXPECT_TRUE(CheckModelConfig(good).ok());
}

}  // namespace
}  // namespace seqserve
