// The HTTP front end: seqserve.v1 as JSON (protobuf's own JSON mapping of
// the same messages, so REST and gRPC cannot drift), TF Serving's REST API
// under the same /v1 paths (tf_serving_json.h), the Open Inference
// Protocol's HTTP endpoints (/v2/...), health endpoints for
// load balancers and Kubernetes probes, Prometheus metrics, the OpenAPI
// document and the web console (a page that calls this same API). A thin
// translator: every model call goes through the InferenceService like a
// gRPC one.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "frontends/edge/access.h"
#include "frontends/http/http_server.h"
#include "serving/inference_service.h"
#include "serving/serving_state.h"
#include "frontends/v2/model_repository_extension.h"
#include "frontends/v2/open_inference.h"

namespace seqserve {

class RestApi {
 public:
  struct Sources {
    InferenceService* inference = nullptr;  // not owned
    OpenInference* open_inference = nullptr;  // not owned
    ModelRepositoryExtension* repository = nullptr;  // not owned
    const ServingState* state = nullptr;  // not owned
    const EdgeGuard* guard = nullptr;  // not owned
    // The metrics text; null when metrics are off (GET /metrics is 404).
    std::function<std::string()> metrics;
    // One model's drift report as JSON (observability/drift_monitor.h),
    // nullopt when none of its versions answered yet; null when off.
    std::function<std::optional<std::string>(const std::string& model)> drift;
    // Serve the web console at GET / (and its script and style).
    bool console = true;
    // The gRPC port, for the commands the console shows.
    int grpc_port = 0;
  };

  // One endpoint. Patterns hold literal segments, {name} segments, and a
  // final "{name}:verb" segment as in Google's API style. The messages say
  // what the body and the answer are (in protobuf's JSON mapping); null
  // for none, or for an answer that is text (`text_response`).
  struct Route {
    const char* method;
    const char* pattern;
    // Who may call it (frontends/edge/access.h).
    Access access;
    const char* summary;
    const google::protobuf::Descriptor* request = nullptr;
    const google::protobuf::Descriptor* response = nullptr;
    const char* text_response = nullptr;  // its content type
    // For JSON that is no protobuf mapping (the Open Inference Protocol's,
    // TF Serving's): schema names among V2JsonSchemas() and
    // TfServingJsonSchemas(). With a message too, the route takes (or
    // answers) either.
    const char* request_schema = nullptr;
    const char* response_schema = nullptr;
    // The error body: "Error" ({code, message, error}) or "V2Error" ({error}).
    const char* error_schema = "Error";
  };
  // Every endpoint this front end serves, in matching order.
  static const std::vector<Route>& Routes();

  explicit RestApi(Sources sources);

  // HttpServer's screen: from the headers alone, 404 or 405 for a route
  // that is not served, 401 or 403 for a caller the route's Access refuses
  // (frontends/edge/access.h); nullopt lets the body be read.
  std::optional<HttpResponse> Screen(HttpRequest* head) const;
  // The HttpServer handler, for requests the screen let on.
  void Handle(const HttpRequest& request, HttpServer::Respond respond);
  // HttpServer's error body: the Open Inference Protocol's shape under /v2,
  // seqserve's elsewhere.
  static HttpResponse ErrorFor(const HttpRequest& head, const absl::Status& status);

 private:
  const Sources sources_;
};

// HTTP status for a gRPC/absl code (the usual google.rpc mapping).
int HttpStatusFor(absl::StatusCode code);
// {"code": "NOT_FOUND", "message": "...", "error": "..."} with that status:
// seqserve's {code, message}, and the same message under "error", where TF
// Serving's clients read it.
HttpResponse ErrorResponse(const absl::Status& status);

}  // namespace seqserve
