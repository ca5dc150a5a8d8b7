// The gRPC edge on a real server: who may call each method (walked from
// the services the server itself lists, so a method without an entry in
// frontends/grpc/grpc_methods.cc fails here), and a deadline already
// passed on arrival (raw HTTP/2 frames with "grpc-timeout: 1n").
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <regex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "auth/token_authenticator.h"
#include "frontends/grpc/classifier_service.h"
#include "frontends/grpc/grpc_methods.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "inference/v2/grpc_predict_v2.pb.h"
#include "seqserve/v1/classifier.grpc.pb.h"
#include "server/model_server.h"
#include "tests/server/held_slot.h"
#include "tests/support/local_server.h"
#include "tests/support/server_process.h"
#include "tests/support/test_certificates.h"

namespace seqserve {
namespace {

using ::testing::Contains;
using ::testing::Not;

constexpr char kToken[] = "edge-secret-token-1";

// One mammal row for the species model.
v1::ClassifyRequest SpeciesRequest() {
  v1::ClassifyRequest request;
  request.set_model("species");
  for (float x : {4.0f, 0.0f, 1.0f}) request.add_features(x);
  request.set_rows(1);
  return request;
}

class GrpcEdgeTest : public ::testing::Test {
 protected:
  void Start(ModelServer::Options options) {
    options.model_repository = SEQSERVE_MODELS_DIR;
    options.poll_interval = absl::ZeroDuration();
    auto server = testing::StartLocalServer(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(Target(), grpc::InsecureChannelCredentials());
  }

  std::string Target() const { return absl::StrCat("127.0.0.1:", server_->port()); }

  testing::TestCertificates dir_;  // a fresh directory for the tokens file
  std::unique_ptr<ModelServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// The full names of the services the server lists over reflection.
std::vector<std::string> ListedServices(const std::shared_ptr<grpc::Channel>& channel,
                                        const std::string& authorization) {
  auto stub = grpc::reflection::v1::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", authorization);
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  std::vector<std::string> names;
  grpc::reflection::v1::ServerReflectionResponse response;
  while (stream->Read(&response)) {
    for (const auto& service : response.list_services_response().service()) {
      names.push_back(service.name());
    }
  }
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  return names;
}

struct Outcome {
  bool answered = false;  // a response message came back
  grpc::Status status;
};

// Calls `path` with one empty message (valid for every proto3 request),
// unary or streaming alike, and `authorization` unless empty; a stream that
// answers once is then cancelled (health's Watch never ends on its own).
Outcome CallOnce(const std::shared_ptr<grpc::Channel>& channel, const std::string& path,
                 const std::string& authorization) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  auto call = stub.PrepareCall(&context, path, &queue);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&] { EXPECT_TRUE(queue.Next(&tag, &ok)); };
  call->StartCall(&tag);
  step();
  grpc::ByteBuffer empty(nullptr, 0);
  call->Write(empty, &tag);
  step();
  if (ok) {
    call->WritesDone(&tag);
    step();
  }
  Outcome outcome;
  grpc::ByteBuffer reply;
  call->Read(&reply, &tag);
  step();
  outcome.answered = ok;
  if (outcome.answered) context.TryCancel();
  call->Finish(&outcome.status, &tag);
  step();
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  return outcome;
}

TEST_F(GrpcEdgeTest, EveryMethodAdmitsCallersAsTheMethodTableSays) {
  const std::string tokens = dir_.Path("tokens.txt");
  testing::ReplaceFile(tokens, absl::StrCat("edge:", kToken, "\n"));
  auto authenticator = TokenAuthenticator::Start({tokens, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  ModelServer::Options options;
  options.authenticator = authenticator->get();
  Start(options);

  const std::string right = absl::StrCat("Bearer ", kToken);
  const std::vector<std::string> services = ListedServices(channel_, right);
  ASSERT_EQ(services.size(), 5u);
  std::vector<std::string> walked;
  for (const std::string& service_name : services) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service_name);
    ASSERT_NE(service, nullptr) << service_name;
    for (int i = 0; i < service->method_count(); ++i) {
      const std::string method = service->method(i)->name();
      walked.push_back(absl::StrCat(service_name, "/", method));
      SCOPED_TRACE(walked.back());
      const GrpcMethod& entry = FindGrpcMethod(service_name, method);
      ASSERT_EQ(entry.service, service_name) << "no entry in the gRPC method table";
      const std::string path = absl::StrCat("/", service_name, "/", method);
      const Outcome none = CallOnce(channel_, path, "");
      const Outcome wrong = CallOnce(channel_, path, "Bearer edge-secret-token-2");
      const Outcome lower = CallOnce(channel_, path, absl::StrCat("bearer ", kToken));
      const Outcome upper = CallOnce(channel_, path, right);
      if (entry.access == Access::kOpen) {
        // A probe answers anyone, with its answer (its request is empty).
        EXPECT_TRUE(none.answered) << none.status.error_message();
        EXPECT_TRUE(wrong.answered) << wrong.status.error_message();
      } else {
        EXPECT_FALSE(none.answered);
        EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
        EXPECT_FALSE(wrong.answered);
        EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
      }
      // The scheme is matched without regard to case (RFC 7235).
      EXPECT_NE(lower.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << lower.status.error_message();
      EXPECT_NE(upper.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << upper.status.error_message();
    }
  }
  // And the table names nothing the server does not serve.
  for (const GrpcMethod& method : GrpcMethods()) {
    EXPECT_THAT(walked, Contains(absl::StrCat(method.service, "/", method.name)));
  }
  EXPECT_EQ(FindGrpcMethod("inference.GRPCInferenceService", "ServerMetadata").access,
            Access::kToken);
}

// A unary gRPC call over raw HTTP/2 (h2c, prior knowledge) with any
// grpc-timeout, which gRPC's own clients round; prints one line per try:
// the first grpc-status the server sent, "rst" or "closed". HPACK literals
// only: the first grpc-status on a new connection is sent as a literal,
// whether our handler answered or gRPC's deadline timer did (its trailers
// are then followed by RST_STREAM).
constexpr char kRawH2Client[] = R"PY(
import socket, struct, sys
host, port, path, timeout, payload, tries = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], bytes.fromhex(sys.argv[5]), int(sys.argv[6])

def frame(kind, flags, stream, body):
    return struct.pack(">I", len(body))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + body

def literal(name, value):  # literal header field, never indexed, plain strings
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x10" + bytes([len(name)]) + name + bytes([len(value)]) + value

def one_call():
    s = socket.create_connection((host, port), timeout=10)
    headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
               (":authority", "%s:%d" % (host, port)), ("content-type", "application/grpc"),
               ("te", "trailers")]
    if timeout != "-":
        headers.append(("grpc-timeout", timeout))
    block = b"".join(literal(n, v) for n, v in headers)
    message = b"\x00" + struct.pack(">I", len(payload)) + payload
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") +
              frame(1, 4, 1, block) + frame(0, 1, 1, message))
    data, status = b"", None
    while status is None:
        chunk = s.recv(65536)
        if not chunk:
            status = "closed"
            break
        data += chunk
        while status is None and len(data) >= 9:
            length = int.from_bytes(data[:3], "big")
            if len(data) < 9 + length:
                break
            kind, flags = data[3], data[4]
            stream = int.from_bytes(data[5:9], "big") & 0x7fffffff
            body, data = data[9:9 + length], data[9 + length:]
            if kind == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0, b""))
            elif kind == 6 and not flags & 1:
                s.sendall(frame(6, 1, 0, body))
            elif kind == 3 and stream == 1:
                status = "rst"
            elif kind == 1 and stream == 1 and b"grpc-status" in body:
                at = body.index(b"grpc-status") + len(b"grpc-status")
                size = body[at] & 0x7f
                status = "huffman" if body[at] & 0x80 else body[at + 1:at + 1 + size].decode()
    s.close()
    print(status, flush=True)

