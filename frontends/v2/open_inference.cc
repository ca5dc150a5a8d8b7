#include "frontends/v2/open_inference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string_view>
#include <utility>

#include "absl/base/config.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/feature_rows.h"
#include "core/head.h"
#include "frontends/edge/request_id.h"
#include "serving/client_text.h"
#include "serving/output_mode.h"
#include "serving/output_mode_name.h"

#ifndef ABSL_IS_LITTLE_ENDIAN
#error "raw tensor contents are little-endian: this host would need byte swaps"
#endif

namespace seqserve {
namespace {

using inference::InferParameter;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr char kPlatform[] = "seqserve_sequential";
// Longest version label a v2 request may name: labels are short words.
constexpr size_t kMaxVersionLabelBytes = 256;
// The output an explanation answers in.
constexpr char kAttributionsOutput[] = "attributions";
// Method, rule and output names are short words; a class label is a label.
constexpr size_t kMaxExplainNameBytes = 64;
constexpr size_t kMaxClassLabelBytes = 1024;
// FP32 holds every integer up to this magnitude exactly, and not all beyond.
constexpr double kExactIntegers = 16777216.0;  // 2^24

// The element types an input may have, with their sizes and, for BOOL and
// the integer types, the range of values an element may hold.
struct InputType {
  const char* name;
  size_t bytes;
  double min;
  double max;
};

constexpr InputType kInputTypes[] = {
    {"FP32", 4, -std::numeric_limits<float>::max(), std::numeric_limits<float>::max()},
    {"FP64", 8, -std::numeric_limits<double>::max(), std::numeric_limits<double>::max()},
    {"FP16", 2, 0, 0},
    {"BF16", 2, 0, 0},
    {"BOOL", 1, 0, 1},
    {"INT8", 1, -128, 127},
    {"INT16", 2, -32768, 32767},
    {"INT32", 4, -2147483648.0, 2147483647.0},
    {"INT64", 8, -9223372036854775808.0, 9223372036854775807.0},
    {"UINT8", 1, 0, 255},
    {"UINT16", 2, 0, 65535},
    {"UINT32", 4, 0, 4294967295.0},
    {"UINT64", 8, 0, 18446744073709551615.0},
};

const InputType* FindInputType(const std::string& name) {
  for (const InputType& type : kInputTypes) {
    if (name == type.name) return &type;
  }
  return nullptr;
}

std::string InputTypeNames() {
  std::vector<std::string> names;
  for (const InputType& type : kInputTypes) names.emplace_back(type.name);
  return absl::StrJoin(names, ", ");
}

float HalfToFloat(uint16_t half) {
  const int exponent = (half >> 10) & 0x1f;
  const int mantissa = half & 0x3ff;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity()
                              : std::numeric_limits<float>::quiet_NaN();
  } else {
    magnitude = std::ldexp(static_cast<float>(1024 + mantissa), exponent - 25);
  }
  return (half & 0x8000) ? -magnitude : magnitude;
}

float Bfloat16ToFloat(uint16_t bits) {
  const uint32_t wide = uint32_t{bits} << 16;
  float value;
  std::memcpy(&value, &wide, sizeof(value));
  return value;
}

// Converts one element to FP32, refusing what FP32 cannot hold: integers
// beyond 2^24 (they would round to a neighbour) and finite FP64 values
// beyond FP32's range. NaN and Inf pass through: the plan refuses them
// with every other protocol's message.
class FeatureWriter {
 public:
  // `input`: the tensor's name, quoted for messages.
  FeatureWriter(const std::string& input, const InputType& type, float* out)
      : input_(input), type_(type), out_(out) {}

  absl::Status Integer(double value, size_t index) {
    if (value < type_.min || value > type_.max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", input_, " element ", index, " is ", value, ", not ", type_.name));
    }
    if (std::fabs(value) > kExactIntegers) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", input_, " element ", index, " is ", value,
          ": beyond 2^24 FP32 cannot hold every integer exactly; send FP32 or FP64"));
    }
    out_[index] = static_cast<float>(value);
    return absl::OkStatus();
  }

  absl::Status Real(double value, size_t index) {
    if (std::isfinite(value) && std::fabs(value) > std::numeric_limits<float>::max()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", input_, " element ", index, " is ", value, ", beyond FP32's range"));
    }
    out_[index] = static_cast<float>(value);
    return absl::OkStatus();
  }

 private:
  const std::string& input_;
  const InputType& type_;
  float* out_;
};

template <typename T>
T LoadRaw(const char* bytes, size_t index) {
  T value;
  std::memcpy(&value, bytes + index * sizeof(T), sizeof(T));
  return value;
}

