#include "frontends/http/v2_json.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "serving/client_text.h"
#include "frontends/edge/status_message.h"
#include "frontends/http/json_limits.h"
#include "frontends/http/json_numbers.h"
#include "frontends/http/rest_api.h"

namespace seqserve {
namespace {

using inference::InferParameter;
using inference::InferTensorContents;
using inference::ModelInferRequest;
using nlohmann::json;

// Nested data deeper than this is no tensor anyone sends.
constexpr int kMaxDataDepth = 32;

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// Keys of `object` other than `known` are a mistake to report.
absl::Status CheckKeys(const json& object, std::initializer_list<const char*> known,
                       absl::string_view where) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (const char* name : known) found = found || key == name;
    if (!found) {
      return Invalid(where, absl::StrCat("unknown field ", QuoteClientText(key)));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadParameters(const json& object, absl::string_view where,
                            google::protobuf::Map<std::string, InferParameter>* out) {
  if (!object.is_object()) return Invalid(where, "\"parameters\" must be an object");
  for (const auto& [key, value] : object.items()) {
    InferParameter& parameter = (*out)[key];
    if (value.is_boolean()) {
      parameter.set_bool_param(value.get<bool>());
    } else if (value.is_number_unsigned() &&
               value.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}) {
      parameter.set_uint64_param(value.get<uint64_t>());
    } else if (value.is_number_integer()) {
      parameter.set_int64_param(value.get<int64_t>());
    } else if (value.is_number_float()) {
      parameter.set_double_param(value.get<double>());
    } else if (value.is_string()) {
      parameter.set_string_param(value.get<std::string>());
    } else {
      return Invalid(where, absl::StrCat("parameter ", QuoteClientText(key),
                                         " must be a string, number or boolean"));
    }
  }
  return absl::OkStatus();
}

// Appends the elements of `data` (flat or nested arrays) to the typed
// contents of `datatype`.
absl::Status AppendData(const json& data, const std::string& datatype, int depth,
                        const std::string& where, InferTensorContents* contents) {
  if (data.is_array()) {
    if (depth >= kMaxDataDepth) return Invalid(where, "\"data\" is nested too deeply");
    for (const json& element : data) {
      if (absl::Status s = AppendData(element, datatype, depth + 1, where, contents); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  auto wrong = [&] {
    return Invalid(where, absl::StrCat("element ", Dump(data), " is not ", datatype));
  };
  if (datatype == "BOOL") {
    if (!data.is_boolean()) return wrong();
    contents->add_bool_contents(data.get<bool>());
  } else if (datatype == "FP32" || datatype == "FP16" || datatype == "BF16") {
    if (!data.is_number()) return wrong();
    const double value = data.get<double>();
    if (std::fabs(value) > std::numeric_limits<float>::max()) {
      return Invalid(where, absl::StrCat("element ", Dump(data), " is beyond FP32's range"));
    }
    contents->add_fp32_contents(static_cast<float>(value));
  } else if (datatype == "FP64") {
    if (!data.is_number()) return wrong();
    contents->add_fp64_contents(data.get<double>());
  } else if (datatype == "INT8" || datatype == "INT16" || datatype == "INT32") {
    if (!data.is_number_integer()) return wrong();
    const int64_t value = data.get<int64_t>();
    if (value < std::numeric_limits<int32_t>::min() ||
        value > std::numeric_limits<int32_t>::max()) {
      return wrong();
    }
    contents->add_int_contents(static_cast<int32_t>(value));
  } else if (datatype == "INT64") {
    if (!data.is_number_integer() ||
        (data.is_number_unsigned() &&
         data.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})) {
      return wrong();
    }
    contents->add_int64_contents(data.get<int64_t>());
  } else if (datatype == "UINT8" || datatype == "UINT16" || datatype == "UINT32") {
    if (!data.is_number_unsigned() ||
        data.get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
      return wrong();
    }
    contents->add_uint_contents(static_cast<uint32_t>(data.get<uint64_t>()));
  } else if (datatype == "UINT64") {
    if (!data.is_number_unsigned()) return wrong();
    contents->add_uint64_contents(data.get<uint64_t>());
  } else if (datatype == "BYTES") {
    if (!data.is_string()) return wrong();
    contents->add_bytes_contents(data.get<std::string>());
  } else {
    return Invalid(where, absl::StrCat("unknown datatype ", QuoteClientText(datatype)));
  }
  return absl::OkStatus();
}

// One input tensor; binary data is taken from `binary` at `*offset`.
absl::Status ReadInput(const json& object, int index, absl::string_view binary, size_t* offset,
                       ModelInferRequest* message) {
  const std::string where = absl::StrCat("inputs[", index, "]");
  if (!object.is_object()) return Invalid(where, "must be an object");
  if (auto s = CheckKeys(object, {"name", "shape", "datatype", "parameters", "data"}, where);
      !s.ok()) {
    return s;
  }
  ModelInferRequest::InferInputTensor* input = message->add_inputs();
  if (!object.contains("name") || !object["name"].is_string()) {
    return Invalid(where, "\"name\" must be a string");
  }
  input->set_name(object["name"].get<std::string>());
  if (!object.contains("datatype") || !object["datatype"].is_string()) {
    return Invalid(where, "\"datatype\" must be a string");
  }
  std::string datatype = object["datatype"].get<std::string>();
  if (!object.contains("shape") || !object["shape"].is_array()) {
    return Invalid(where, "\"shape\" must be an array of numbers");
  }
  for (const json& dimension : object["shape"]) {
    if (!dimension.is_number_unsigned() ||
        dimension.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}) {
      return Invalid(where, "\"shape\" must hold non-negative integers");
    }
    input->add_shape(dimension.get<int64_t>());
  }
  if (object.contains("parameters")) {
    if (auto s = ReadParameters(object["parameters"], where, input->mutable_parameters());
        !s.ok()) {
      return s;
    }
  }
  auto size = input->parameters().find("binary_data_size");
  if (size != input->parameters().end()) {
    if (object.contains("data")) return Invalid(where, "has both \"data\" and binary data");
    if (size->second.parameter_choice_case() != InferParameter::kInt64Param ||
        size->second.int64_param() < 0) {
      return Invalid(where, "\"binary_data_size\" must be a non-negative integer");
    }
    const uint64_t bytes = static_cast<uint64_t>(size->second.int64_param());
    if (bytes > binary.size() - *offset) {
      return Invalid(where, absl::StrCat("binary_data_size ", bytes, " runs past the body's ",
                                         binary.size() - *offset, " remaining bytes"));
    }
    message->add_raw_input_contents(std::string(binary.substr(*offset, bytes)));
    *offset += bytes;
    input->set_datatype(datatype);
    input->mutable_parameters()->erase("binary_data_size");
    return absl::OkStatus();
  }
  if (!object.contains("data")) return Invalid(where, "has no \"data\"");
  if (auto s = AppendData(object["data"], datatype, 0, where, input->mutable_contents());
      !s.ok()) {
    return s;
  }
  // JSON numbers are no half floats: they arrive as FP32 values.
  if (datatype == "FP16" || datatype == "BF16") datatype = "FP32";
  input->set_datatype(datatype);
  return absl::OkStatus();
}

json ParametersJson(const google::protobuf::Map<std::string, InferParameter>& parameters) {
  json out = json::object();
  for (const auto& [key, parameter] : parameters) {
    switch (parameter.parameter_choice_case()) {
      case InferParameter::kBoolParam: out[key] = parameter.bool_param(); break;
      case InferParameter::kInt64Param: out[key] = parameter.int64_param(); break;
      case InferParameter::kStringParam: out[key] = parameter.string_param(); break;
      case InferParameter::kDoubleParam: out[key] = parameter.double_param(); break;
      case InferParameter::kUint64Param: out[key] = parameter.uint64_param(); break;
      case InferParameter::PARAMETER_CHOICE_NOT_SET: break;
    }
  }
  return out;
}

HttpResponse JsonResponse(const json& body) {
  HttpResponse response;
  response.body = Dump(body);
  return response;
}

json TensorSchema(bool with_data) {
  json properties = {{"name", {{"type", "string"}}},
                     {"datatype", {{"type", "string"}, {"example", "FP32"}}},
                     {"shape", {{"type", "array"}, {"items", {{"type", "integer"}}}}},
                     {"parameters", {{"type", "object"}}}};
  if (with_data) {
    properties["data"] = {{"type", "array"},
                          {"description", "Elements in row-major order, flat or nested"},
                          {"items", json::object()}};
  }
  return {{"type", "object"}, {"required", {"name", "datatype", "shape"}},
          {"properties", properties}};
}

}  // namespace

absl::Status ParseV2InferRequest(const HttpRequest& request, ModelInferRequest* message) {
  absl::string_view body = request.body;
  absl::string_view binary;
  const std::string header_length = request.Header(kInferenceHeaderContentLength);
  if (!header_length.empty()) {
    uint64_t length = 0;
    if (!absl::SimpleAtoi(header_length, &length) || length > body.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          kInferenceHeaderContentLength, " ", QuoteClientText(header_length),
          " is not a length within the body's ", body.size(), " bytes"));
    }
    binary = body.substr(length);
    body = body.substr(0, length);
  }
  // Depth and size before json::parse builds the whole tree.
  if (absl::Status s = CheckJsonLimits(body, "request body is not a JSON object"); !s.ok()) {
    return s;
  }
  const json object = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return absl::InvalidArgumentError("request body is not a JSON object");
  }
  if (auto s = CheckKeys(object, {"id", "parameters", "inputs", "outputs"}, "request");
      !s.ok()) {
    return s;
  }
  if (object.contains("id")) {
    if (!object["id"].is_string()) return Invalid("request", "\"id\" must be a string");
    message->set_id(object["id"].get<std::string>());
  }
  if (object.contains("parameters")) {
    if (auto s = ReadParameters(object["parameters"], "request", message->mutable_parameters());
        !s.ok()) {
      return s;
    }
  }
  if (!object.contains("inputs") || !object["inputs"].is_array()) {
    return Invalid("request", "\"inputs\" must be an array of tensors");
  }
  size_t offset = 0;
  int index = 0;
  for (const json& input : object["inputs"]) {
    if (auto s = ReadInput(input, index++, binary, &offset, message); !s.ok()) return s;
  }
  if (message->raw_input_contents_size() > 0 &&
      message->raw_input_contents_size() != message->inputs_size()) {
    return Invalid("request", "either every input is binary or none is");
  }
  if (offset != binary.size()) {
    return Invalid("request", absl::StrCat(binary.size() - offset,
                                           " bytes of binary data belong to no input"));
  }
  if (object.contains("outputs")) {
    if (!object["outputs"].is_array()) return Invalid("request", "\"outputs\" must be an array");
    int output_index = 0;
    for (const json& output : object["outputs"]) {
      const std::string where = absl::StrCat("outputs[", output_index++, "]");
      if (!output.is_object()) return Invalid(where, "must be an object");
      if (auto s = CheckKeys(output, {"name", "parameters"}, where); !s.ok()) return s;
      auto* asked = message->add_outputs();
      if (!output.contains("name") || !output["name"].is_string()) {
        return Invalid(where, "\"name\" must be a string");
      }
      asked->set_name(output["name"].get<std::string>());
      if (output.contains("parameters")) {
        if (auto s = ReadParameters(output["parameters"], where, asked->mutable_parameters());
            !s.ok()) {
          return s;
        }
      }
    }
  }
  return absl::OkStatus();
}

