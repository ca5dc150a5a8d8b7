#include "frontends/http/tf_serving_json.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "frontends/http/json_limits.h"
#include "frontends/http/json_numbers.h"
#include "serving/client_text.h"

namespace seqserve {
namespace {

using nlohmann::json;

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse JsonResponse(const json& body) {
  HttpResponse response;
  response.body = Dump(body);
  return response;
}

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// The keys of TF Serving's request bodies.
constexpr const char* kTfClassifyKeys[] = {"signature_name", "context", "examples"};
constexpr const char* kTfPredictKeys[] = {"signature_name", "instances", "inputs"};

bool IsTfKey(absl::string_view key) {
  for (const char* name : kTfClassifyKeys) {
    if (key == name) return true;
  }
  for (const char* name : kTfPredictKeys) {
    if (key == name) return true;
  }
  return false;
}

// A field of seqserve's ClassifyRequest, by its proto or its JSON name.
bool IsSeqserveKey(absl::string_view key) {
  const auto* descriptor = v1::ClassifyRequest::descriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    if (key == descriptor->field(i)->name() || key == descriptor->field(i)->json_name()) {
      return true;
    }
  }
  return false;
}

// Calls `on_key` with each key of the body's top-level object as written
// (escapes not decoded), without parsing a value: one pass over the bytes,
// no memory, much cheaper than the parse that follows. On a body that is
// not JSON it sees whatever it sees; the parser refuses that body later.
template <typename OnKey>
void ForEachTopLevelKey(absl::string_view body, OnKey on_key) {
  int depth = 0;
  bool in_object = false;  // the top level is an object
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '"') {
      const size_t start = i + 1;
      size_t end = start;
      while (end < body.size() && body[end] != '"') end += body[end] == '\\' ? 2 : 1;
      if (end >= body.size()) return;
      i = end;
      if (depth != 1 || !in_object) continue;
      size_t next = end + 1;
      while (next < body.size() && absl::ascii_isspace(static_cast<unsigned char>(body[next]))) {
        ++next;
      }
      if (next < body.size() && body[next] == ':') on_key(body.substr(start, end - start));
    } else if (c == '{' || c == '[') {
      if (depth++ == 0) in_object = c == '{';
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

// Whether `body` holds a NaN or Infinity token outside its strings (no
// valid JSON does: outside strings it holds no capital letter).
bool HasNonFiniteToken(absl::string_view body) {
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (body.substr(i, 3) == "NaN" || body.substr(i, 8) == "Infinity") {
      return true;
    }
  }
  return false;
}

// The body as a JSON object, after the streaming limits check.
absl::StatusOr<json> ParseObject(absl::string_view body, absl::string_view what) {
  const std::string context =
      absl::StrCat("request body is not a valid TF Serving ", what, " request in JSON");
  if (absl::Status limits = CheckJsonLimits(body, context); !limits.ok()) {
    if (HasNonFiniteToken(body)) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": NaN and Infinity are not accepted; seqserve takes finite features only"));
    }
    return limits;
  }
  json object = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": not a JSON object"));
  }
  return object;
}

absl::Status CheckKeys(const json& object, absl::Span<const char* const> known,
                       absl::string_view what) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (const char* name : known) found = found || key == name;
    if (!found) {
      std::string names;
      for (const char* name : known) absl::StrAppend(&names, names.empty() ? "" : ", ", name);
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown field ", QuoteClientText(key), " in a TF Serving ", what,
          " request; it takes ", names));
    }
  }
  return absl::OkStatus();
}

// "" and "serving_default" name the one signature; anything else is refused
// in TF Serving's words.
absl::Status CheckSignature(const json& object) {
  if (!object.contains("signature_name")) return absl::OkStatus();
  const json& name = object["signature_name"];
  if (!name.is_string()) {
    return absl::InvalidArgumentError("'signature_name' key must be a string value");
  }
  const std::string& text = name.get_ref<const std::string&>();
  if (text.empty() || text == kTfServingSignature) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "Serving signature name: ", QuoteClientText(text),
      " not found in signature def; every model has one signature, '", kTfServingSignature,
      "' (or \"\")"));
}