for _ in range(tries):
    one_call()
)PY";

class GrpcDeadlineTest : public GrpcEdgeTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(testing::RunCommand("/usr/bin/python3 -c 'print(1)'").exit_code, 0);
    script_ = dir_.Path("raw_h2_call.py");
    testing::ReplaceFile(script_, kRawH2Client);
    Start({});
  }

  // What each of `tries` calls of `path` with `timeout` ("-": none) got.
  std::vector<std::string> RawCalls(const std::string& path, const std::string& timeout,
                                    const std::string& payload, int tries) {
    const testing::CommandResult result = testing::RunCommand(absl::StrCat(
        "/usr/bin/python3 ", script_, " 127.0.0.1 ", server_->port(), " ", path, " ", timeout,
        " ", absl::BytesToHexString(payload), " ", tries, " 2>&1"));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  }

  void ExpectExpiredWithoutRunning(const std::string& path, const std::string& payload) {
    // The script and payload are right: without a timeout the call runs.
    const InferenceRunner::Stats before = server_->inference_stats();
    EXPECT_THAT(RawCalls(path, "-", payload, 1), ::testing::ElementsAre("0"));
    const InferenceRunner::Stats control = server_->inference_stats();
    EXPECT_EQ(control.requests, before.requests + 1);

    EXPECT_THAT(RawCalls(path, "1n", payload, 5), ::testing::Each("4"));
    const InferenceRunner::Stats after = server_->inference_stats();
    EXPECT_EQ(after.passes, control.passes);
    EXPECT_EQ(after.requests, control.requests);
    EXPECT_EQ(after.expired, control.expired);  // never queued either
  }

  std::string script_;
};

TEST_F(GrpcDeadlineTest, ClassifyWithADeadlinePassedOnArrivalDoesNotRun) {
  ExpectExpiredWithoutRunning("/seqserve.v1.Classifier/Classify",
                              SpeciesRequest().SerializeAsString());
}

TEST_F(GrpcDeadlineTest, V2ModelInferWithADeadlinePassedOnArrivalDoesNotRun) {
  auto species = server_->models().Find("species", 0);
  ASSERT_TRUE(species.ok()) << species.status();
  inference::ModelInferRequest request;
  request.set_model_name("species");
  auto* input = request.add_inputs();
  input->set_name((*species)->model->tensor_names().input);
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(3);
  for (float x : {4.0f, 0.0f, 1.0f}) input->mutable_contents()->add_fp32_contents(x);
  ExpectExpiredWithoutRunning("/inference.GRPCInferenceService/ModelInfer",
                              request.SerializeAsString());
}

}  // namespace
}  // namespace seqserve