HttpResponse V2InferResponse(const inference::ModelInferResponse& message) {
  json outputs = json::array();
  std::string binary;
  const bool raw = message.raw_output_contents_size() > 0;
  for (int i = 0; i < message.outputs_size(); ++i) {
    const auto& tensor = message.outputs(i);
    json output = {{"name", tensor.name()},
                   {"datatype", tensor.datatype()},
                   {"shape", json(std::vector<int64_t>(tensor.shape().begin(),
                                                       tensor.shape().end()))}};
    json parameters = ParametersJson(tensor.parameters());
    if (raw) {
      const std::string& bytes = message.raw_output_contents(i);
      parameters["binary_data_size"] = bytes.size();
      binary += bytes;
    } else if (tensor.datatype() == "BYTES") {
      output["data"] = json(std::vector<std::string>(tensor.contents().bytes_contents().begin(),
                                                     tensor.contents().bytes_contents().end()));
    } else if (tensor.datatype() == "FP64") {  // attributions
      output["data"] = json(std::vector<double>(tensor.contents().fp64_contents().begin(),
                                                tensor.contents().fp64_contents().end()));
    } else {
      json data = json::array();
      for (float value : tensor.contents().fp32_contents()) data.push_back(ShortestDecimal(value));
      output["data"] = std::move(data);
    }
    if (!parameters.empty()) output["parameters"] = parameters;
    outputs.push_back(std::move(output));
  }
  json body = {{"model_name", message.model_name()},
               {"model_version", message.model_version()},
               {"outputs", outputs}};
  if (!message.id().empty()) body["id"] = message.id();
  HttpResponse response = JsonResponse(body);
  if (raw) {
    response.headers.emplace_back(kInferenceHeaderContentLength,
                                  absl::StrCat(response.body.size()));
    response.content_type = "application/octet-stream";
    response.body += binary;
  }
  return response;
}