// Why `value` is no feature value, or "" when it is one: a number (in
// *out), a string (a category, or a number as text, in *text) or null (a
// missing value: NaN). The caller names where it is only when it is not:
// a body holds millions.
std::string ValueProblem(const json& value, float* out, std::string* text) {
  if (value.is_string()) {
    *text = value.get<std::string>();
    *out = 0;
    return text->empty() ? "is an empty string" : "";
  }
  if (value.is_null()) {
    *out = std::numeric_limits<float>::quiet_NaN();
    return "";
  }
  if (!value.is_number()) {
    return absl::StrCat("must be a number, a string or null, got ", value.type_name());
  }
  const double number = value.get<double>();
  if (std::fabs(number) > std::numeric_limits<float>::max()) return "is beyond FP32's range";
  *out = static_cast<float>(number);
  return "";
}

// A named feature's value: a value, or a list of one (a TF Example's
// feature is a list).
std::string FeatureProblem(const json& value, float* out, std::string* text) {
  if (!value.is_array()) return ValueProblem(value, out, text);
  if (value.size() != 1) {
    return absl::StrCat("a feature holds one value, got a list of ", value.size());
  }
  return ValueProblem(value[0], out, text);
}

std::string Key(absl::string_view where, absl::string_view key) {
  return absl::StrCat(where, "[", QuoteClientText(key), "]");
}

// Rows as they come, each checked to be given the same way as the first:
// lists of the same length, or objects with the same feature names. The
// values they hold are bounded like a body's JSON values: a context's
// features count once per example, so a small body could otherwise ask
// for many more.
class RowBuilder {
 public:
  // A row of values in the model's order.
  absl::Status AddList(const json& list, const std::string& where) {
    if (!list.is_array()) {
      return Invalid(where, absl::StrCat("must be a list of numbers, got ", list.type_name()));
    }
    if (absl::Status same = SameForm(Form::kList, where); !same.ok()) return same;
    if (rows_ == 0) {
      width_ = list.size();
    } else if (list.size() != width_) {
      return Invalid(where, absl::StrCat("has ", list.size(), " values and ", first_, " has ",
                                         width_, ": every row has the same width"));
    }
    if (absl::Status room = Room(list.size()); !room.ok()) return room;
    for (size_t i = 0; i < list.size(); ++i) {
      float value = 0;
      std::string text;
      if (std::string problem = ValueProblem(list[i], &value, &text); !problem.empty()) {
        return Invalid(absl::StrCat(where, "[", i, "]"), problem);
      }
      Push(value, std::move(text));
    }
    ++rows_;
    return absl::OkStatus();
  }

  // A row as an object, with the features of `context` (an object, none of
  // whose keys the row has): the signature's input ("features") holding
  // the row's list, or the model's features by name.
  absl::Status AddObject(const json& object, const std::string& where,
                         const json& context = json::object()) {
    if (object.size() + context.size() == 1) {
      const json& only = object.empty() ? context : object;
      if (only.contains(kTfServingInput) && only[kTfServingInput].is_array()) {
        return AddList(only[kTfServingInput], Key(where, kTfServingInput));
      }
    }
    if (absl::Status same = SameForm(Form::kNamed, where); !same.ok()) return same;
    if (rows_ == 0) {
      for (const auto& [key, value] : object.items()) names_.push_back(key);
      for (const auto& [key, value] : context.items()) names_.push_back(key);
      std::sort(names_.begin(), names_.end());
    }
    if (absl::Status room = Room(names_.size()); !room.ok()) return room;
    for (const std::string& name : names_) {
      const json* found = nullptr;
      if (auto in_row = object.find(name); in_row != object.end()) {
        found = &*in_row;
      } else if (auto shared = context.find(name); shared != context.end()) {
        found = &*shared;
      } else {
        return Invalid(where, absl::StrCat("has no ", QuoteClientText(name), ", which ", first_,
                                           " has: every row gives the same features"));
      }
      float value = 0;
      std::string text;
      if (std::string problem = FeatureProblem(*found, &value, &text); !problem.empty()) {
        return Invalid(Key(where, name), problem);
      }
      Push(value, std::move(text));
    }
    // Every name was found, in the row or the context, which share none:
    // more keys than names is a key the first row has not.
    if (object.size() + context.size() != names_.size()) {
      for (const auto& [key, value] : object.items()) {
        if (!std::binary_search(names_.begin(), names_.end(), key)) {
          return Invalid(where, absl::StrCat("has ", QuoteClientText(key), ", which ", first_,
                                             " has not: every row gives the same features"));
        }
      }
    }
    ++rows_;
    return absl::OkStatus();
  }