// Raw little-endian elements of `type` into `features`.
absl::Status ConvertRaw(const std::string& bytes, const InputType& type, size_t count,
                        FeatureWriter& writer, float* features) {
  const char* data = bytes.data();
  const std::string name = type.name;
  if (name == "FP32") {
    if (count > 0) std::memcpy(features, data, count * sizeof(float));
    return absl::OkStatus();
  }
  for (size_t i = 0; i < count; ++i) {
    absl::Status status;
    if (name == "FP64") {
      status = writer.Real(LoadRaw<double>(data, i), i);
    } else if (name == "FP16") {
      features[i] = HalfToFloat(LoadRaw<uint16_t>(data, i));
    } else if (name == "BF16") {
      features[i] = Bfloat16ToFloat(LoadRaw<uint16_t>(data, i));
    } else if (name == "BOOL") {
      status = writer.Integer(LoadRaw<uint8_t>(data, i), i);
    } else if (name == "INT8") {
      status = writer.Integer(LoadRaw<int8_t>(data, i), i);
    } else if (name == "INT16") {
      status = writer.Integer(LoadRaw<int16_t>(data, i), i);
    } else if (name == "INT32") {
      status = writer.Integer(LoadRaw<int32_t>(data, i), i);
    } else if (name == "INT64") {
      status = writer.Integer(static_cast<double>(LoadRaw<int64_t>(data, i)), i);
    } else if (name == "UINT8") {
      status = writer.Integer(LoadRaw<uint8_t>(data, i), i);
    } else if (name == "UINT16") {
      status = writer.Integer(LoadRaw<uint16_t>(data, i), i);
    } else if (name == "UINT32") {
      status = writer.Integer(LoadRaw<uint32_t>(data, i), i);
    } else {  // UINT64
      status = writer.Integer(static_cast<double>(LoadRaw<uint64_t>(data, i)), i);
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

template <typename Field>
absl::Status ConvertTyped(const Field& values, bool integers, FeatureWriter& writer) {
  for (int i = 0; i < values.size(); ++i) {
    const double value = static_cast<double>(values[i]);
    absl::Status status = integers ? writer.Integer(value, i) : writer.Real(value, i);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// The typed contents of `type`, converted; `count` elements expected.
absl::Status ConvertContents(const inference::InferTensorContents& contents,
                             const InputType& type, const std::string& input, size_t count,
                             FeatureWriter& writer) {
  const std::string name = type.name;
  auto expect = [&](int got, const char* field) -> absl::Status {
    if (static_cast<size_t>(got) == count) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", input, " has ", got, " values in ", field, "; its shape needs ", count));
  };
  if (name == "FP32") {
    if (auto s = expect(contents.fp32_contents_size(), "fp32_contents"); !s.ok()) return s;
    return ConvertTyped(contents.fp32_contents(), false, writer);
  }
  if (name == "FP64") {
    if (auto s = expect(contents.fp64_contents_size(), "fp64_contents"); !s.ok()) return s;
    return ConvertTyped(contents.fp64_contents(), false, writer);
  }
  if (name == "BOOL") {
    if (auto s = expect(contents.bool_contents_size(), "bool_contents"); !s.ok()) return s;
    return ConvertTyped(contents.bool_contents(), true, writer);
  }
  if (name == "INT64") {
    if (auto s = expect(contents.int64_contents_size(), "int64_contents"); !s.ok()) return s;
    return ConvertTyped(contents.int64_contents(), true, writer);
  }
  if (name == "UINT64") {
    if (auto s = expect(contents.uint64_contents_size(), "uint64_contents"); !s.ok()) return s;
    return ConvertTyped(contents.uint64_contents(), true, writer);
  }
  if (name == "INT8" || name == "INT16" || name == "INT32") {
    if (auto s = expect(contents.int_contents_size(), "int_contents"); !s.ok()) return s;
    return ConvertTyped(contents.int_contents(), true, writer);
  }
  if (name == "UINT8" || name == "UINT16" || name == "UINT32") {
    if (auto s = expect(contents.uint_contents_size(), "uint_contents"); !s.ok()) return s;
    return ConvertTyped(contents.uint_contents(), true, writer);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "input ", input, " is ", name, ", which has no typed contents: send it raw"));
}

// Values in every typed field: a bound on what a shape may claim.
size_t TypedCount(const inference::InferTensorContents& c) {
  return static_cast<size_t>(c.bool_contents_size()) + c.int_contents_size() +
         c.int64_contents_size() + c.uint_contents_size() + c.uint64_contents_size() +
         c.fp32_contents_size() + c.fp64_contents_size() + c.bytes_contents_size();
}

// Whether the request sends features as inputs of their own, named by the
// model's feature_names: several inputs, a rank-1 one, or text (BYTES).
// Otherwise its one input is the tensor of whole rows.
bool SendsNamedFeatures(const ModelInferRequest& request) {
  if (request.inputs_size() > 1) return true;
  return request.inputs_size() == 1 &&
         (request.inputs(0).shape_size() == 1 || request.inputs(0).datatype() == "BYTES");
}

// The elements of a BYTES input: its bytes_contents, or its raw contents
// as Triton writes them (each a 4-byte little-endian length, then the bytes).
absl::Status ReadTexts(const ModelInferRequest::InferInputTensor& input, const std::string* raw,
                       size_t count, const std::string& name, std::vector<std::string_view>* texts) {
  texts->clear();
  if (raw == nullptr) {
    if (static_cast<size_t>(input.contents().bytes_contents_size()) != count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", name, " has ", input.contents().bytes_contents_size(),
          " values in bytes_contents; its shape needs ", count));
    }
    for (const std::string& text : input.contents().bytes_contents()) texts->push_back(text);
    return absl::OkStatus();
  }
  std::string_view rest = *raw;
  while (!rest.empty()) {
    uint32_t length = 0;
    if (rest.size() < sizeof(length)) break;
    std::memcpy(&length, rest.data(), sizeof(length));
    rest.remove_prefix(sizeof(length));
    if (length > rest.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", name, " element ", texts->size(), " claims ", length, " bytes; ",
          rest.size(), " remain"));
    }
    texts->push_back(rest.substr(0, length));
    rest.remove_prefix(length);
    if (texts->size() > count) break;
  }
  if (texts->size() != count || !rest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the raw contents of input ", name, " are not ", count,
        " length-prefixed strings (a 4-byte little-endian length, then the bytes, each)"));
  }
  return absl::OkStatus();
}

