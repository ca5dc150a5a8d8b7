#include "frontends/http/openapi.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "frontends/edge/request_id.h"
#include "frontends/http/tf_serving_json.h"
#include "frontends/http/v2_json.h"
#include "google/protobuf/descriptor.h"
#include "seqserve/v1/classifier.pb.h"
#include "serving/output_mode_name.h"

namespace seqserve {
namespace {

using nlohmann::json;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

std::string SchemaName(const Descriptor* message) { return message->full_name(); }

std::string Ref(const Descriptor* message) {
  return "#/components/schemas/" + SchemaName(message);
}

// One field's schema in protobuf's JSON mapping (64-bit integers are
// strings; enums their names).
json FieldSchema(const FieldDescriptor* field, std::set<const Descriptor*>* pending) {
  json item;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      item = {{"type", "integer"}, {"format", "int32"}};
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      item = {{"type", "integer"}, {"format", "int64"}, {"minimum", 0}};
      break;
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
      item = {{"type", "string"}, {"format", "int64"}};
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      item = {{"type", "number"}, {"format", "float"}};
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      item = {{"type", "number"}, {"format", "double"}};
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      item = {{"type", "boolean"}};
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      item = {{"type", "string"}};
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      json names = json::array();
      for (int i = 0; i < field->enum_type()->value_count(); ++i) {
        names.push_back(field->enum_type()->value(i)->name());
      }
      // Output modes: a request may also spell them as seqserve prints
      // them ("softmax"); answers carry the names above.
      if (field->enum_type() == v1::OutputMode_descriptor()) {
        for (int i = 0; i < field->enum_type()->value_count(); ++i) {
          names.push_back(OutputModeName(
              static_cast<v1::OutputMode>(field->enum_type()->value(i)->number())));
        }
      }
      item = {{"type", "string"}, {"enum", names}};
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      pending->insert(field->message_type());
      item = {{"$ref", Ref(field->message_type())}};
      break;
  }
  if (field->is_repeated()) return {{"type", "array"}, {"items", item}};
  return item;
}

json MessageSchema(const Descriptor* message, std::set<const Descriptor*>* pending) {
  json properties = json::object();
  for (int i = 0; i < message->field_count(); ++i) {
    const FieldDescriptor* field = message->field(i);
    properties[field->name()] = FieldSchema(field, pending);
  }
  return {{"type", "object"}, {"properties", properties}, {"additionalProperties", false}};
}

json ErrorSchema() {
  return {{"type", "object"},
          {"required", {"code", "message", "error"}},
          {"properties",
           {{"code", {{"type", "string"}, {"example", "NOT_FOUND"}}},
            {"message", {{"type", "string"}}},
            {"error", {{"type", "string"}, {"description", "The message, where TF Serving's "
                                                           "clients read it"}}}}}};
}

// The schema of a body: a message, a schema by name, or either.
json BodySchema(const Descriptor* message, const char* schema,
                std::set<const Descriptor*>* pending) {
  json by_name;
  if (schema != nullptr) by_name = {{"$ref", absl::StrCat("#/components/schemas/", schema)}};
  if (message == nullptr) return by_name;
  pending->insert(message);
  const json by_message = {{"$ref", Ref(message)}};
  if (schema == nullptr) return by_message;
  return {{"oneOf", json::array({by_message, by_name})}};
}

// The protobuf messages hand-written schemas refer to ("$ref" to
// "#/components/schemas/<message's full name>").
void FindMessageRefs(const json& schema, std::set<const Descriptor*>* pending) {
  if (schema.is_object()) {
    auto ref = schema.find("$ref");
    if (ref != schema.end() && ref->is_string()) {
      const std::string name = ref->get<std::string>();
      constexpr absl::string_view kPrefix = "#/components/schemas/";
      if (absl::StartsWith(name, kPrefix)) {
        const Descriptor* message =
            google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
                name.substr(kPrefix.size()));
        if (message != nullptr) pending->insert(message);
      }
    }
  }
  if (schema.is_structured()) {
    for (const json& child : schema) FindMessageRefs(child, pending);
  }
}

}  // namespace

