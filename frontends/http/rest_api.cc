#include "frontends/http/rest_api.h"

#include <google/protobuf/util/json_util.h>

#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "serving/client_text.h"
#include "serving/output_mode_name.h"
#include "frontends/edge/request_id.h"
#include "frontends/edge/status_message.h"
#include "frontends/http/console_files.h"
#include "frontends/http/json_limits.h"
#include "frontends/http/openapi.h"
#include "frontends/http/tf_serving_json.h"
#include "frontends/http/v2_json.h"
#include "observability/metrics.h"

namespace seqserve {
namespace {

enum class Endpoint {
  kHealthz,
  kReadyz,
  kOpenApi,
  kConsole,
  kMetrics,
  kListModels,
  kModelStatus,
  kModelMetadata,
  kDrift,
  kClassify,
  kExplain,
  kPredict,
  kV2Server,
  kV2Live,
  kV2Ready,
  kV2ModelReady,
  kV2Metadata,
  kV2Infer,
  kRepositoryIndex,
  kLoadModel,
  kUnloadModel,
  kV2RepositoryIndex,
  kV2LoadModel,
  kV2UnloadModel
};

struct RouteEntry {
  RestApi::Route route;
  Endpoint endpoint;
};

const std::vector<RouteEntry>& Table() {
  constexpr const char* kText = "text/plain; charset=utf-8";
  const auto* classify_request = v1::ClassifyRequest::descriptor();
  const auto* classify_response = v1::ClassifyResponse::descriptor();
  const auto* explain_request = v1::ExplainRequest::descriptor();
  const auto* explain_response = v1::ExplainResponse::descriptor();
  static const std::vector<RouteEntry> table = {
      {{"GET", "/healthz", Access::kOpen, "200 while the process runs", nullptr, nullptr, kText},
       Endpoint::kHealthz},
      {{"GET", "/readyz", Access::kOpen, "200 while a model is loaded and the server is not draining",
        nullptr, nullptr, kText},
       Endpoint::kReadyz},
      {{"GET", "/metrics", Access::kToken, "Prometheus metrics", nullptr, nullptr,
        kExpositionContentType.data()},
       Endpoint::kMetrics},
      {{"GET", "/openapi.json", Access::kToken, "This document", nullptr, nullptr, "application/json"},
       Endpoint::kOpenApi},
      {{"GET", "/", Access::kOpen, "The web console", nullptr, nullptr, "text/html; charset=utf-8"},
       Endpoint::kConsole},
      {{"GET", "/console.js", Access::kOpen, "The web console's script", nullptr, nullptr,
        "text/javascript; charset=utf-8"},
       Endpoint::kConsole},
      {{"GET", "/console.css", Access::kOpen, "The web console's style", nullptr, nullptr,
        "text/css; charset=utf-8"},
       Endpoint::kConsole},
      {{"GET", "/v1/models", Access::kToken, "Every model with its versions' states",
        nullptr, v1::ListModelsResponse::descriptor()},
       Endpoint::kListModels},
      // TF Serving's REST API (frontends/http/tf_serving_json.h). :classify
      // takes seqserve's ClassifyRequest too, told apart by its keys.
      {{"POST", "/v1/models/{model}:classify", Access::kToken,
        "Classify rows with the highest version", classify_request, classify_response, nullptr,
        "TfClassifyRequest", "TfClassifyResponse"},
       Endpoint::kClassify},
      {{"POST", "/v1/models/{model}/versions/{version}:classify", Access::kToken,
        "Classify rows with one version", classify_request, classify_response, nullptr,
        "TfClassifyRequest", "TfClassifyResponse"},
       Endpoint::kClassify},
      {{"POST", "/v1/models/{model}/labels/{label}:classify", Access::kToken,
        "Classify rows with the version a label of the model's config names", classify_request,
        classify_response, nullptr, "TfClassifyRequest", "TfClassifyResponse"},
       Endpoint::kClassify},
      {{"POST", "/v1/models/{model}:explain", Access::kToken,
        "How much each feature of each row moved one class's score, with the highest version "
        "(KServe's v1 explain verb)",
        explain_request, explain_response},
       Endpoint::kExplain},
      {{"POST", "/v1/models/{model}/versions/{version}:explain", Access::kToken,
        "Explain rows with one version", explain_request, explain_response},
       Endpoint::kExplain},
      {{"POST", "/v1/models/{model}/labels/{label}:explain", Access::kToken,
        "Explain rows with the version a label of the model's config names", explain_request,
        explain_response},
       Endpoint::kExplain},
      {{"POST", "/v1/models/{model}:predict", Access::kToken,
        "The default output of each row, with the highest version (TF Serving's predict)",
        nullptr, nullptr, nullptr, "TfPredictRequest", "TfPredictResponse"},
       Endpoint::kPredict},
      {{"POST", "/v1/models/{model}/versions/{version}:predict", Access::kToken,
        "The default output of each row, with one version", nullptr, nullptr, nullptr,
        "TfPredictRequest", "TfPredictResponse"},
       Endpoint::kPredict},
      {{"POST", "/v1/models/{model}/labels/{label}:predict", Access::kToken,
        "The default output of each row, with the version a label names", nullptr, nullptr,
        nullptr, "TfPredictRequest", "TfPredictResponse"},
       Endpoint::kPredict},
      {{"GET", "/v1/models/{model}", Access::kToken,
        "Every version's state (TF Serving's GetModelStatus)", nullptr, nullptr, nullptr, nullptr,
        "TfModelStatus"},
       Endpoint::kModelStatus},
      {{"GET", "/v1/models/{model}/versions/{version}", Access::kToken, "One version's state",
        nullptr, nullptr, nullptr, nullptr, "TfModelStatus"},
       Endpoint::kModelStatus},
      {{"GET", "/v1/models/{model}/labels/{label}", Access::kToken,
        "The state of the version a label names", nullptr, nullptr, nullptr, nullptr,
        "TfModelStatus"},
       Endpoint::kModelStatus},
      {{"GET", "/v1/models/{model}/metadata", Access::kToken,
        "Signature and seqserve's metadata of the highest version (TF Serving's "
        "GetModelMetadata)",
        nullptr, nullptr, nullptr, nullptr, "TfModelMetadata"},
       Endpoint::kModelMetadata},
      {{"GET", "/v1/models/{model}/versions/{version}/metadata", Access::kToken,
        "Signature and seqserve's metadata of one version", nullptr, nullptr, nullptr, nullptr,
        "TfModelMetadata"},
       Endpoint::kModelMetadata},
      {{"GET", "/v1/models/{model}/labels/{label}/metadata", Access::kToken,
        "Signature and seqserve's metadata of the version a label names", nullptr, nullptr,
        nullptr, nullptr, "TfModelMetadata"},
       Endpoint::kModelMetadata},
      {{"GET", "/v1/models/{model}/drift", Access::kToken,
        "Predicted classes, and per feature the drift window's histogram, mean and PSI "
        "against the baseline, of each version seen (the console's charts)",
        nullptr, nullptr, "application/json"},
       Endpoint::kDrift},
      // Model control (--model_control_mode=explicit): the index is for
      // callers, loading and unloading for admins.
      {{"POST", "/v1/repository/index", Access::kToken,
        "Every model of the repository, loaded or not, with its versions' states",
        v1::RepositoryIndexRequest::descriptor(), v1::RepositoryIndexResponse::descriptor()},
       Endpoint::kRepositoryIndex},
      {{"POST", "/v1/models/{model}:load", Access::kAdmin,
        "Load or reload a model (optionally with a config instead of its file); answers once "
        "its versions are available or the load failed",
        v1::LoadModelRequest::descriptor(), v1::LoadModelResponse::descriptor()},
       Endpoint::kLoadModel},
      {{"POST", "/v1/models/{model}:unload", Access::kAdmin, "Stop serving a model",
        v1::UnloadModelRequest::descriptor(), v1::UnloadModelResponse::descriptor()},
       Endpoint::kUnloadModel},
      // The Open Inference Protocol (KServe v2). Health answers with an
      // empty body: 200 is true, 400 false.
      {{"GET", "/v2", Access::kToken, "Server metadata (Open Inference Protocol)", nullptr, nullptr, nullptr,
        nullptr, "V2ServerMetadata", "V2Error"},
       Endpoint::kV2Server},
      {{"GET", "/v2/health/live", Access::kOpen, "200 while the server can answer", nullptr, nullptr, kText,
        nullptr, nullptr, "V2Error"},
       Endpoint::kV2Live},
      {{"GET", "/v2/health/ready", Access::kOpen, "200 while a model is loaded and the server is not draining",
        nullptr, nullptr, kText, nullptr, nullptr, "V2Error"},
       Endpoint::kV2Ready},
      {{"GET", "/v2/models/{model}/ready", Access::kOpen, "200 while the highest version can answer",
        nullptr, nullptr, kText, nullptr, nullptr, "V2Error"},
       Endpoint::kV2ModelReady},
      {{"GET", "/v2/models/{model}/versions/{version}/ready", Access::kOpen,
        "200 while this version can answer", nullptr, nullptr, kText, nullptr, nullptr,
        "V2Error"},
       Endpoint::kV2ModelReady},
      {{"GET", "/v2/models/{model}", Access::kToken, "Tensors of the highest version", nullptr, nullptr,
        nullptr, nullptr, "V2ModelMetadata", "V2Error"},
       Endpoint::kV2Metadata},
      {{"GET", "/v2/models/{model}/versions/{version}", Access::kToken, "Tensors of one version", nullptr,
        nullptr, nullptr, nullptr, "V2ModelMetadata", "V2Error"},
       Endpoint::kV2Metadata},
      {{"POST", "/v2/models/{model}/infer", Access::kToken,
        "Infer with the highest version (binary tensors: Inference-Header-Content-Length)",
        nullptr, nullptr, nullptr, "V2InferenceRequest", "V2InferenceResponse", "V2Error"},
       Endpoint::kV2Infer},
      {{"POST", "/v2/models/{model}/versions/{version}/infer", Access::kToken,
        "Infer with one version (binary tensors: Inference-Header-Content-Length)", nullptr,
        nullptr, nullptr, "V2InferenceRequest", "V2InferenceResponse", "V2Error"},
       Endpoint::kV2Infer},
      // Triton's model repository extension.
      {{"POST", "/v2/repository/index", Access::kToken,
        "Every model of the repository with its state (Triton's model repository extension)",
        nullptr, nullptr, nullptr, "V2RepositoryIndexRequest", "V2RepositoryIndex", "V2Error"},
       Endpoint::kV2RepositoryIndex},
      {{"POST", "/v2/repository/models/{model}/load", Access::kAdmin,
        "Load or reload a model; parameter \"config\": a seqserve.v1.ModelConfig in JSON",
        nullptr, nullptr, kText, "V2RepositoryLoadRequest", nullptr, "V2Error"},
       Endpoint::kV2LoadModel},
      {{"POST", "/v2/repository/models/{model}/unload", Access::kAdmin, "Stop serving a model",
        nullptr, nullptr, kText, "V2RepositoryUnloadRequest", nullptr, "V2Error"},
       Endpoint::kV2UnloadModel},
  };
  return table;
}

// Matches `path` against `pattern`; fills {name} parameters.
bool Match(absl::string_view pattern, absl::string_view path,
           std::map<std::string, std::string>* params) {
  const std::vector<absl::string_view> want = absl::StrSplit(pattern, '/');
  const std::vector<absl::string_view> got = absl::StrSplit(path, '/');
  if (want.size() != got.size()) return false;
  params->clear();
  for (size_t i = 0; i < want.size(); ++i) {
    absl::string_view w = want[i];
    absl::string_view g = got[i];
    if (!absl::StartsWith(w, "{")) {
      if (w != g) return false;
      continue;
    }
    const size_t close = w.find('}');
    const absl::string_view name = w.substr(1, close - 1);
    const absl::string_view verb = w.substr(close + 1);  // ":classify" or empty
    if (verb.empty()) {
      // A plain parameter never swallows a verb: "m:classify" is no name here.
      if (g.empty() || absl::StrContains(g, ':')) return false;
    } else if (!absl::EndsWith(g, verb) || g.size() == verb.size()) {
      return false;
    } else {
      g.remove_suffix(verb.size());
    }
    (*params)[std::string(name)] = std::string(g);
  }
  return true;
}

HttpResponse Json(std::string body, int status = 200) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse Text(std::string body, int status = 200) {
  HttpResponse response;
  response.status = status;
  response.content_type = "text/plain; charset=utf-8";
  response.body = std::move(body);
  return response;
}

template <typename Message>
absl::Status ParseJson(const std::string& body, Message* message) {
  // Before protobuf's parser, which spends memory per level and per value.
  if (absl::Status s = CheckJsonLimits(body, absl::StrCat("request body is not a valid ",
                                                          Message::descriptor()->full_name(),
                                                          " in JSON"));
      !s.ok()) {
    return s;
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(body, message, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request body is not a valid ", Message::descriptor()->full_name(), " in JSON: ",
        EscapeInvalidUtf8(std::string(parsed.message()))));
  }
  return absl::OkStatus();
}

// Proto field names as in the .proto (what seqclient prints and the docs
// show), zero values included so every field is always there.
template <typename Message>
HttpResponse ToJson(const Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string body;
  const auto printed = google::protobuf::util::MessageToJsonString(message, &body, options);
  if (!printed.ok()) {
    return ErrorResponse(absl::InternalError(std::string(printed.message())));
  }
  return Json(std::move(body));
}

// The {version} of a path, or INVALID_ARGUMENT.
absl::StatusOr<int64_t> PathVersion(const std::map<std::string, std::string>& params) {
  auto it = params.find("version");
  if (it == params.end()) return 0;
  int64_t version = 0;
  if (!absl::SimpleAtoi(it->second, &version) || version <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "version in the path must be a positive integer, got ", QuoteClientText(it->second)));
  }
  return version;
}