// Inputs named by feature as the rows of `classify`: each input one
// feature's column, [rows] or [rows, 1], a number type or BYTES (a
// category's text; empty is missing), gathered row-major with `columns`
// naming them. The model's checks (unknown, repeated or missing features,
// categories) are the same as for every protocol's named rows.
absl::Status ReadNamedFeatures(const ModelInferRequest& request, v1::ClassifyRequest* classify,
                               TensorInterface* tensors) {
  const int inputs = request.inputs_size();
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != inputs) {
    return absl::InvalidArgumentError(absl::StrCat("raw_input_contents has ",
                                                   request.raw_input_contents_size(),
                                                   " entries for ", inputs, " inputs"));
  }
  // Check every shape and size before allocating anything the size of one.
  int64_t rows = -1;
  bool any_text = false;
  for (int j = 0; j < inputs; ++j) {
    const ModelInferRequest::InferInputTensor& input = request.inputs(j);
    const std::string name = QuoteClientText(input.name());
    if (input.shape_size() < 1 || input.shape_size() > 2 || input.shape(0) < 0 ||
        (input.shape_size() == 2 && input.shape(1) != 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", name, " has shape [", absl::StrJoin(input.shape(), ", "),
          "]; a feature sent by name is [rows] or [rows, 1], the tensor of whole rows the "
          "only input"));
    }
    if (rows >= 0 && input.shape(0) != rows) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", name, " has ", input.shape(0), " rows; input ",
          QuoteClientText(request.inputs(0).name()), " has ", rows));
    }
    rows = input.shape(0);
    if (rows > std::numeric_limits<uint32_t>::max()) {
      return absl::InvalidArgumentError(absl::StrCat("input ", name, " has too many rows"));
    }
    if (raw && input.has_contents()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input ", name, " has both contents and raw_input_contents"));
    }
    const size_t count = static_cast<size_t>(rows);
    if (input.datatype() == "BYTES") {
      any_text = true;
      // Each element takes at least its 4-byte length raw, a tag typed.
      const size_t held = raw ? request.raw_input_contents(j).size() / 4
                              : static_cast<size_t>(input.contents().bytes_contents_size());
      if (count > held) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input ", name, " has shape [", rows, "] but its contents hold fewer values"));
      }
      continue;
    }
    const InputType* type = FindInputType(input.datatype());
    if (type == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", name, " is ", QuoteClientText(input.datatype()), "; features may be ",
          InputTypeNames(), " or BYTES"));
    }
    if (raw ? request.raw_input_contents(j).size() != count * type->bytes
            : count > TypedCount(input.contents())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", name, " has shape [", rows, "] of ", type->name,
          " but its contents hold another number of values"));
    }
  }
  const size_t count = static_cast<size_t>(rows);
  const size_t width = static_cast<size_t>(inputs);
  classify->set_rows(static_cast<uint32_t>(count));
  classify->mutable_features()->Resize(static_cast<int>(count * width), 0.0f);
  float* features = classify->mutable_features()->mutable_data();
  if (any_text) {
    classify->mutable_categories()->Reserve(static_cast<int>(count * width));
    for (size_t i = 0; i < count * width; ++i) classify->add_categories();
  }
  std::vector<float> column(count);
  std::vector<std::string_view> texts;
  for (int j = 0; j < inputs; ++j) {
    const ModelInferRequest::InferInputTensor& input = request.inputs(j);
    const std::string name = QuoteClientText(input.name());
    *classify->add_columns() = input.name();
    if (input.datatype() == "BYTES") {
      if (absl::Status s = ReadTexts(input, raw ? &request.raw_input_contents(j) : nullptr, count,
                                     name, &texts);
          !s.ok()) {
        return s;
      }
      for (size_t r = 0; r < count; ++r) {
        // A category's number is not read; an empty text is a missing value.
        features[r * width + j] = std::numeric_limits<float>::quiet_NaN();
        classify->mutable_categories(static_cast<int>(r * width + j))->assign(texts[r]);
      }
      continue;
    }
    const InputType& type = *FindInputType(input.datatype());
    FeatureWriter writer(name, type, column.data());
    absl::Status converted =
        raw ? ConvertRaw(request.raw_input_contents(j), type, count, writer, column.data())
            : ConvertContents(input.contents(), type, name, count, writer);
    if (!converted.ok()) return converted;
    for (size_t r = 0; r < count; ++r) features[r * width + j] = column[r];
  }
  tensors->named_features = true;
  return absl::OkStatus();
}