  // Columns by feature name: each a list with one value per row.
  absl::Status AddColumns(const json& object, const std::string& where) {
    std::string first_column;
    size_t rows = 0;
    bool first = true;
    for (const auto& [key, column] : object.items()) {
      const std::string at = Key(where, key);
      if (!column.is_array()) {
        return Invalid(at, absl::StrCat("must be a list with one value per row, got ",
                                        column.type_name()));
      }
      if (first) {
        rows = column.size();
        first_column = at;
        first = false;
      } else if (column.size() != rows) {
        return Invalid(at, absl::StrCat("has ", column.size(), " values and ", first_column,
                                        " has ", rows, ": every input has one per row"));
      }
      names_.push_back(key);
    }
    form_ = Form::kNamed;
    values_.resize(rows * names_.size());  // each a JSON value of the body
    size_t j = 0;
    for (const auto& [key, column] : object.items()) {
      for (size_t r = 0; r < rows; ++r) {
        const size_t at = r * names_.size() + j;
        std::string text;
        if (std::string problem = FeatureProblem(column[r], &values_[at], &text);
            !problem.empty()) {
          return Invalid(absl::StrCat(Key(where, key), "[", r, "]"), problem);
        }
        if (!text.empty()) {
          categories_.resize(values_.size());
          categories_[at] = std::move(text);
        }
      }
      ++j;
    }
    rows_ = rows;
    return absl::OkStatus();
  }

  static absl::Status TooManyValues() {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the rows hold more than ", kMaxJsonValues,
        " values (a context's features count once per example); send fewer rows"));
  }

  void Finish(TfServingRows* out) {
    out->request.mutable_features()->Add(values_.begin(), values_.end());
    for (std::string& text : categories_) out->request.add_categories(std::move(text));
    out->request.set_rows(static_cast<uint32_t>(std::min<size_t>(
        rows_, std::numeric_limits<uint32_t>::max())));
    if (form_ == Form::kNamed) {
      for (std::string& name : names_) out->request.add_columns(std::move(name));
    }
  }

 private:
  enum class Form { kNone, kList, kNamed };

  absl::Status SameForm(Form form, const std::string& where) {
    if (form_ == Form::kNone) {
      form_ = form;
      first_ = where;
      return absl::OkStatus();
    }
    if (form == form_) return absl::OkStatus();
    return Invalid(where, absl::StrCat(form == Form::kList ? "is a list and " : "is an object and ",
                                       first_, form == Form::kList ? " an object" : " a list",
                                       ": give every row the same way"));
  }

  // Whether `more` values fit beside those read.
  absl::Status Room(size_t more) const {
    if (more <= kMaxJsonValues - std::min<uint64_t>(values_.size(), kMaxJsonValues)) {
      return absl::OkStatus();
    }
    return TooManyValues();
  }

  // A value read, with its text when it was a string.
  void Push(float value, std::string text) {
    if (!text.empty() && categories_.size() < values_.size()) categories_.resize(values_.size());
    values_.push_back(value);
    if (!categories_.empty() || !text.empty()) categories_.push_back(std::move(text));
  }

  Form form_ = Form::kNone;
  std::string first_;  // where the first row is
  size_t width_ = 0;
  size_t rows_ = 0;
  std::vector<std::string> names_;  // sorted
  std::vector<float> values_;
  // Parallel to values_ once a string was read (empty for the numbers).
  std::vector<std::string> categories_;
};

// The schema of a float tensor's JSON in TF Serving's metadata: TensorInfo.
json TensorInfo(const std::string& name, int64_t width) {
  json dims = json::array();
  for (int64_t size : {int64_t{-1}, width}) {
    dims.push_back(json{{"size", absl::StrCat(size)}, {"name", ""}});
  }
  return json{{"dtype", "DT_FLOAT"},
              {"tensor_shape", json{{"dim", dims}, {"unknown_rank", false}}},
              {"name", name}};
}

// ModelVersionStatus.State's name for a seqserve state.
const char* TfState(v1::ModelState state) {
  switch (state) {
    case v1::MODEL_STATE_LOADING: return "LOADING";
    case v1::MODEL_STATE_AVAILABLE: return "AVAILABLE";
    case v1::MODEL_STATE_FAILED: return "END";  // "hit an error at some point"
    default: return "UNKNOWN";
  }
}

}  // namespace

