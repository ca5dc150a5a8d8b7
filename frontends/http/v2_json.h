// The Open Inference Protocol's HTTP encoding: its JSON objects (which are
// not a protobuf JSON mapping: shapes are numbers, data may be nested) and
// the binary tensor extension (a JSON header of Inference-Header-Content-
// Length bytes followed by raw tensors), to and from the protocol's
// protobuf messages, so HTTP and gRPC calls share one translation onto the
// inference path (frontends/v2/open_inference.h).
#pragma once

#include "absl/status/status.h"
#include "inference/v2/grpc_predict_v2.pb.h"
#include "nlohmann/json.hpp"
#include "frontends/http/http_server.h"

namespace seqserve {

// The header that splits a body into JSON and binary tensors.
inline constexpr char kInferenceHeaderContentLength[] = "Inference-Header-Content-Length";

// An inference request body (JSON, or JSON plus binary tensors) as a
// ModelInferRequest; model name and version come from the path.
// INVALID_ARGUMENT naming what is wrong.
absl::Status ParseV2InferRequest(const HttpRequest& request,
                                 inference::ModelInferRequest* message);

// The model repository extension's bodies, each optional (an empty body
// asks the defaults): {"ready": bool} for the index, {"parameters": {...}}
// for a load or an unload. The model's name comes from the path.
absl::Status ParseV2RepositoryIndexRequest(const std::string& body,
                                           inference::RepositoryIndexRequest* message);
absl::Status ParseV2RepositoryModelLoadRequest(const std::string& body,
                                               inference::RepositoryModelLoadRequest* message);
absl::Status ParseV2RepositoryModelUnloadRequest(
    const std::string& body, inference::RepositoryModelUnloadRequest* message);
// [{"name", "version", "state", "reason"}, ...]; "version" only when there
// is one.
HttpResponse V2RepositoryIndexResponse(const inference::RepositoryIndexResponse& message);

// The answer as JSON; raw outputs go after it as binary tensors.
HttpResponse V2InferResponse(const inference::ModelInferResponse& message);
HttpResponse V2ModelMetadataResponse(const inference::ModelMetadataResponse& message);
HttpResponse V2ServerMetadataResponse(const inference::ServerMetadataResponse& message);
// {"error": "..."} with the status's HTTP code.
HttpResponse V2ErrorResponse(const absl::Status& status);

// JSON Schemas of these objects, for the OpenAPI document's components:
// V2InferenceRequest, V2InferenceResponse, V2ModelMetadata,
// V2ServerMetadata, V2RepositoryIndexRequest, V2RepositoryIndex,
// V2RepositoryLoadRequest, V2RepositoryUnloadRequest, V2Error.
nlohmann::json V2JsonSchemas();

}  // namespace seqserve