// The request's one input tensor as the rows of `classify`, and what it
// declares in `tensors`; or its features by name.
absl::Status ReadInput(const ModelInferRequest& request, v1::ClassifyRequest* classify,
                       TensorInterface* tensors) {
  if (SendsNamedFeatures(request)) return ReadNamedFeatures(request, classify, tensors);
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a seqserve model takes one input tensor of whole rows, or its features as inputs "
        "named by feature; the request has ", request.inputs_size(), " inputs"));
  }
  const ModelInferRequest::InferInputTensor& input = request.inputs(0);
  const std::string name = QuoteClientText(input.name());
  if (input.shape_size() != 2 || input.shape(0) < 0 || input.shape(1) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", name, " has shape [", absl::StrJoin(input.shape(), ", "),
        "]; send [rows, features per row]"));
  }
  const InputType* type = FindInputType(input.datatype());
  if (type == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", name, " is ", QuoteClientText(input.datatype()),
        "; features may be ", InputTypeNames()));
  }
  const int64_t rows = input.shape(0);
  const int64_t columns = input.shape(1);
  if (rows > std::numeric_limits<uint32_t>::max() ||
      columns > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("input ", name, " has too many rows or columns"));
  }
  const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(columns);
  if (request.raw_input_contents_size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", request.raw_input_contents_size(),
        " entries for one input"));
  }
  const bool raw = request.raw_input_contents_size() == 1;
  // Check sizes before allocating anything the size of the shape.
  if (raw) {
    const std::string& bytes = request.raw_input_contents(0);
    if (count > std::numeric_limits<size_t>::max() / type->bytes ||
        bytes.size() != count * type->bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", name, " has ", bytes.size(), " raw bytes; shape [", rows, ", ", columns,
          "] of ", type->name, " needs ", count, " x ", type->bytes));
    }
    if (input.has_contents()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input ", name, " has both contents and raw_input_contents"));
    }
  } else if (count > TypedCount(input.contents())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", name, " has shape [", rows, ", ", columns, "] but its contents hold ",
        TypedCount(input.contents()), " values"));
  }
  tensors->input_name = input.name();
  tensors->input_columns = columns;
  classify->set_rows(static_cast<uint32_t>(rows));
  classify->mutable_features()->Resize(static_cast<int>(count), 0.0f);
  float* features = classify->mutable_features()->mutable_data();
  FeatureWriter writer(name, *type, features);
  return raw ? ConvertRaw(request.raw_input_contents(0), *type, count, writer, features)
             : ConvertContents(input.contents(), *type, name, count, writer);
}

// A boolean parameter; absent is false.
absl::StatusOr<bool> BoolParameter(const google::protobuf::Map<std::string, InferParameter>& map,
                                   const char* key) {
  auto it = map.find(key);
  if (it == map.end()) return false;
  if (it->second.parameter_choice_case() != InferParameter::kBoolParam) {
    return absl::InvalidArgumentError(absl::StrCat("parameter \"", key, "\" must be a boolean"));
  }
  return it->second.bool_param();
}