absl::StatusOr<ClassifyBody> ClassifyBodyOf(absl::string_view body) {
  absl::string_view tf_key, seqserve_key;
  ForEachTopLevelKey(body, [&](absl::string_view key) {
    if (tf_key.empty() && IsTfKey(key)) tf_key = key;
    if (seqserve_key.empty() && IsSeqserveKey(key)) seqserve_key = key;
  });
  if (!tf_key.empty() && !seqserve_key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the body mixes TF Serving's classify request (", QuoteClientText(tf_key),
        ") with seqserve's ClassifyRequest (", QuoteClientText(seqserve_key),
        "): send one or the other"));
  }
  return tf_key.empty() ? ClassifyBody::kSeqserve : ClassifyBody::kTfServing;
}

absl::Status ParseTfPredictRequest(absl::string_view body, TfServingRows* rows) {
  auto parsed = ParseObject(body, "predict");
  if (!parsed.ok()) return parsed.status();
  const json& object = *parsed;
  if (absl::Status s = CheckKeys(object, kTfPredictKeys, "predict"); !s.ok()) return s;
  if (absl::Status s = CheckSignature(object); !s.ok()) return s;
  const bool instances = object.contains("instances");
  const bool inputs = object.contains("inputs");
  if (instances && inputs) {
    return absl::InvalidArgumentError(
        "a predict request has either \"instances\" (rows) or \"inputs\" (columns), not both");
  }
  if (!instances && !inputs) {
    return absl::InvalidArgumentError(
        "a predict request needs \"instances\" (rows) or \"inputs\" (columns)");
  }
  RowBuilder builder;
  if (instances) {
    const json& list = object["instances"];
    if (!list.is_array()) {
      return Invalid("instances", absl::StrCat("must be a list of rows, got ", list.type_name()));
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = absl::StrCat("instances[", i, "]");
      const json& row = list[i];
      absl::Status added;
      if (row.is_object()) {
        added = builder.AddObject(row, where);
      } else if (row.is_array()) {
        added = builder.AddList(row, where);
      } else {
        added = Invalid(where, absl::StrCat("must be a list of numbers or an object, got ",
                                            row.type_name()));
      }
      if (!added.ok()) return added;
    }
  } else {
    rows->columnar = true;
    const json& columns = object["inputs"];
    // The rows as a list, bare or under the signature's input name.
    const json* list = nullptr;
    std::string where = "inputs";
    if (columns.is_array()) {
      list = &columns;
    } else if (columns.is_object() && columns.size() == 1 && columns.contains(kTfServingInput)) {
      list = &columns[kTfServingInput];
      where = Key(where, kTfServingInput);
      if (!list->is_array()) {
        return Invalid(where, absl::StrCat("must be a list of rows, got ", list->type_name()));
      }
    } else if (!columns.is_object()) {
      return Invalid(where, absl::StrCat("must be a list of rows or an object, got ",
                                         columns.type_name()));
    }
    if (list != nullptr) {
      for (size_t i = 0; i < list->size(); ++i) {
        if (absl::Status s = builder.AddList((*list)[i], absl::StrCat(where, "[", i, "]"));
            !s.ok()) {
          return s;
        }
      }
    } else if (absl::Status s = builder.AddColumns(columns, where); !s.ok()) {
      return s;
    }
  }
  builder.Finish(rows);
  return absl::OkStatus();
}