// The {label} of a path; empty when it names none.
std::string PathLabel(const std::map<std::string, std::string>& params) {
  auto it = params.find("label");
  return it == params.end() ? "" : it->second;
}

CallerCredentials HttpCaller(const HttpRequest& request) {
  CallerCredentials caller;
  caller.peer = request.peer;
  caller.bearer_token = BearerToken(request.Header("Authorization"));
  caller.client_certificate_subject = request.client_certificate_subject;
  return caller;
}

// A call by a caller the edge admitted, with the ids the screen set (it
// refused an X-Request-Id that fails CheckRequestId); `cancelled`
// (HttpRequest::cancelled) lets the batching runner skip the work of a
// client that left.
CallInfo HttpCall(const HttpRequest& request, const CallerCredentials& caller,
                  const char* method, std::function<bool()> cancelled = nullptr) {
  CallInfo call;
  call.protocol = "http";
  call.method = method;
  call.caller = caller;
  call.cancelled = std::move(cancelled);
  call.request_id = request.request_id;
  call.request_id_made = request.request_id_made;
  call.trace_id = request.trace_id;
  return call;
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

HttpResponse ErrorResponse(const absl::Status& status) {
  // The same capped message a gRPC caller gets.
  std::string code = absl::StatusCodeToString(status.code());
  for (char& c : code) c = c == ' ' ? '_' : static_cast<char>(std::toupper(c));
  const std::string message = CappedStatusMessage(status);
  nlohmann::json body = {{"code", code}, {"message", message}, {"error", message}};
  HttpResponse response =
      Json(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
           HttpStatusFor(status.code()));
  // RFC 6750: a 401 names the scheme the caller should use.
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
  }
  return response;
}