// A string parameter of at most `max_bytes`; empty when absent.
absl::StatusOr<std::string> StringParameter(
    const google::protobuf::Map<std::string, InferParameter>& map, const char* key,
    size_t max_bytes) {
  auto it = map.find(key);
  if (it == map.end()) return std::string();
  if (it->second.parameter_choice_case() != InferParameter::kStringParam) {
    return absl::InvalidArgumentError(absl::StrCat("parameter \"", key, "\" must be a string"));
  }
  if (it->second.string_param().size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter \"", key, "\" is over ", max_bytes, " bytes"));
  }
  return it->second.string_param();
}

// An integer parameter that must lie in 1..`max`; 0 when absent. Any other
// value or type is INVALID_ARGUMENT: parameter "KEY" must be a positive
// integer, then `unit`.
absl::StatusOr<int64_t> PositiveIntParameter(
    const google::protobuf::Map<std::string, InferParameter>& map, const char* key,
    int64_t max, absl::string_view unit = "") {
  auto it = map.find(key);
  if (it == map.end()) return 0;
  const InferParameter& value = it->second;
  int64_t number = -1;
  if (value.parameter_choice_case() == InferParameter::kInt64Param) {
    number = value.int64_param();
  } else if (value.parameter_choice_case() == InferParameter::kUint64Param &&
             value.uint64_param() <= static_cast<uint64_t>(max)) {
    number = static_cast<int64_t>(value.uint64_param());
  }
  if (number <= 0 || number > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter \"", key, "\" must be a positive integer", unit));
  }
  return number;
}

// The request parameter "timeout", as Triton reads it: microseconds the
// request may take before it is answered DEADLINE_EXCEEDED (a gRPC
// deadline, when shorter, still wins); absent is no limit of its own.
absl::StatusOr<absl::Duration> TimeoutParameter(
    const google::protobuf::Map<std::string, InferParameter>& map) {
  auto micros = PositiveIntParameter(map, "timeout", std::numeric_limits<int64_t>::max(),
                                     " of microseconds");
  if (!micros.ok()) return micros.status();
  return *micros == 0 ? absl::InfiniteDuration() : absl::Microseconds(*micros);
}

// The request's "explain*" parameters into `explain`; the method is
// "explain", else integrated gradients (the output was named).
absl::Status ReadExplainParameters(
    const google::protobuf::Map<std::string, InferParameter>& map, v1::ExplainRequest* explain) {
  auto method = StringParameter(map, "explain", kMaxExplainNameBytes);
  if (!method.ok()) return method.status();
  if (!method->empty()) {
    auto parsed = ParseAttributionMethodName(*method);
    if (!parsed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter \"explain\" names no method: ", QuoteClientText(*method),
          "; saliency, input_x_gradient, integrated_gradients or shapley"));
    }
    explain->set_method(*parsed);
  }
  auto rule = StringParameter(map, "explain_rule", kMaxExplainNameBytes);
  if (!rule.ok()) return rule.status();
  if (!rule->empty()) {
    auto parsed = ParseIntegrationRuleName(*rule);
    if (!parsed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter \"explain_rule\" names no rule: ", QuoteClientText(*rule),
          "; gausslegendre, riemann_left, riemann_right, riemann_middle or riemann_trapezoid"));
    }
    explain->set_rule(*parsed);
  }
  auto output = StringParameter(map, "explain_output", kMaxExplainNameBytes);
  if (!output.ok()) return output.status();
  if (!output->empty()) {
    auto parsed = ParseOutputMode(*output);
    if (!parsed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter \"explain_output\" names no output: ", QuoteClientText(*output), "; ",
          OutputModeNames()));
    }
    explain->set_output(*parsed);
  }
  auto steps = PositiveIntParameter(map, "explain_steps", std::numeric_limits<uint32_t>::max());
  if (!steps.ok()) return steps.status();
  explain->set_steps(static_cast<uint32_t>(*steps));
  // The target: a class index, or a label.
  if (auto it = map.find("explain_target"); it != map.end()) {
    const InferParameter& target = it->second;
    if (target.parameter_choice_case() == InferParameter::kStringParam) {
      auto label = StringParameter(map, "explain_target", kMaxClassLabelBytes);
      if (!label.ok()) return label.status();
      explain->set_target_label(*label);
    } else if (target.parameter_choice_case() == InferParameter::kInt64Param &&
               target.int64_param() >= 0 &&
               target.int64_param() <= std::numeric_limits<uint32_t>::max()) {
      explain->set_target_index(static_cast<uint32_t>(target.int64_param()));
    } else if (target.parameter_choice_case() == InferParameter::kUint64Param &&
               target.uint64_param() <= std::numeric_limits<uint32_t>::max()) {
      explain->set_target_index(static_cast<uint32_t>(target.uint64_param()));
    } else {
      return absl::InvalidArgumentError(
          "parameter \"explain_target\" must be a class index or a class label");
    }
  }
  return absl::OkStatus();
}