HttpResponse V2ModelMetadataResponse(const inference::ModelMetadataResponse& message) {
  auto tensors = [](const auto& list) {
    json out = json::array();
    for (const auto& tensor : list) {
      out.push_back({{"name", tensor.name()},
                     {"datatype", tensor.datatype()},
                     {"shape", json(std::vector<int64_t>(tensor.shape().begin(),
                                                         tensor.shape().end()))}});
    }
    return out;
  };
  return JsonResponse(
      {{"name", message.name()},
       {"versions",
        json(std::vector<std::string>(message.versions().begin(), message.versions().end()))},
       {"platform", message.platform()},
       {"inputs", tensors(message.inputs())},
       {"outputs", tensors(message.outputs())}});
}

HttpResponse V2ServerMetadataResponse(const inference::ServerMetadataResponse& message) {
  return JsonResponse(
      {{"name", message.name()},
       {"version", message.version()},
       {"extensions", json(std::vector<std::string>(message.extensions().begin(),
                                                    message.extensions().end()))}});
}

namespace {

// An optional JSON object body of `keys` (empty: {}).
absl::StatusOr<json> OptionalObject(const std::string& body,
                                    std::initializer_list<const char*> keys) {
  if (body.empty()) return json::object();
  if (absl::Status s = CheckJsonLimits(body, "request body is not a JSON object"); !s.ok()) {
    return s;
  }
  json object = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return absl::InvalidArgumentError("request body is not a JSON object");
  }
  if (absl::Status s = CheckKeys(object, keys, "request"); !s.ok()) return s;
  return object;
}