const std::vector<RestApi::Route>& RestApi::Routes() {
  static const std::vector<Route> routes = [] {
    std::vector<Route> out;
    for (const RouteEntry& entry : Table()) out.push_back(entry.route);
    return out;
  }();
  return routes;
}

namespace {
// The model, version and label of a path into a request body, below.
template <typename Request>
absl::Status TakeModelFromPath(const std::map<std::string, std::string>& params,
                               Request* request);
// Explain, below.
void HandleExplain(const RestApi::Sources& sources, const HttpRequest& request,
                   const CallerCredentials& admitted,
                   const std::map<std::string, std::string>& params,
                   HttpServer::Respond respond);
// TF Serving's predict and classify bodies, below.
void HandleTfServing(const RestApi::Sources& sources, bool classify, const HttpRequest& request,
                     const CallerCredentials& admitted,
                     const std::map<std::string, std::string>& params,
                     HttpServer::Respond respond);
// Index, load and unload in seqserve.v1's messages, below.
void HandleModelControl(const RestApi::Sources& sources, Endpoint endpoint,
                        const HttpRequest& request, const CallerCredentials& admitted,
                        const std::map<std::string, std::string>& params,
                        HttpServer::Respond respond);
// The /v2 endpoints, below.
void HandleV2(const RestApi::Sources& sources, Endpoint endpoint, const HttpRequest& request,
              const CallerCredentials& admitted,
              const std::map<std::string, std::string>& params, HttpServer::Respond respond);
}  // namespace