absl::Status ParseTfClassifyRequest(absl::string_view body, TfServingRows* rows) {
  auto parsed = ParseObject(body, "classify");
  if (!parsed.ok()) return parsed.status();
  const json& object = *parsed;
  if (absl::Status s = CheckKeys(object, kTfClassifyKeys, "classify"); !s.ok()) return s;
  if (absl::Status s = CheckSignature(object); !s.ok()) return s;
  if (!object.contains("examples") || !object["examples"].is_array()) {
    return absl::InvalidArgumentError(
        "a classify request needs \"examples\", a list of objects (one per row)");
  }
  static const json kNoContext = json::object();
  const json& context = object.contains("context") ? object["context"] : kNoContext;
  if (!context.is_object()) {
    return Invalid("context", absl::StrCat("must be an object of features, got ",
                                           context.type_name()));
  }
  const json& examples = object["examples"];
  // The context alone gives every example its values: refused before any
  // row is read when that is already too many.
  if (!context.empty() && examples.size() > kMaxJsonValues / context.size()) {
    return RowBuilder::TooManyValues();
  }
  RowBuilder builder;
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::string where = absl::StrCat("examples[", i, "]");
    const json& example = examples[i];
    if (!example.is_object()) {
      return Invalid(where, absl::StrCat("must be an object of features, got ",
                                         example.type_name()));
    }
    // The context's features join each example's; none may be in both.
    for (const auto& [key, value] : example.items()) {
      if (context.contains(key)) {
        return Invalid(where, absl::StrCat("feature ", QuoteClientText(key),
                                           " is also in the context; a feature in the context "
                                           "must not be in an example"));
      }
    }
    if (absl::Status s = builder.AddObject(example, where, context); !s.ok()) return s;
  }
  builder.Finish(rows);
  return absl::OkStatus();
}

HttpResponse TfPredictResponse(const v1::ClassifyResponse& answer, bool columnar) {
  json rows = json::array();
  for (const v1::RowResult& result : answer.results()) {
    json row = json::array();
    for (float score : result.scores()) row.push_back(ShortestDecimal(score));
    rows.push_back(std::move(row));
  }
  json body = json::object();
  body[columnar ? "outputs" : "predictions"] = std::move(rows);
  return JsonResponse(body);
}

HttpResponse TfClassifyResponse(const v1::ClassifyResponse& answer) {
  json rows = json::array();
  for (const v1::RowResult& result : answer.results()) {
    json classes = json::array();
    for (const v1::ScoredClass& entry : result.top_k()) {
      classes.push_back(json::array({entry.label(), ShortestDecimal(entry.score())}));
    }
    rows.push_back(std::move(classes));
  }
  json body = json::object();
  body["results"] = rows;
  body["result"] = std::move(rows);
  return JsonResponse(body);
}

HttpResponse TfModelStatusResponse(const v1::ModelStatus& status) {
  json versions = json::array();
  for (const v1::VersionStatus& version : status.versions()) {
    const bool failed = version.state() == v1::MODEL_STATE_FAILED;
    versions.push_back(
        json{{"version", absl::StrCat(version.version())},
             {"state", TfState(version.state())},
             {"status", json{{"error_code", failed ? "UNKNOWN" : "OK"},
                             {"error_message", failed ? version.error() : ""}}}});
  }
  return JsonResponse(json{{"model_version_status", std::move(versions)}});
}

HttpResponse TfModelMetadataResponse(const v1::GetModelMetadataResponse& metadata) {
  json inputs = json::object();
  inputs[kTfServingInput] = TensorInfo(metadata.input_tensor(), metadata.input_width());
  json outputs = json::object();
  outputs[metadata.output_tensor()] = TensorInfo(metadata.output_tensor(), metadata.output_width());
  json signatures = json::object();
  signatures[kTfServingSignature] = json{{"inputs", std::move(inputs)},
                                         {"outputs", std::move(outputs)},
                                         {"method_name", "tensorflow/serving/predict"},
                                         {"defaults", json::object()}};
  // seqserve's own metadata in protobuf's JSON mapping, as an Any.
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string own_text;
  if (!google::protobuf::util::MessageToJsonString(metadata, &own_text, options).ok()) {
    own_text = "{}";
  }
  json own = json::parse(own_text, nullptr, /*allow_exceptions=*/false);
  if (own.is_discarded()) own = json::object();
  own["@type"] = absl::StrCat("type.googleapis.com/", metadata.GetDescriptor()->full_name());
  json body = {
      {"model_spec",
       json{{"name", metadata.model()},
            {"signature_name", ""},
            {"version", absl::StrCat(metadata.version())}}},
      {"metadata",
       json{{"signature_def",
             json{{"@type", "type.googleapis.com/tensorflow.serving.SignatureDefMap"},
                  {"signature_def", std::move(signatures)}}},
            {kSeqserveMetadataKey, std::move(own)}}}};
  return JsonResponse(body);
}

