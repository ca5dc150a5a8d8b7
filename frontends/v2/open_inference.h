// The Open Inference Protocol (KServe v2) over the protocol-neutral
// inference path, shared by its gRPC service and its HTTP/JSON endpoints:
// a v2 request becomes a seqserve.v1 ClassifyRequest plus the outputs it
// names, runs through InferenceService::ClassifyOutputs (the same checks,
// batching, deadlines, metrics and tokens as Classify) and the answers
// become v2 tensors. Nothing here validates rows or applies heads.
//
// The mapping: one input tensor, named as in the model, shape [rows,
// input width], FP32 (FP64, FP16, BF16, integer and BOOL elements are
// converted; refused when FP32 cannot hold them exactly or at all).
// Outputs by name: "logits", "sigmoid", "softmax", "log_softmax" and the
// graph's own output name for the default head; none named gives the
// default one. An output with parameter "classification": k answers BYTES
// "<score>:<index>[:<label>]" for the k best classes of each row.
//
// Explanations: the output "attributions" (FP64, [rows, input width]) holds
// each feature's attribution to a class's score, computed by
// InferenceService::Explain (counted as an Explain call of its own). It is
// answered when asked for by name or when the request has the parameter
// "explain" (the method: "integrated_gradients", "saliency",
// "input_x_gradient", "shapley"); "explain_target" (a class index or
// label; default: each row's predicted class), "explain_output" (the
// score's form, as the output names), "explain_steps" and "explain_rule"
// say the rest, as ExplainRequest's fields do.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inference/v2/grpc_predict_v2.pb.h"
#include "serving/call.h"
#include "serving/inference_service.h"

namespace seqserve {

// The protocol's name for a model version: "" is the highest (0); anything
// but a positive integer is INVALID_ARGUMENT.
absl::StatusOr<int64_t> ParseV2Version(const std::string& version);

class OpenInference {
 public:
  // The extensions ServerMetadata lists.
  static const std::vector<std::string>& Extensions();

  // `inference` must outlive this; `server_ready` tells whether the server
  // as a whole is ready (a model loaded, not draining).
  OpenInference(InferenceService* inference, std::function<bool()> server_ready);

  bool ServerReady() const;
  // OK when the model (version) can answer now; else NOT_FOUND or
  // UNAVAILABLE saying why, INVALID_ARGUMENT for a bad version.
  absl::Status ModelReady(const std::string& name, const std::string& version) const;
  void ServerMetadata(inference::ServerMetadataResponse* response) const;
  absl::Status ModelMetadata(const inference::ModelMetadataRequest& request,
                             const CallInfo& call,
                             inference::ModelMetadataResponse* response);

  // When the answer's tensors are raw bytes (raw_output_contents) rather
  // than typed contents.
  enum class RawOutput {
    // Raw when the request's parameter "binary_data_output" or an output's
    // "binary_data" is true (HTTP's binary tensor extension).
    kWhenAsked,
    // Also raw when the inputs came raw (gRPC: what Triton's clients send
    // and expect).
    kWhenAskedOrInputRaw,
  };

  // A call refused before it could be read: accounted like any other.
  absl::Status Refuse(const CallInfo& call, absl::Status status) {
    return inference_->Refuse(call, std::move(status));
  }

  // Runs `request` into `response`; `done` as InferenceService::Classify's.
  // `request` and `response` must stay valid until `done` runs.
  void Infer(const inference::ModelInferRequest& request, CallInfo call, RawOutput raw,
             inference::ModelInferResponse* response, InferenceService::Done done);

 private:
  InferenceService* inference_;
  std::function<bool()> server_ready_;
};

// One v2 call on its way through the inference path: what Read() makes of
// the request (the rows, the outputs asked and how to answer them), the
// answers the pass fills in, and WriteAnswer() turning them into tensors.
// Public so the translation can be tested and fuzzed without a server.
struct V2Call {
  // An output as asked: its name (empty: the model's own, named by the
  // graph) and whether it answers "<score>:<index>:<label>" strings.
  struct AskedOutput {
    std::string name;
    bool classification = false;
  };

  // INVALID_ARGUMENT naming what in `request` cannot be served.
  absl::Status Read(const inference::ModelInferRequest& request,
                    OpenInference::RawOutput raw);
  // The answer to `request` (the one Read() took) from `answers`.
  void WriteAnswer(const inference::ModelInferRequest& request,
                   inference::ModelInferResponse* response) const;

  v1::ClassifyRequest classify;
  // With "attributions" asked for: the explanation's request and answer.
  std::optional<v1::ExplainRequest> explain;
  v1::ExplainResponse explanation;
  std::vector<OutputRequest> outputs;  // what the plan checks, one per asked
  std::vector<AskedOutput> asked;
  TensorInterface tensors;
  std::vector<v1::ClassifyResponse> answers;  // filled by ClassifyOutputs
  bool raw_output = false;
  // The request's "timeout" parameter; infinite when it has none.
  absl::Duration timeout = absl::InfiniteDuration();
};

}  // namespace seqserve