RestApi::RestApi(Sources sources) : sources_(std::move(sources)) {}

namespace {

bool IsV2Path(absl::string_view path) {
  return path == "/v2" || absl::StartsWith(path, "/v2/");
}

// The route serving `method` at `path`, with its {name} parameters; null
// when none does, with the methods that would be allowed there.
const RouteEntry* FindRoute(absl::string_view method, absl::string_view path,
                            std::map<std::string, std::string>* params,
                            std::vector<std::string>* allowed) {
  for (const RouteEntry& entry : Table()) {
    if (!Match(entry.route.pattern, path, params)) continue;
    if (method == entry.route.method) return &entry;
    allowed->push_back(entry.route.method);
  }
  return nullptr;
}

// 404 for a path no route serves, 405 naming the methods of one that does.
HttpResponse Unrouted(const HttpRequest& head, const std::vector<std::string>& allowed) {
  if (allowed.empty()) {
    return RestApi::ErrorFor(
        head, absl::NotFoundError(absl::StrCat("no endpoint at ", QuoteClientText(head.path))));
  }
  HttpResponse refused = RestApi::ErrorFor(
      head, absl::InvalidArgumentError(absl::StrCat(
                QuoteClientText(head.method), " is not allowed on ", QuoteClientText(head.path),
                "; use ", absl::StrJoin(allowed, ", "))));
  refused.status = 405;
  refused.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
  return refused;
}

}  // namespace

HttpResponse RestApi::ErrorFor(const HttpRequest& head, const absl::Status& status) {
  return IsV2Path(head.path) ? V2ErrorResponse(status) : ErrorResponse(status);
}

std::optional<HttpResponse> RestApi::Screen(HttpRequest* head) const {
  std::map<std::string, std::string> params;
  std::vector<std::string> allowed;
  const RouteEntry* route = FindRoute(head->method, head->path, &params, &allowed);
  if (route == nullptr) return Unrouted(*head, allowed);
  // Health stays open for probes; everything else, metrics and the API's
  // description included, is for callers with a token.
  CallerCredentials caller = HttpCaller(*head);
  absl::Status refused = sources_.guard->Admit(route->route.access, &caller);
  // Probes carry no request id worth checking: they are not accounted.
  if (refused.ok() && route->route.access != Access::kOpen) {
    const std::string id = head->Header("X-Request-Id");
    refused = CheckRequestId(id, "X-Request-Id");
    if (refused.ok()) {
      CallIds ids = AssignCallIds(id, head->Header("traceparent"));
      head->request_id = std::move(ids.request_id);
      head->request_id_made = ids.made;
      head->trace_id = std::move(ids.trace_id);
    }
  }
  if (!refused.ok()) {
    return ErrorFor(*head, sources_.inference->Refuse(
                               HttpCall(*head, caller, route->route.pattern), std::move(refused)));
  }
  head->admitted_caller = std::move(caller.name);
  return std::nullopt;
}