// The attributions as an FP64 tensor [rows, input width].
void WriteAttributions(const v1::ExplainResponse& explanation, bool raw,
                       ModelInferResponse* response) {
  ModelInferResponse::InferOutputTensor* tensor = response->add_outputs();
  tensor->set_name(kAttributionsOutput);
  tensor->set_datatype("FP64");
  const int rows = explanation.results_size();
  tensor->add_shape(rows);
  tensor->add_shape(explanation.feature_names_size());
  if (raw) {
    std::string* bytes = response->add_raw_output_contents();
    for (const v1::RowExplanation& row : explanation.results()) {
      bytes->append(reinterpret_cast<const char*>(row.attributions().data()),
                    row.attributions_size() * sizeof(double));
    }
    return;
  }
  auto* values = tensor->mutable_contents()->mutable_fp64_contents();
  for (const v1::RowExplanation& row : explanation.results()) {
    values->Add(row.attributions().begin(), row.attributions().end());
  }
}

// The outputs the request names (none: the default), into `outputs` and
// `asked`; sets `raw_asked` from their "binary_data" parameters.
absl::Status ReadOutputs(const ModelInferRequest& request, std::vector<OutputRequest>* outputs,
                         std::vector<V2Call::AskedOutput>* asked, bool* raw_asked,
                         bool* attributions_asked) {
  if (request.outputs_size() == 0) {
    outputs->push_back(OutputRequest{});
    asked->push_back(V2Call::AskedOutput{});
    return absl::OkStatus();
  }
  for (const auto& output : request.outputs()) {
    if (output.name().empty()) return absl::InvalidArgumentError("an output has no name");
    if (output.name() == kAttributionsOutput) {
      if (*attributions_asked) {
        return absl::InvalidArgumentError("output \"attributions\" is asked for twice");
      }
      *attributions_asked = true;
      auto binary = BoolParameter(output.parameters(), "binary_data");
      if (!binary.ok()) return binary.status();
      *raw_asked = *raw_asked || *binary;
      continue;
    }
    for (const V2Call::AskedOutput& earlier : *asked) {  // a handful: no set needed
      if (earlier.name == output.name()) {
        return absl::InvalidArgumentError(
            absl::StrCat("output ", QuoteClientText(output.name()), " is asked for twice"));
      }
    }
    OutputRequest plan;
    V2Call::AskedOutput answer;
    answer.name = output.name();
    // A head's name, in either spelling ("softmax", "OUTPUT_MODE_SOFTMAX").
    if (auto mode = ParseOutputMode(output.name()); mode && *mode != v1::OUTPUT_MODE_DEFAULT) {
      plan.output = *mode;
    } else {
      plan.tensor_name = output.name();
    }
    auto binary = BoolParameter(output.parameters(), "binary_data");
    if (!binary.ok()) return binary.status();
    *raw_asked = *raw_asked || *binary;
    auto classes = PositiveIntParameter(output.parameters(), "classification",
                                        std::numeric_limits<uint32_t>::max());
    if (!classes.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output ", QuoteClientText(output.name()), ": ", classes.status().message()));
    }
    if (*classes > 0) {
      plan.top_k = static_cast<uint32_t>(*classes);
      answer.classification = true;
    }
    outputs->push_back(std::move(plan));
    asked->push_back(std::move(answer));
  }
  return absl::OkStatus();
}

void AppendRawString(const std::string& value, std::string* raw) {
  const uint32_t size = static_cast<uint32_t>(value.size());
  raw->append(reinterpret_cast<const char*>(&size), sizeof(size));
  raw->append(value);
}