bool FitsInt64(const json& value) {
  return !value.is_number_unsigned() ||
         value.get<uint64_t>() <= uint64_t{std::numeric_limits<int64_t>::max()};
}

// Repository parameters: strings, booleans and integers, as Triton's.
absl::Status ReadRepositoryParameters(
    const json& object,
    google::protobuf::Map<std::string, inference::ModelRepositoryParameter>* out) {
  if (!object.is_object()) return Invalid("request", "\"parameters\" must be an object");
  for (const auto& [key, value] : object.items()) {
    inference::ModelRepositoryParameter& parameter = (*out)[key];
    if (value.is_boolean()) {
      parameter.set_bool_param(value.get<bool>());
    } else if (value.is_number_integer() && FitsInt64(value)) {
      parameter.set_int64_param(value.get<int64_t>());
    } else if (value.is_string()) {
      parameter.set_string_param(value.get<std::string>());
    } else {
      return Invalid("request", absl::StrCat("parameter ", QuoteClientText(key),
                                             " must be a string, integer or boolean"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseV2RepositoryIndexRequest(const std::string& body,
                                           inference::RepositoryIndexRequest* message) {
  auto object = OptionalObject(body, {"repository_name", "ready"});
  if (!object.ok()) return object.status();
  if (object->contains("ready")) {
    if (!(*object)["ready"].is_boolean()) return Invalid("request", "\"ready\" must be a boolean");
    message->set_ready((*object)["ready"].get<bool>());
  }
  return absl::OkStatus();
}

absl::Status ParseV2RepositoryModelLoadRequest(const std::string& body,
                                               inference::RepositoryModelLoadRequest* message) {
  auto object = OptionalObject(body, {"parameters"});
  if (!object.ok()) return object.status();
  if (!object->contains("parameters")) return absl::OkStatus();
  return ReadRepositoryParameters((*object)["parameters"], message->mutable_parameters());
}

absl::Status ParseV2RepositoryModelUnloadRequest(
    const std::string& body, inference::RepositoryModelUnloadRequest* message) {
  auto object = OptionalObject(body, {"parameters"});
  if (!object.ok()) return object.status();
  if (!object->contains("parameters")) return absl::OkStatus();
  return ReadRepositoryParameters((*object)["parameters"], message->mutable_parameters());
}

HttpResponse V2RepositoryIndexResponse(const inference::RepositoryIndexResponse& message) {
  json models = json::array();
  for (const auto& model : message.models()) {
    json entry = {{"name", model.name()}};
    if (!model.version().empty()) entry["version"] = model.version();
    entry["state"] = model.state();
    entry["reason"] = model.reason();
    models.push_back(std::move(entry));
  }
  return JsonResponse(models);
}

HttpResponse V2ErrorResponse(const absl::Status& status) {
  // The same capped message a gRPC caller gets.
  HttpResponse response = JsonResponse({{"error", CappedStatusMessage(status)}});
  response.status = HttpStatusFor(status.code());
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
  }
  return response;
}

json V2JsonSchemas() {
  const json parameters = {{"type", "object"},
                           {"additionalProperties",
                            {{"oneOf",
                              {{{"type", "string"}}, {{"type", "number"}},
                               {{"type", "boolean"}}}}}}};
  json request_output = {
      {"type", "object"},
      {"required", {"name"}},
      {"properties",
       {{"name", {{"type", "string"}, {"example", "softmax"}}}, {"parameters", parameters}}}};
  return {
      {"V2InferenceRequest",
       {{"type", "object"},
        {"required", {"inputs"}},
        {"properties",
         {{"id", {{"type", "string"}}},
          {"parameters", parameters},
          {"inputs", {{"type", "array"}, {"items", TensorSchema(true)}}},
          {"outputs", {{"type", "array"}, {"items", request_output}}}}}}},
      {"V2InferenceResponse",
       {{"type", "object"},
        {"required", {"model_name", "outputs"}},
        {"properties",
         {{"model_name", {{"type", "string"}}},
          {"model_version", {{"type", "string"}}},
          {"id", {{"type", "string"}}},
          {"parameters", parameters},
          {"outputs", {{"type", "array"}, {"items", TensorSchema(true)}}}}}}},
      {"V2ModelMetadata",
       {{"type", "object"},
        {"required", {"name", "platform", "inputs", "outputs"}},
        {"properties",
         {{"name", {{"type", "string"}}},
          {"versions", {{"type", "array"}, {"items", {{"type", "string"}}}}},
          {"platform", {{"type", "string"}}},
          {"inputs", {{"type", "array"}, {"items", TensorSchema(false)}}},
          {"outputs", {{"type", "array"}, {"items", TensorSchema(false)}}}}}}},
      {"V2ServerMetadata",
       {{"type", "object"},
        {"required", {"name", "version", "extensions"}},
        {"properties",
         {{"name", {{"type", "string"}}},
          {"version", {{"type", "string"}}},
          {"extensions", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}}},
      {"V2RepositoryIndexRequest",
       {{"type", "object"},
        {"properties", {{"ready", {{"type", "boolean"}}}}},
        {"example", {{"ready", true}}}}},
      {"V2RepositoryIndex",
       {{"type", "array"},
        {"items",
         {{"type", "object"},
          {"required", {"name", "state", "reason"}},
          {"properties",
           {{"name", {{"type", "string"}}},
            {"version", {{"type", "string"}}},
            {"state", {{"type", "string"}, {"enum", {"READY", "LOADING", "UNAVAILABLE"}}}},
            {"reason", {{"type", "string"}}}}}}}}},
      {"V2RepositoryLoadRequest",
       {{"type", "object"},
        {"properties",
         {{"parameters",
           {{"type", "object"},
            {"properties",
             {{"config",
               {{"type", "string"},
                {"description", "a seqserve.v1.ModelConfig in JSON, used instead of "
                                "config.textproto"}}}}},
            {"additionalProperties", false}}}}}}},
      {"V2RepositoryUnloadRequest",
       {{"type", "object"},
        {"properties",
         {{"parameters",
           {{"type", "object"},
            {"properties", {{"unload_dependents", {{"type", "boolean"}}}}},
            {"additionalProperties", false}}}}}}},
      {"V2Error",
       {{"type", "object"},
        {"required", {"error"}},
        {"properties", {{"error", {{"type", "string"}}}}}}}};
}

}  // namespace seqserve