void RestApi::Handle(const HttpRequest& request, HttpServer::Respond respond) {
  std::map<std::string, std::string> params;
  std::vector<std::string> allowed;
  const RouteEntry* route = FindRoute(request.method, request.path, &params, &allowed);
  // The screen let this request on: its route exists and its caller is
  // admitted (request.admitted_caller).
  if (route == nullptr) return std::move(respond)(Unrouted(request, allowed));
  CallerCredentials admitted = HttpCaller(request);
  admitted.name = request.admitted_caller;

  switch (route->endpoint) {
    case Endpoint::kHealthz:
      return std::move(respond)(Text("ok\n"));
    case Endpoint::kReadyz:
      return std::move(respond)(sources_.state->ready()
                                    ? Text("ready\n")
                                    : Text(absl::StrCat("not ready: ",
                                                        PhaseName(sources_.state->phase()),
                                                        "\n"),
                                           503));
    case Endpoint::kConsole: {
      if (!sources_.console) {
        return std::move(respond)(ErrorResponse(absl::NotFoundError("the console is off")));
      }
      const std::string name = request.path == "/" ? "index.html" : request.path.substr(1);
      for (const EmbeddedFile& file : ConsoleFiles()) {
        if (name != file.name) continue;
        // The page names the gRPC port in the seqclient command it shows.
        HttpResponse page = Text(absl::StrReplaceAll(
            file.contents, {{"{{grpc_port}}", absl::StrCat(sources_.grpc_port)}}));
        page.content_type = route->route.text_response;
        // Only this server's own script, style and API: no inline code, no
        // other origin, no framing.
        page.headers.emplace_back(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        page.headers.emplace_back("Referrer-Policy", "no-referrer");
        return std::move(respond)(std::move(page));
      }
      return std::move(respond)(ErrorResponse(absl::NotFoundError("no such console file")));
    }
    case Endpoint::kOpenApi: {
      static const std::string document = OpenApiDocument(Routes(), SEQSERVE_VERSION);
      return std::move(respond)(Json(document));
    }
    case Endpoint::kMetrics: {
      if (!sources_.metrics) {
        return std::move(respond)(ErrorResponse(absl::NotFoundError("metrics are off")));
      }
      HttpResponse metrics = Text(sources_.metrics());
      metrics.content_type = std::string(kExpositionContentType);
      return std::move(respond)(std::move(metrics));
    }
    case Endpoint::kListModels: {
      v1::ListModelsResponse response;
      absl::Status status =
          sources_.inference->ListModels(HttpCall(request, admitted, "ListModels"), &response);
      return std::move(respond)(status.ok() ? ToJson(response) : ErrorResponse(status));
    }
    case Endpoint::kModelStatus: {
      const CallInfo call = HttpCall(request, admitted, "GetModelStatus");
      auto version = PathVersion(params);
      if (!version.ok()) {
        return std::move(respond)(
            ErrorResponse(sources_.inference->Refuse(call, version.status())));
      }
      v1::ModelStatus status;
      absl::Status found = sources_.inference->ModelStatus(params["model"], *version,
                                                           PathLabel(params), call, &status);
      return std::move(respond)(found.ok() ? TfModelStatusResponse(status)
                                           : ErrorResponse(found));
    }
    case Endpoint::kModelMetadata: {
      const CallInfo call = HttpCall(request, admitted, "GetModelMetadata");
      auto version = PathVersion(params);
      if (!version.ok()) {
        return std::move(respond)(
            ErrorResponse(sources_.inference->Refuse(call, version.status())));
      }
      v1::GetModelMetadataRequest metadata;
      metadata.set_model(params["model"]);
      metadata.set_version(*version);
      metadata.set_version_label(PathLabel(params));
      v1::GetModelMetadataResponse response;
      absl::Status status = sources_.inference->DescribeModel(metadata, call, &response);
      return std::move(respond)(status.ok() ? TfModelMetadataResponse(response)
                                            : ErrorResponse(status));
    }
    case Endpoint::kDrift: {
      // The model must exist, as for its status; the call is accounted so.
      const CallInfo call = HttpCall(request, admitted, "GetDrift");
      v1::ModelStatus status;
      absl::Status found = sources_.inference->ModelStatus(params["model"], 0, "", call, &status);
      if (!found.ok()) return std::move(respond)(ErrorResponse(found));
      if (!sources_.drift) {
        return std::move(respond)(ErrorResponse(absl::NotFoundError("metrics are off")));
      }
      std::optional<std::string> report = sources_.drift(params["model"]);
      if (!report) {
        nlohmann::json none = {{"model", params["model"]}, {"versions", nlohmann::json::array()}};
        report = none.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
      return std::move(respond)(Json(std::move(*report)));
    }
    case Endpoint::kRepositoryIndex:
    case Endpoint::kLoadModel:
    case Endpoint::kUnloadModel:
      return HandleModelControl(sources_, route->endpoint, request, admitted, params,
                                std::move(respond));
    case Endpoint::kPredict:
      return HandleTfServing(sources_, /*classify=*/false, request, admitted, params,
                             std::move(respond));
    case Endpoint::kExplain:
      return HandleExplain(sources_, request, admitted, params, std::move(respond));
    case Endpoint::kV2Server:
    case Endpoint::kV2Live:
    case Endpoint::kV2Ready:
    case Endpoint::kV2ModelReady:
    case Endpoint::kV2Metadata:
    case Endpoint::kV2Infer:
    case Endpoint::kV2RepositoryIndex:
    case Endpoint::kV2LoadModel:
    case Endpoint::kV2UnloadModel:
      return HandleV2(sources_, route->endpoint, request, admitted, params, std::move(respond));
    case Endpoint::kClassify:
      break;
  }

  // Classify: TF Serving's body or seqserve's, by its keys.
  auto kind = ClassifyBodyOf(request.body);
  if (!kind.ok()) {
    return std::move(respond)(ErrorResponse(
        sources_.inference->Refuse(HttpCall(request, admitted, "Classify"), kind.status())));
  }
  if (*kind == ClassifyBody::kTfServing) {
    return HandleTfServing(sources_, /*classify=*/true, request, admitted, params,
                           std::move(respond));
  }

  // seqserve's ClassifyRequest: request and response live until the
  // inference service is done.
  struct Exchange {
    v1::ClassifyRequest request;
    v1::ClassifyResponse response;
  };
  auto exchange = std::make_unique<Exchange>();
  const CallInfo call = HttpCall(request, admitted, "Classify", request.cancelled);
  // The output mode in either spelling: protobuf's parser reads only one.
  const std::optional<std::string> respelled = WithApiEnumNames(request.body);
  absl::Status parsed = ParseJson(respelled ? *respelled : request.body, &exchange->request);
  if (parsed.ok()) parsed = TakeModelFromPath(params, &exchange->request);
  if (!parsed.ok()) {
    return std::move(respond)(ErrorResponse(sources_.inference->Refuse(call, parsed)));
  }
  Exchange* raw = exchange.get();
  sources_.inference->Classify(
      raw->request, call, &raw->response,
      [exchange = std::move(exchange), respond = std::move(respond)](absl::Status status) mutable {
        std::move(respond)(status.ok() ? ToJson(exchange->response) : ErrorResponse(status));
      });
}

namespace {

// The path names the model, and maybe a version or a label: a body that
// names others is a mistake. Sets the path's in `request`.
template <typename Request>
absl::Status TakeModelFromPath(const std::map<std::string, std::string>& params,
                               Request* request) {
  const std::string& model = params.at("model");
  auto version = PathVersion(params);
  if (!version.ok()) return version.status();
  if (!request->model().empty() && request->model() != model) {
    return absl::InvalidArgumentError(absl::StrCat("the body names model ",
                                                   QuoteClientText(request->model()),
                                                   " but the path names ",
                                                   QuoteClientText(model)));
  }
  if (request->version() != 0 && *version != 0 && request->version() != *version) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the body names version ", request->version(), " but the path names ", *version));
  }
  const std::string label = PathLabel(params);
  if (!request->version_label().empty() && !label.empty() && request->version_label() != label) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body names version label ", QuoteClientText(request->version_label()),
                     " but the path names ", QuoteClientText(label)));
  }
  request->set_model(model);
  if (*version != 0) request->set_version(*version);
  if (!label.empty()) request->set_version_label(label);
  return absl::OkStatus();
}