json TfServingJsonSchemas() {
  const json string_type = {{"type", "string"}};
  const json number = {{"type", "number"}, {"format", "float"}};
  const json row = {{"type", "array"}, {"items", number}};
  const json rows = {{"type", "array"}, {"items", row}};
  json one_number_list = row;
  one_number_list["minItems"] = 1;
  one_number_list["maxItems"] = 1;
  json feature;
  feature["oneOf"] = json::array({number, one_number_list});
  json named_row = {{"type", "object"}};
  named_row["description"] =
      "The model's features by name (its config's feature_names), or the row's list under "
      "\"features\"";
  named_row["additionalProperties"] = json{{"oneOf", json::array({feature, row})}};
  json signature = string_type;
  signature["description"] = "\"\" or \"serving_default\", the one signature";
  signature["enum"] = json::array({"", kTfServingSignature});
  const json version_string = {{"type", "string"}, {"format", "int64"}};
  auto object = [](const char* description, json properties) {
    json schema = {{"type", "object"}};
    schema["description"] = description;
    schema["properties"] = std::move(properties);
    return schema;
  };

  json instances = {{"type", "array"}};
  instances["items"] = json{{"oneOf", json::array({row, named_row})}};
  json by_input = {{"type", "object"}};
  by_input["additionalProperties"] = json::object();
  json inputs;
  inputs["oneOf"] = json::array({rows, by_input});
  json predict_request = object(
      "TF Serving's predict request: rows (\"instances\") or columns (\"inputs\"), not both",
      json{{"signature_name", signature}, {"instances", instances}, {"inputs", inputs}});
  predict_request["additionalProperties"] = false;
  predict_request["example"] = json{{"instances", json::array({json::array({4, 0, 1})})}};

  json examples = {{"type", "array"}};
  examples["items"] = named_row;
  json classify_request = object(
      "TF Serving's classify request: the context's features join every example's",
      json{{"signature_name", signature}, {"context", named_row}, {"examples", examples}});
  classify_request["required"] = json::array({"examples"});
  classify_request["additionalProperties"] = false;
  json example_row = json::object();
  example_row[kTfServingInput] = json::array({4, 0, 1});
  classify_request["example"] = json{{"examples", json::array({example_row})}};

  json pair = {{"type", "array"}};
  pair["items"] = json{{"oneOf", json::array({string_type, number})}};
  pair["description"] = "[label, probability]";
  json classes = {{"type", "array"}};
  classes["items"] = pair;
  json result = {{"type", "array"}};
  result["items"] = classes;
  const json classify_response = object(
      "Every class as [label, probability] per row, under \"result\" (api_rest.md) and "
      "\"results\" (what TF Serving sends)",
      json{{"result", result}, {"results", result}});

  json state = string_type;
  state["enum"] = json::array({"UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"});
  const json status = object(
      "StatusProto", json{{"error_code", string_type}, {"error_message", string_type}});
  json version_status = object(
      "ModelVersionStatus",
      json{{"version", version_string}, {"state", state}, {"status", status}});
  json versions = {{"type", "array"}};
  versions["items"] = version_status;

  const json model_spec = object(
      "ModelSpec",
      json{{"name", string_type}, {"signature_name", string_type}, {"version", version_string}});
  json own = {{"description",
               "seqserve.v1.GetModelMetadataResponse as an Any: its fields and \"@type\""}};
  own["allOf"] = json::array(
      {json{{"$ref", "#/components/schemas/seqserve.v1.GetModelMetadataResponse"}}});
  json metadata_map = json::object();
  metadata_map["signature_def"] = object(
      "tensorflow.serving.SignatureDefMap as an Any",
      json{{"@type", string_type}, {"signature_def", json{{"type", "object"}}}});
  metadata_map[kSeqserveMetadataKey] = own;

  json schemas = json::object();
  schemas["TfPredictRequest"] = predict_request;
  schemas["TfPredictResponse"] = object("The model's default output per row",
                                        json{{"predictions", rows}, {"outputs", rows}});
  schemas["TfClassifyRequest"] = classify_request;
  schemas["TfClassifyResponse"] = classify_response;
  schemas["TfModelStatus"] = object("TF Serving's GetModelStatusResponse",
                                    json{{"model_version_status", versions}});
  schemas["TfModelMetadata"] = object(
      "TF Serving's GetModelMetadataResponse, with seqserve's own metadata beside the "
      "signature_def",
      json{{"model_spec", model_spec}, {"metadata", object("map<string, Any>", metadata_map)}});
  return schemas;
}

}  // namespace seqserve