// One answer of the pass as an output tensor.
void WriteOutput(const V2Call::AskedOutput& asked, const std::string& default_name,
                 const v1::ClassifyResponse& answer, bool raw, ModelInferResponse* response) {
  ModelInferResponse::InferOutputTensor* tensor = response->add_outputs();
  tensor->set_name(asked.name.empty() ? default_name : asked.name);
  const int rows = answer.results_size();
  std::string* bytes = raw ? response->add_raw_output_contents() : nullptr;
  if (asked.classification) {
    const int k = rows > 0 ? answer.results(0).top_k_size() : 0;
    tensor->set_datatype("BYTES");
    tensor->add_shape(rows);
    tensor->add_shape(k);
    for (const v1::RowResult& row : answer.results()) {
      for (const v1::ScoredClass& top : row.top_k()) {
        std::string text = absl::StrCat(FormatFloat(top.score()), ":", top.index());
        if (!top.label().empty()) absl::StrAppend(&text, ":", top.label());
        if (raw) {
          AppendRawString(text, bytes);
        } else {
          tensor->mutable_contents()->add_bytes_contents(std::move(text));
        }
      }
    }
    return;
  }
  const int width = rows > 0 ? answer.results(0).scores_size() : 0;
  tensor->set_datatype("FP32");
  tensor->add_shape(rows);
  tensor->add_shape(width);
  if (raw) {
    bytes->reserve(static_cast<size_t>(rows) * width * sizeof(float));
    for (const v1::RowResult& row : answer.results()) {
      bytes->append(reinterpret_cast<const char*>(row.scores().data()),
                    row.scores_size() * sizeof(float));
    }
  } else {
    auto* values = tensor->mutable_contents()->mutable_fp32_contents();
    values->Reserve(rows * width);
    for (const v1::RowResult& row : answer.results()) {
      values->Add(row.scores().begin(), row.scores().end());
    }
  }
}


}  // namespace

absl::StatusOr<int64_t> ParseV2Version(const std::string& version) {
  if (version.empty()) return 0;
  int64_t number = 0;
  if (!absl::SimpleAtoi(version, &number) || number <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "version must be a positive integer or empty, got ", QuoteClientText(version)));
  }
  return number;
}

const std::vector<std::string>& OpenInference::Extensions() {
  static const std::vector<std::string> extensions = {"classification", "binary_tensor_data",
                                                      "model_repository"};
  return extensions;
}

OpenInference::OpenInference(InferenceService* inference, std::function<bool()> server_ready)
    : inference_(inference), server_ready_(std::move(server_ready)) {}

bool OpenInference::ServerReady() const { return server_ready_(); }

absl::Status OpenInference::ModelReady(const std::string& name,
                                       const std::string& version) const {
  auto number = ParseV2Version(version);
  if (!number.ok()) return number.status();
  return inference_->ModelReady(name, *number);
}

void OpenInference::ServerMetadata(inference::ServerMetadataResponse* response) const {
  response->set_name("seqserve");
  response->set_version(SEQSERVE_VERSION);
  for (const std::string& extension : Extensions()) response->add_extensions(extension);
}

absl::Status OpenInference::ModelMetadata(const inference::ModelMetadataRequest& request,
                                          const CallInfo& call,
                                          inference::ModelMetadataResponse* response) {
  auto version = ParseV2Version(request.version());
  if (!version.ok()) return inference_->Refuse(call, version.status());
  v1::GetModelMetadataRequest describe;
  describe.set_model(request.name());
  describe.set_version(*version);
  v1::GetModelMetadataResponse metadata;
  if (absl::Status status = inference_->DescribeModel(describe, call, &metadata);
      !status.ok()) {
    return status;
  }
  response->set_name(metadata.model());
  for (const v1::VersionStatus& entry : metadata.versions()) {
    if (entry.state() == v1::MODEL_STATE_AVAILABLE) {
      response->add_versions(absl::StrCat(entry.version()));
    }
  }
  response->set_platform(kPlatform);
  if (metadata.preprocessing_size() > 0 && !metadata.feature_names().empty()) {
    // A preprocessed model is called by feature, a categorical one as text
    // (the tensor of whole rows is still taken when every feature is a number).
    for (const std::string& feature : metadata.feature_names()) {
      const bool categorical = std::any_of(
          metadata.preprocessing().begin(), metadata.preprocessing().end(),
          [&](const v1::FeatureTransform& t) { return t.feature() == feature && t.has_one_hot(); });
      auto* input = response->add_inputs();
      input->set_name(feature);
      input->set_datatype(categorical ? "BYTES" : "FP32");
      input->add_shape(-1);
    }
  } else {
    auto* input = response->add_inputs();
    input->set_name(metadata.input_tensor());
    input->set_datatype("FP32");
    input->add_shape(-1);
    input->add_shape(metadata.input_width());
  }
  for (const std::string& name :
       TensorOutputNames(static_cast<int>(metadata.output_width()), metadata.output_tensor())) {
    auto* output = response->add_outputs();
    output->set_name(name);
    output->set_datatype("FP32");
    output->add_shape(-1);
    output->add_shape(metadata.output_width());
  }
  return absl::OkStatus();
}