void HandleExplain(const RestApi::Sources& sources, const HttpRequest& request,
                   const CallerCredentials& admitted,
                   const std::map<std::string, std::string>& params,
                   HttpServer::Respond respond) {
  // Request and response live until the inference service is done.
  struct Exchange {
    v1::ExplainRequest request;
    v1::ExplainResponse response;
  };
  auto exchange = std::make_unique<Exchange>();
  const CallInfo call = HttpCall(request, admitted, "Explain", request.cancelled);
  // The output mode, method and rule in either spelling.
  const std::optional<std::string> respelled = WithApiEnumNames(request.body);
  absl::Status parsed = ParseJson(respelled ? *respelled : request.body, &exchange->request);
  if (parsed.ok()) parsed = TakeModelFromPath(params, &exchange->request);
  if (!parsed.ok()) {
    return std::move(respond)(ErrorResponse(sources.inference->Refuse(call, parsed)));
  }
  Exchange* raw = exchange.get();
  sources.inference->Explain(
      raw->request, call, &raw->response,
      [exchange = std::move(exchange), respond = std::move(respond)](absl::Status status) mutable {
        std::move(respond)(status.ok() ? ToJson(exchange->response) : ErrorResponse(status));
      });
}

void HandleTfServing(const RestApi::Sources& sources, bool classify, const HttpRequest& request,
                     const CallerCredentials& admitted,
                     const std::map<std::string, std::string>& params,
                     HttpServer::Respond respond) {
  // What the body asks, as seqserve asks it; lives until the inference
  // service is done.
  struct Exchange {
    TfServingRows rows;
    std::vector<OutputRequest> outputs;
    std::vector<v1::ClassifyResponse> answers;
  };
  auto exchange = std::make_unique<Exchange>();
  const CallInfo call =
      HttpCall(request, admitted, classify ? "Classify" : "Predict", request.cancelled);
  absl::Status parsed = classify ? ParseTfClassifyRequest(request.body, &exchange->rows)
                                 : ParseTfPredictRequest(request.body, &exchange->rows);
  auto version = PathVersion(params);
  if (parsed.ok() && !version.ok()) parsed = version.status();
  if (!parsed.ok()) {
    // As TF Serving does, a model or version that is not there is said
    // first, whatever the body (api_rest.md's own example of an error).
    const absl::Status there =
        sources.inference->ModelReady(params.at("model"), version.ok() ? *version : 0);
    if (there.code() == absl::StatusCode::kNotFound) parsed = there;
    return std::move(respond)(ErrorResponse(sources.inference->Refuse(call, parsed)));
  }
  exchange->rows.request.set_model(params.at("model"));
  exchange->rows.request.set_version(*version);
  exchange->rows.request.set_version_label(PathLabel(params));
  // Predict: the model's default output; classify: every class with its
  // probability. One pass either way, through the same plan and heads.
  OutputRequest output;
  output.every_class = classify;
  exchange->outputs.push_back(output);
  Exchange* raw = exchange.get();
  sources.inference->ClassifyOutputs(
      raw->rows.request, raw->outputs, /*tensors=*/nullptr, call, &raw->answers,
      [exchange = std::move(exchange), respond = std::move(respond),
       classify](absl::Status status) mutable {
        if (!status.ok()) return std::move(respond)(ErrorResponse(status));
        const v1::ClassifyResponse& answer = exchange->answers.front();
        std::move(respond)(classify ? TfClassifyResponse(answer)
                                    : TfPredictResponse(answer, exchange->rows.columnar));
      });
}

