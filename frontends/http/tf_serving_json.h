// TensorFlow Serving's REST API, as its api_rest.md specifies it: the JSON
// bodies of predict, classify, model status and model metadata, to and from
// seqserve's own messages, so a TF Serving client's calls take the same
// path through InferenceService as every other protocol's. Only the shapes
// live here; the routes are rest_api.cc's.
//
// How a seqserve model looks to a TF Serving client: one signature,
// "serving_default" (method tensorflow/serving/predict), whose input
// "features" is DT_FLOAT [-1, input width] and whose one output, named as
// the graph names it, is the model's default output, DT_FLOAT
// [-1, output width]. Predict answers that output per row; classify
// answers every class with its probability (serving's
// OutputRequest::every_class). A value is a JSON number, a string (the
// category of a one_hot feature, or a number as text) or null (a missing
// value, for a feature whose preprocessing gives a default): the NaN and
// Infinity tokens TF Serving's parser also takes are refused, with a
// message that says so, since seqserve refuses non-finite features over
// every protocol.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "frontends/http/http_server.h"
#include "nlohmann/json.hpp"
#include "seqserve/v1/classifier.pb.h"
#include "serving/classify.h"

namespace seqserve {

// The one signature every model is served with, and its input's name.
inline constexpr char kTfServingSignature[] = "serving_default";
inline constexpr char kTfServingInput[] = "features";
// The key of seqserve's own metadata (a seqserve.v1.GetModelMetadataResponse)
// in GetModelMetadataResponse's `metadata` map, beside "signature_def".
inline constexpr char kSeqserveMetadataKey[] = "seqserve";

// What a TF Serving predict or classify body asks, as seqserve asks it.
struct TfServingRows {
  // The rows (`features`, `rows`, the strings as `categories`, and the
  // feature names as `columns` when the rows are objects keyed by them);
  // model and version come from the path.
  v1::ClassifyRequest request;
  // Predict in the columnar form ("inputs"): answered as "outputs".
  bool columnar = false;
};

// POST :classify takes seqserve's ClassifyRequest and TF Serving's classify
// request; their top-level keys tell them apart.
enum class ClassifyBody { kSeqserve, kTfServing };
// kTfServing when the body has a key of TF Serving's request
// ("examples", "context", "signature_name"; "instances" and "inputs" too,
// to be refused as TF Serving's), kSeqserve otherwise (a body that does
// not parse is left to seqserve's parser to refuse). INVALID_ARGUMENT for
// a body that has keys of both. One pass over the bytes, parsing nothing.
absl::StatusOr<ClassifyBody> ClassifyBodyOf(absl::string_view body);

// `{"signature_name", "instances" | "inputs"}`: rows as lists of the
// model's input width, objects keyed by feature name, or objects holding
// one list under "features"; columns as a list of rows, or an object
// keyed by feature name (or holding the rows under "features").
// INVALID_ARGUMENT naming what is wrong.
absl::Status ParseTfPredictRequest(absl::string_view body, TfServingRows* rows);
// `{"signature_name", "context", "examples"}`: each example an object as a
// predict row; the context's features are given to every example, and a
// feature in both the context and an example is refused.
absl::Status ParseTfClassifyRequest(absl::string_view body, TfServingRows* rows);

// {"predictions": [[...], ...]} (rows) or {"outputs": [[...], ...]}
// (columnar): the scores of each row, as over gRPC.
HttpResponse TfPredictResponse(const v1::ClassifyResponse& answer, bool columnar);
// {"result": [[["label", probability], ...], ...]} from an every_class
// answer. The same list is also under "results": api_rest.md names it
// "result", TF Serving's server has always sent "results"
// (util/json_tensor.cc), and clients are written against either.
HttpResponse TfClassifyResponse(const v1::ClassifyResponse& answer);
// GetModelStatusResponse: {"model_version_status": [{"version", "state",
// "status": {"error_code", "error_message"}}]}, states as TF names them
// (AVAILABLE, LOADING, END for a version that failed to load, UNKNOWN).
HttpResponse TfModelStatusResponse(const v1::ModelStatus& status);
// GetModelMetadataResponse: {"model_spec", "metadata": {"signature_def":
// SignatureDefMap, "seqserve": seqserve.v1.GetModelMetadataResponse}},
// each map value an Any in protobuf's JSON mapping (with its "@type").
HttpResponse TfModelMetadataResponse(const v1::GetModelMetadataResponse& metadata);

// JSON Schemas of these bodies, for the OpenAPI document's components:
// TfPredictRequest, TfPredictResponse, TfClassifyRequest,
// TfClassifyResponse, TfModelStatus, TfModelMetadata. Request schemas
// carry an example that the sample models answer.
nlohmann::json TfServingJsonSchemas();

}  // namespace seqserve
