// Fuzzes the Open Inference Protocol's translation without a server: the
// input is an HTTP body (JSON, or JSON plus binary tensors after an
// Inference-Header-Content-Length) or a ModelInferRequest's protobuf bytes,
// chosen by its first byte. Whatever parses is read by V2Call (rows,
// outputs, datatypes), planned against served models (three classes with
// labels; one output), run, and written back as v2 tensors and as the HTTP
// JSON answer, as the server does. Refusals must carry INVALID_ARGUMENT or
// RESOURCE_EXHAUSTED (or NOT_FOUND for another model); answers must hold
// one tensor per output asked, of the shape and size they declare (and,
// when "attributions" or the "explain" parameter asks for it, the
// explanation's FP64 tensor last, planned and computed as the Explain call
// the server makes). With bit
// 16 of the first byte the body is one of the model repository extension's
// instead (index, load, unload, by the next bits): it parses or is refused
// INVALID_ARGUMENT, and a load's "config" is read and checked as a load
// would. With bit 32 (HTTP bodies) the model is "pets", whose features
// limbs and coat (one-hot) may come as inputs by name.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_support.h"
#include "serving/classify.h"
#include "frontends/http/v2_json.h"
#include "frontends/v2/model_repository_extension.h"
#include "serving/model_config.h"
#include "serving/model_inputs.h"
#include "serving/served_model.h"
#include "frontends/v2/open_inference.h"
#include "core/attribution.h"
#include "serving/explain.h"

