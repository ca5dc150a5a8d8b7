// Fuzzes the Classify request path without gRPC: any bytes that parse as a
// ClassifyRequest are planned against three served models (multi-class with
// labels; binary with one label; binary with two labels, its own row limit,
// threshold and a logits default) under the server's default limits and
// under tight ones, run, and shaped into a response, as the RPC handler
// does. Refusals must carry INVALID_ARGUMENT or RESOURCE_EXHAUSTED; answers
// must have a result per row with the scores, classes and top-k the request
// asked for, and be no larger than ResponseBytesBound, which PlanClassify
// held under the message limit. The request's model name goes through
// QuoteClientText, which must give printable ASCII only.
//
// The custom mutator edits parsed requests (rows against features, extreme
// features, output modes, top_k, thresholds, names), since byte mutations
// rarely keep rows x width equal to the feature count.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "fuzz/fuzz_support.h"
#include "seqserve/v1/classifier.pb.h"
#include "seqserve/v1/config.pb.h"
#include "serving/classify.h"
#include "serving/client_text.h"
#include "serving/model_inputs.h"
#include "serving/served_model.h"

namespace seqserve::fuzz {
namespace {

// The server's default limits (server/model_server.h), and tight ones that
// the fuzzer can cross with small inputs.
constexpr RequestLimits kDefaultLimits{4096, uint64_t{256} << 20, uint64_t{16} << 20};
constexpr RequestLimits kTightLimits{64, 1024, 2048};

std::vector<std::shared_ptr<const ServedModel>> MakeFixture() {
  std::vector<std::shared_ptr<const ServedModel>> served;
  {
    v1::ModelConfig config;
    config.add_labels("bird");
    config.add_labels("mammal");
    config.add_labels("reptile");
    config.set_default_output(v1::OUTPUT_MODE_SOFTMAX);
    auto s = MakeServedModel("species", 1, MultiClassModel(), config);
    Require(s.ok(), "species fixture", s.status());
    served.push_back(*s);
  }
  {
    v1::ModelConfig config;
    config.add_labels("mammal");
    auto s = MakeServedModel("mammal", 1, BinaryModel(), config);
    Require(s.ok(), "mammal fixture", s.status());
    served.push_back(*s);
  }
  {
    v1::ModelConfig config;
    config.add_labels("no");
    config.add_labels("yes");
    config.set_default_output(v1::OUTPUT_MODE_LOGITS);
    config.set_threshold(0.7f);
    config.set_max_request_rows(16);
    auto s = MakeServedModel("yes_no", 2, BinaryModel(), config);
    Require(s.ok(), "yes_no fixture", s.status());
    served.push_back(*s);
  }
  return served;
}

const std::vector<std::shared_ptr<const ServedModel>>& Fixture() {
  static const auto* const fixture =
      new std::vector<std::shared_ptr<const ServedModel>>(MakeFixture());
  return *fixture;
}

void Answer(const v1::ClassifyRequest& request, const ServedModel& served,
            const RequestLimits& limits) {
  auto plan = PlanClassify(request, served, limits);
  if (!plan.ok()) {
    Require(absl::IsInvalidArgument(plan.status()) ||
                absl::IsResourceExhausted(plan.status()),
            "PlanClassify refused with an undocumented code", plan.status());
    return;
  }
  const Sequential& model = *served.model;
  const size_t width = model.output_width();
  Require(plan->rows > 0 && plan->rows <= limits.max_rows, "planned rows out of limits");
  const uint64_t bound = ResponseBytesBound(served, *plan);
  Require(bound <= limits.max_response_bytes, "planned an answer over the message limit");
  ModelInputs inputs;
  absl::Status status = PrepareModelInputs(request, plan->rows, served, &inputs);
  if (!status.ok()) {
    Require(absl::IsInvalidArgument(status), "PrepareModelInputs: undocumented code", status);
    return;
  }
  std::vector<float> logits(plan->rows * width);
  status = model.Forward(inputs.values, plan->rows, absl::MakeSpan(logits));
  Require(status.ok(), "Forward failed on a planned request", status);
  v1::ClassifyResponse response;
  status = BuildClassifyResponse(served, *plan, absl::MakeSpan(logits), &response);
  if (!status.ok()) {
    Require(absl::IsInvalidArgument(status), "BuildClassifyResponse: undocumented code",
            status);
    return;
  }
  Require(response.results_size() == static_cast<int>(plan->rows),
          "not one result per row");
  Require(response.ByteSizeLong() <= bound, "the answer is larger than ResponseBytesBound");
  for (const v1::RowResult& result : response.results()) {
    Require(result.scores_size() == static_cast<int>(width), "wrong score count");
    Require(result.predicted_index() < (width == 1 ? 2u : width),
            "predicted index out of range");
    Require(result.top_k_size() == static_cast<int>(plan->top_k), "wrong top_k count");
    for (float score : result.scores()) {
      Require(std::isfinite(score), "a score that is not finite");
      if (plan->head == Head::kLogSoftmax) {
        Require(score <= 0.0f, "a log-probability above 0");
      } else if (plan->head != Head::kLogits) {
        Require(score >= 0.0f && score <= 1.0f, "a probability outside [0, 1]");
      }
    }
  }
}

size_t MutateRequest(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::mt19937 rng(seed);
  v1::ClassifyRequest request;
  if (rng() % 3 == 0 || !request.ParseFromArray(data, static_cast<int>(size))) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  switch (rng() % 9) {
    case 0: {  // rows that match the features for some width
      const int width = 1 + static_cast<int>(rng() % 4);
      request.set_rows(static_cast<uint32_t>(request.features_size() / width));
      break;
    }
    case 1:
      request.set_rows(static_cast<uint32_t>(InterestingInt(rng)));
      break;
    case 2:  // an extreme feature
      if (request.features_size() > 0) {
        request.set_features(static_cast<int>(rng() % request.features_size()),
                             InterestingFloat(rng));
      }
      break;
    case 3: {  // a row more or less, rows kept in step
      if (rng() % 2 && request.features_size() >= 3) {
        request.mutable_features()->Truncate(request.features_size() - 3);
        request.set_rows(request.rows() - 1);
      } else {
        for (int i = 0; i < 3; ++i) request.add_features(InterestingFloat(rng));
        request.set_rows(request.rows() + 1);
      }
      break;
    }
    case 4:  // known, unknown and negative output modes
      request.set_output(static_cast<v1::OutputMode>(static_cast<int>(rng() % 7) - 1));
      break;
    case 5:
      request.set_top_k(rng() % 2 ? static_cast<uint32_t>(rng() % 5)
                                  : static_cast<uint32_t>(InterestingInt(rng)));
      break;
    case 6:
      request.set_threshold(InterestingFloat(rng));
      break;
    case 7: {  // model names: known, empty, long, control and non-ASCII bytes
      static const std::string kNames[] = {"species", "mammal", "", "\x1b[2J",
                                           "\xe2\x80\xae" "evil",
                                           std::string("a\0b", 3)};
      std::string name = kNames[rng() % 6];
      if (rng() % 3 == 0) name.assign(100 + rng() % 200, static_cast<char>(rng()));
      request.set_model(name);
      break;
    }
    default:
      request.set_version(InterestingInt(rng));
      break;
  }
  std::string bytes;
  if (!request.SerializeToString(&bytes) || bytes.size() > max_size) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  std::memcpy(data, bytes.data(), bytes.size());
  return bytes.size();
}

}  // namespace
}  // namespace seqserve::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  seqserve::fuzz::Fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using seqserve::fuzz::Require;
  seqserve::v1::ClassifyRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;

  const std::string quoted = seqserve::QuoteClientText(request.model());
  Require(quoted.size() <= 4 * seqserve::kMaxQuotedClientBytes + 5,
          "quoted client text longer than its bound");
  for (char c : quoted) {
    Require(c >= 0x20 && c <= 0x7e, "quoted client text holds a byte that is not printable ASCII");
  }

  for (const auto& served : seqserve::fuzz::Fixture()) {
    seqserve::fuzz::Answer(request, *served, seqserve::fuzz::kDefaultLimits);
    seqserve::fuzz::Answer(request, *served, seqserve::fuzz::kTightLimits);
  }
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size,
                                          size_t max_size, unsigned int seed) {
  return seqserve::fuzz::MutateRequest(data, size, max_size, seed);
}