std::string OpenApiDocument(const std::vector<RestApi::Route>& routes,
                            const std::string& version) {
  json paths = json::object();
  std::set<const Descriptor*> pending;
  for (const RestApi::Route& route : routes) {
    json operation = {{"summary", route.summary},
                      {"operationId", absl::StrCat(route.method, route.pattern)}};
    json parameters = json::array();
    for (absl::string_view segment : absl::StrSplit(route.pattern, '/')) {
      if (!absl::StartsWith(segment, "{")) continue;
      const std::string name(segment.substr(1, segment.find('}') - 1));
      json schema = name == "version" ? json{{"type", "integer"}, {"format", "int64"},
                                             {"minimum", 1}}
                                      : json{{"type", "string"}};
      parameters.push_back(
          {{"name", name}, {"in", "path"}, {"required", true}, {"schema", schema}});
    }
    // Every call but a probe may carry its id (frontends/edge/request_id.h).
    if (route.access != Access::kOpen) {
      parameters.push_back(
          {{"name", "X-Request-Id"},
           {"in", "header"},
           {"required", false},
           {"description", "The call's id: a traffic split sends the same id to the same "
                           "version; printable ASCII"},
           {"schema", {{"type", "string"}, {"maxLength", kMaxRequestIdBytes}}}});
    }
    if (!parameters.empty()) operation["parameters"] = parameters;
    if (route.request != nullptr || route.request_schema != nullptr) {
      operation["requestBody"] = {
          {"required", true},
          {"content",
           {{"application/json",
             {{"schema", BodySchema(route.request, route.request_schema, &pending)}}}}}};
    }
    // The answer's body: a message, or text of the route's content type.
    json schema;
    std::string content_type = "application/json";
    if (route.response != nullptr || route.response_schema != nullptr) {
      schema = BodySchema(route.response, route.response_schema, &pending);
    } else {
      content_type = route.text_response;
      schema = {{"type", content_type == "application/json" ? "object" : "string"}};
    }
    json content = json::object();
    content[content_type] = {{"schema", schema}};
    const json ok = {{"description", "OK"}, {"content", content}};
    const json error = {
        {"description", std::string(route.error_schema) == "V2Error"
                            ? "An error: its message"
                            : "An error: the gRPC status code's name and a message (also under \"error\")"},
        {"content",
         {{"application/json",
           {{"schema", {{"$ref", absl::StrCat("#/components/schemas/", route.error_schema)}}}}}}}};
    operation["responses"] = {{"200", ok}, {"default", error}};
    std::string method = route.method;
    for (char& c : method) c = static_cast<char>(std::tolower(c));
    paths[route.pattern][method] = operation;
  }
  json schemas = V2JsonSchemas();
  schemas.update(TfServingJsonSchemas());
  schemas["Error"] = ErrorSchema();
  FindMessageRefs(schemas, &pending);
  std::set<const Descriptor*> done;
  while (!pending.empty()) {
    const Descriptor* message = *pending.begin();
    pending.erase(pending.begin());
    if (!done.insert(message).second) continue;
    schemas[SchemaName(message)] = MessageSchema(message, &pending);
  }
  const json document = {
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "seqserve"},
        {"version", version},
        {"description",
         "Classifiers built as PyTorch nn.Sequential, served with logits, sigmoid or "
         "softmax scores. /v1 bodies are the seqserve.v1 messages in protobuf's JSON mapping, "
         "or TF Serving's REST API (predict, classify, model status and metadata); /v2 is the "
         "Open Inference Protocol (KServe v2)."}}},
      {"paths", paths},
      {"components", {{"schemas", schemas}}}};
  return document.dump(2);
}

}  // namespace seqserve