// seqserve.v1's model control: the same messages as its gRPC service; a
// body may be empty (the defaults), and names no other model than the path.
void HandleModelControl(const RestApi::Sources& sources, Endpoint endpoint,
                        const HttpRequest& request, const CallerCredentials& admitted,
                        const std::map<std::string, std::string>& params,
                        HttpServer::Respond respond) {
  InferenceService* inference = sources.inference;
  const auto parse = [&request](auto* message) {
    return request.body.empty() ? absl::OkStatus() : ParseJson(request.body, message);
  };
  const auto same_model = [&params](const std::string& body_model) {
    if (body_model.empty() || body_model == params.at("model")) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("the body names model ",
                                                   QuoteClientText(body_model),
                                                   " but the path names ",
                                                   QuoteClientText(params.at("model"))));
  };
  if (endpoint == Endpoint::kRepositoryIndex) {
    const CallInfo call = HttpCall(request, admitted, "RepositoryIndex");
    v1::RepositoryIndexRequest asked;
    if (absl::Status parsed = parse(&asked); !parsed.ok()) {
      return std::move(respond)(ErrorResponse(inference->Refuse(call, std::move(parsed))));
    }
    v1::RepositoryIndexResponse index;
    const absl::Status status = inference->RepositoryIndex(asked.ready(), call, &index);
    return std::move(respond)(status.ok() ? ToJson(index) : ErrorResponse(status));
  }
  if (endpoint == Endpoint::kUnloadModel) {
    const CallInfo call = HttpCall(request, admitted, "UnloadModel");
    v1::UnloadModelRequest asked;
    absl::Status parsed = parse(&asked);
    if (parsed.ok()) parsed = same_model(asked.model());
    if (!parsed.ok()) {
      return std::move(respond)(ErrorResponse(inference->Refuse(call, std::move(parsed))));
    }
    const absl::Status status = inference->UnloadModel(params.at("model"), call);
    return std::move(respond)(status.ok() ? ToJson(v1::UnloadModelResponse())
                                          : ErrorResponse(status));
  }
  const CallInfo call = HttpCall(request, admitted, "LoadModel");
  // The request and its answer live until the load is done.
  struct Exchange {
    v1::LoadModelRequest request;
    v1::LoadModelResponse response;
  };
  auto exchange = std::make_unique<Exchange>();
  absl::Status parsed = parse(&exchange->request);
  if (parsed.ok()) parsed = same_model(exchange->request.model());
  if (!parsed.ok()) {
    return std::move(respond)(ErrorResponse(inference->Refuse(call, std::move(parsed))));
  }
  std::optional<v1::ModelConfig> config;
  if (exchange->request.has_config()) config = exchange->request.config();
  v1::ModelStatus* status = exchange->response.mutable_status();
  inference->LoadModel(params.at("model"), std::move(config), call, status,
                       [exchange = std::move(exchange),
                        respond = std::move(respond)](absl::Status loaded) mutable {
                         std::move(respond)(loaded.ok() ? ToJson(exchange->response)
                                                        : ErrorResponse(loaded));
                       });
}