namespace seqserve::fuzz {
namespace {

constexpr RequestLimits kLimits{4096, uint64_t{256} << 20, uint64_t{16} << 20};

std::vector<std::shared_ptr<const ServedModel>> MakeFixture() {
  std::vector<std::shared_ptr<const ServedModel>> served;
  v1::ModelConfig species;
  for (const char* label : {"bird", "mammal", "reptile"}) species.add_labels(label);
  auto s = MakeServedModel("species", 1, MultiClassModel(), species);
  Require(s.ok(), "species fixture", s.status());
  served.push_back(*s);
  v1::ModelConfig mammal;
  mammal.add_labels("mammal");
  auto m = MakeServedModel("mammal", 1, BinaryModel(), mammal);
  Require(m.ok(), "mammal fixture", m.status());
  served.push_back(*m);
  // Features by name through preprocessing: limbs (missing: 4), coat one-hot.
  v1::ModelConfig pets = species;
  pets.add_feature_names("limbs");
  pets.add_feature_names("coat");
  auto* limbs = pets.add_preprocessing();
  limbs->set_feature("limbs");
  limbs->set_missing_value(4);
  auto* coat = pets.add_preprocessing();
  coat->set_feature("coat");
  coat->mutable_one_hot()->add_categories("feathers");
  coat->mutable_one_hot()->add_categories("hair");
  auto p = MakeServedModel("pets", 1, MultiClassModel(), pets);
  Require(p.ok(), "pets fixture", p.status());
  served.push_back(*p);
  return served;
}

const std::vector<std::shared_ptr<const ServedModel>>& Fixture() {
  static const auto* const fixture =
      new std::vector<std::shared_ptr<const ServedModel>>(MakeFixture());
  return *fixture;
}

void RequireRefusal(const absl::Status& status, const char* where) {
  Require(absl::IsInvalidArgument(status) || absl::IsResourceExhausted(status), where, status);
}

// A repository extension body: index (0), load (1) or unload (2).
void FuzzRepositoryBody(int kind, const std::string& body) {
  absl::Status parsed;
  if (kind == 0) {
    inference::RepositoryIndexRequest index;
    parsed = ParseV2RepositoryIndexRequest(body, &index);
  } else if (kind == 1) {
    inference::RepositoryModelLoadRequest load;
    parsed = ParseV2RepositoryModelLoadRequest(body, &load);
    if (parsed.ok()) {
      auto config = ReadLoadParameters(load.parameters());
      if (!config.ok()) {
        parsed = config.status();
      } else if (config->has_value()) {
        const absl::Status checked = CheckModelConfig(**config);
        Require(checked.ok() || absl::IsInvalidArgument(checked), "CheckModelConfig", checked);
      }
    }
  } else {
    inference::RepositoryModelUnloadRequest unload;
    parsed = ParseV2RepositoryModelUnloadRequest(body, &unload);
  }
  Require(parsed.ok() || absl::IsInvalidArgument(parsed), "repository body", parsed);
}

// The tensors of `response` are what they say they are.
void CheckAnswer(const V2Call& call, const inference::ModelInferResponse& response) {
  Require(response.outputs_size() == static_cast<int>(call.asked.size()) + (call.explain ? 1 : 0),
          "one tensor per output");
  Require(!call.raw_output || response.raw_output_contents_size() == response.outputs_size(),
          "one raw entry per tensor");
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& tensor = response.outputs(i);
    Require(tensor.shape_size() == 2, "rank 2 answers");
    const int64_t count = tensor.shape(0) * tensor.shape(1);
    Require(tensor.shape(0) == call.classify.rows(), "a row per input row");
    if (tensor.datatype() == "FP64") {  // the explanation's, after the outputs asked
      Require(call.explain && i + 1 == response.outputs_size() &&
                  tensor.name() == "attributions",
              "FP64 only for the attributions");
      if (call.raw_output) {
        Require(response.raw_output_contents(i).size() == static_cast<size_t>(count) * 8,
                "raw FP64 size");
      } else {
        Require(tensor.contents().fp64_contents_size() == count, "FP64 count");
      }
    } else if (tensor.datatype() == "FP32") {
      if (call.raw_output) {
        Require(response.raw_output_contents(i).size() == static_cast<size_t>(count) * 4,
                "raw FP32 size");
      } else {
        Require(tensor.contents().fp32_contents_size() == count, "FP32 count");
      }
    } else {
      Require(tensor.datatype() == "BYTES" && call.asked[i].classification, "BYTES only for "
              "classification");
      if (!call.raw_output) Require(tensor.contents().bytes_contents_size() == count, "count");
    }
  }
}

}  // namespace
}  // namespace seqserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace seqserve;
  using namespace seqserve::fuzz;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode & 16) {
    FuzzRepositoryBody((mode >> 5) % 3, bytes);
    return 0;
  }
  inference::ModelInferRequest request;
  if (mode & 1) {
    if (!request.ParseFromString(bytes)) return 0;
  } else {
    HttpRequest http;
    http.method = "POST";
    http.body = bytes;
    // Bit 2: a JSON header of the length in the next two bytes.
    if ((mode & 4) && bytes.size() >= 2) {
      const size_t length = static_cast<uint8_t>(bytes[0]) | static_cast<uint8_t>(bytes[1]) << 8;
      http.body = bytes.substr(2);
      http.headers.emplace_back(kInferenceHeaderContentLength, absl::StrCat(length));
    }
    const absl::Status parsed = ParseV2InferRequest(http, &request);
    if (!parsed.ok()) {
      Require(absl::IsInvalidArgument(parsed), "HTTP parse: INVALID_ARGUMENT", parsed);
      return 0;
    }
    request.set_model_name((mode & 32) ? "pets" : (mode & 8) ? "mammal" : "species");
  }
  V2Call call;
  const absl::Status read = call.Read(request, (mode & 2)
                                                   ? OpenInference::RawOutput::kWhenAskedOrInputRaw
                                                   : OpenInference::RawOutput::kWhenAsked);
  if (!read.ok()) {
    RequireRefusal(read, "Read");
    return 0;
  }
  const ServedModel* served = nullptr;
  for (const auto& model : Fixture()) {
    if (model->name == call.classify.model()) served = model.get();
  }
  if (served == nullptr) return 0;  // the manager's NOT_FOUND, not fuzzed here
  if (call.explain) {  // the Explain call the server makes for "attributions"
    auto plan = PlanExplain(*call.explain, *served, kLimits);
    if (!plan.ok()) {
      RequireRefusal(plan.status(), "PlanExplain");
      return 0;
    }
    std::vector<int> targets;
    if (plan->target) targets.assign(plan->rows, *plan->target);
    auto attributions = Attribute(*served->model, call.explain->features(), plan->rows, targets,
                                  plan->options, plan->threshold);
    Require(attributions.ok(), "Attribute on planned rows", attributions.status());
    const absl::Status explained =
        BuildExplainResponse(*served, *plan, *attributions, &call.explanation);
    if (!explained.ok()) {
      RequireRefusal(explained, "BuildExplainResponse");
      return 0;
    }
    if (call.asked.empty()) {
      inference::ModelInferResponse response;
      call.WriteAnswer(request, &response);
      CheckAnswer(call, response);
      return 0;
    }
  }
  auto plans = PlanOutputs(call.classify, call.outputs, &call.tensors, *served, kLimits);
  if (!plans.ok()) {
    RequireRefusal(plans.status(), "PlanOutputs");
    return 0;
  }
  ModelInputs inputs;  // the rows as the model reads them, as the server prepares them
  const absl::Status prepared =
      PrepareModelInputs(call.classify, plans->front().rows, *served, &inputs);
  if (!prepared.ok()) {
    RequireRefusal(prepared, "PrepareModelInputs");
    return 0;
  }
  std::vector<float> logits(plans->front().rows * served->model->output_width());
  Require(served->model->Forward(inputs.values, plans->front().rows, absl::MakeSpan(logits)).ok(),
          "Forward on planned rows");
  call.answers.resize(plans->size());
  std::vector<v1::ClassifyResponse*> targets;
  for (auto& answer : call.answers) targets.push_back(&answer);
  const absl::Status built =
      BuildClassifyResponses(*served, *plans, absl::MakeSpan(logits), targets);
  if (!built.ok()) {
    RequireRefusal(built, "BuildClassifyResponses");
    return 0;
  }
  inference::ModelInferResponse response;
  call.WriteAnswer(request, &response);
  CheckAnswer(call, response);
  const HttpResponse http = V2InferResponse(response);
  Require(http.status == 200 && !http.body.empty(), "HTTP answer");
  return 0;
}