absl::Status V2Call::Read(const ModelInferRequest& request, OpenInference::RawOutput raw) {
  auto version = ParseV2Version(request.model_version());
  if (!version.ok()) return version.status();
  if (request.model_name().empty()) return absl::InvalidArgumentError("model_name is empty");
  if (absl::Status s = CheckRequestId(request.id(), "id"); !s.ok()) return s;
  bool raw_asked = false;
  bool attributions_asked = false;
  if (absl::Status s = ReadOutputs(request, &outputs, &asked, &raw_asked, &attributions_asked);
      !s.ok()) {
    return s;
  }
  auto binary = BoolParameter(request.parameters(), "binary_data_output");
  if (!binary.ok()) return binary.status();
  auto request_timeout = TimeoutParameter(request.parameters());
  if (!request_timeout.ok()) return request_timeout.status();
  timeout = *request_timeout;
  // A version by its label, as seqserve.v1's version_label.
  auto label = StringParameter(request.parameters(), "version_label", kMaxVersionLabelBytes);
  if (!label.ok()) return label.status();
  if (!label->empty() && *version != 0) {
    return absl::InvalidArgumentError(
        "give a model version or the parameter \"version_label\", not both");
  }
  if (absl::Status s = ReadInput(request, &classify, &tensors); !s.ok()) return s;
  raw_output = raw_asked || *binary ||
               (raw == OpenInference::RawOutput::kWhenAskedOrInputRaw &&
                request.raw_input_contents_size() > 0);
  classify.set_model(request.model_name());
  classify.set_version(*version);
  classify.set_version_label(*label);
  if (attributions_asked || request.parameters().count("explain") > 0) {
    if (tensors.named_features) {
      return absl::InvalidArgumentError(
          "an explanation takes the tensor of whole rows, not features by name");
    }
    explain.emplace();
    if (absl::Status s = ReadExplainParameters(request.parameters(), &*explain); !s.ok()) {
      return s;
    }
    explain->set_model(classify.model());
    explain->set_version(classify.version());
    explain->set_version_label(classify.version_label());
    *explain->mutable_features() = classify.features();
    explain->set_rows(classify.rows());
  }
  return absl::OkStatus();
}

void V2Call::WriteAnswer(const ModelInferRequest& request, ModelInferResponse* response) const {
  response->set_model_name(request.model_name());
  if (!answers.empty()) response->set_model_version(absl::StrCat(answers.front().version()));
  response->set_id(request.id());
  for (size_t i = 0; i < asked.size() && i < answers.size(); ++i) {
    WriteOutput(asked[i], tensors.output_name, answers[i], raw_output, response);
  }
  if (explain) {
    if (answers.empty()) response->set_model_version(absl::StrCat(explanation.version()));
    WriteAttributions(explanation, raw_output, response);
  }
}

void OpenInference::Infer(const ModelInferRequest& request, CallInfo call, RawOutput raw,
                          ModelInferResponse* response, InferenceService::Done done) {
  auto v2 = std::make_unique<V2Call>();
  if (absl::Status read = v2->Read(request, raw); !read.ok()) {
    return std::move(done)(inference_->Refuse(call, std::move(read)));
  }
  if (v2->timeout != absl::InfiniteDuration()) {
    call.deadline = std::min(call.deadline, absl::Now() + v2->timeout);
  }
  // The protocol's own id routes over the transport's header; the
  // transport's id stays the one echoed and logged.
  call.protocol_request_id = request.id();
  V2Call* state = v2.get();
  if (!state->explain) {
    inference_->ClassifyOutputs(
        state->classify, state->outputs, &state->tensors, std::move(call), &state->answers,
        [v2 = std::move(v2), &request, response,
         done = std::move(done)](absl::Status status) mutable {
          if (status.ok()) v2->WriteAnswer(request, response);
          std::move(done)(std::move(status));
        });
    return;
  }
  // The explanation is an Explain call of its own, checked and run first
  // (its refusals come before any pass); the outputs asked beside it then
  // come from the version that explained.
  CallInfo explain_call = call;
  explain_call.method = "Explain";
  inference_->Explain(
      *state->explain, std::move(explain_call), &state->explanation,
      [this, v2 = std::move(v2), &request, response, call = std::move(call),
       done = std::move(done)](absl::Status status) mutable {
        if (!status.ok() || v2->asked.empty()) {
          if (status.ok()) v2->WriteAnswer(request, response);
          return std::move(done)(std::move(status));
        }
        V2Call* explained = v2.get();
        explained->classify.set_version(explained->explanation.version());
        explained->classify.clear_version_label();
        inference_->ClassifyOutputs(
            explained->classify, explained->outputs, &explained->tensors, std::move(call),
            &explained->answers,
            [v2 = std::move(v2), &request, response,
             done = std::move(done)](absl::Status classified) mutable {
              if (classified.ok()) v2->WriteAnswer(request, response);
              std::move(done)(std::move(classified));
            });
      },
      &state->tensors);
}

}  // namespace seqserve