void HandleV2(const RestApi::Sources& sources, Endpoint endpoint, const HttpRequest& request,
              const CallerCredentials& admitted,
              const std::map<std::string, std::string>& params, HttpServer::Respond respond) {
  OpenInference* v2 = sources.open_inference;
  const std::string model = params.count("model") ? params.at("model") : "";
  const std::string version = params.count("version") ? params.at("version") : "";
  // Health: 200 with no body is true; false is 400 with a V2Error that
  // says why, as the protocol's OpenAPI document has it.
  auto health = [](const absl::Status& ready) {
    if (ready.ok()) return Text("", 200);
    HttpResponse not_ready = V2ErrorResponse(ready);
    not_ready.status = 400;
    return not_ready;
  };
  switch (endpoint) {
    case Endpoint::kV2Live:
      return std::move(respond)(health(absl::OkStatus()));
    case Endpoint::kV2Ready:
      return std::move(respond)(health(
          v2->ServerReady() ? absl::OkStatus()
                            : absl::UnavailableError(absl::StrCat(
                                  "not ready: ", PhaseName(sources.state->phase())))));
    case Endpoint::kV2ModelReady:
      return std::move(respond)(health(v2->ModelReady(model, version)));
    case Endpoint::kV2Server: {
      inference::ServerMetadataResponse metadata;
      v2->ServerMetadata(&metadata);
      return std::move(respond)(V2ServerMetadataResponse(metadata));
    }
    case Endpoint::kV2Metadata: {
      inference::ModelMetadataRequest asked;
      asked.set_name(model);
      asked.set_version(version);
      inference::ModelMetadataResponse metadata;
      const absl::Status status =
          v2->ModelMetadata(asked, HttpCall(request, admitted, "ModelMetadata"), &metadata);
      return std::move(respond)(status.ok() ? V2ModelMetadataResponse(metadata)
                                            : V2ErrorResponse(status));
    }
    case Endpoint::kV2RepositoryIndex: {
      const CallInfo call = HttpCall(request, admitted, "RepositoryIndex");
      inference::RepositoryIndexRequest asked;
      if (absl::Status parsed = ParseV2RepositoryIndexRequest(request.body, &asked);
          !parsed.ok()) {
        return std::move(respond)(V2ErrorResponse(v2->Refuse(call, std::move(parsed))));
      }
      inference::RepositoryIndexResponse index;
      const absl::Status status = sources.repository->Index(asked, call, &index);
      return std::move(respond)(status.ok() ? V2RepositoryIndexResponse(index)
                                            : V2ErrorResponse(status));
    }
    case Endpoint::kV2LoadModel: {
      const CallInfo call = HttpCall(request, admitted, "RepositoryModelLoad");
      inference::RepositoryModelLoadRequest asked;
      if (absl::Status parsed = ParseV2RepositoryModelLoadRequest(request.body, &asked);
          !parsed.ok()) {
        return std::move(respond)(V2ErrorResponse(v2->Refuse(call, std::move(parsed))));
      }
      asked.set_model_name(model);
      // 200 with no body once loaded, as Triton answers.
      return sources.repository->Load(
          asked, call, [respond = std::move(respond)](absl::Status status) mutable {
            std::move(respond)(status.ok() ? Text("") : V2ErrorResponse(status));
          });
    }
    case Endpoint::kV2UnloadModel: {
      const CallInfo call = HttpCall(request, admitted, "RepositoryModelUnload");
      inference::RepositoryModelUnloadRequest asked;
      if (absl::Status parsed = ParseV2RepositoryModelUnloadRequest(request.body, &asked);
          !parsed.ok()) {
        return std::move(respond)(V2ErrorResponse(v2->Refuse(call, std::move(parsed))));
      }
      asked.set_model_name(model);
      const absl::Status status = sources.repository->Unload(asked, call);
      return std::move(respond)(status.ok() ? Text("") : V2ErrorResponse(status));
    }
    default:
      break;
  }
  // Infer: request and response live until the inference path is done.
  struct Exchange {
    inference::ModelInferRequest request;
    inference::ModelInferResponse response;
  };
  auto exchange = std::make_unique<Exchange>();
  const CallInfo call = HttpCall(request, admitted, "ModelInfer", request.cancelled);
  if (absl::Status parsed = ParseV2InferRequest(request, &exchange->request); !parsed.ok()) {
    return std::move(respond)(V2ErrorResponse(v2->Refuse(call, std::move(parsed))));
  }
  exchange->request.set_model_name(model);
  exchange->request.set_model_version(version);
  Exchange* raw = exchange.get();
  v2->Infer(raw->request, call, OpenInference::RawOutput::kWhenAsked, &raw->response,
            [exchange = std::move(exchange), respond = std::move(respond)](
                absl::Status status) mutable {
              std::move(respond)(status.ok() ? V2InferResponse(exchange->response)
                                             : V2ErrorResponse(status));
            });
}

}  // namespace

}  // namespace seqserve
