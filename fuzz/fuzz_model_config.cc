// Fuzzes the repository config: any text either fails to parse as a
// seqserve.v1.ModelConfig, is refused by MakeServedModel with
// INVALID_ARGUMENT, or gives a served model (binary and multi-class) whose
// settings are in range and that answers a one-row Classify request with
// every head, within ResponseBytesBound.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/text_proto.h"
#include "fuzz/fuzz_support.h"
#include "seqserve/v1/classifier.pb.h"
#include "seqserve/v1/config.pb.h"
#include "serving/classify.h"
#include "serving/served_model.h"

namespace seqserve::fuzz {
namespace {

// The server's default limits (server/model_server.h).
constexpr RequestLimits kLimits{4096, uint64_t{256} << 20, uint64_t{16} << 20};

struct Fixture {
  std::shared_ptr<const Sequential> multi_class = MultiClassModel();
  std::shared_ptr<const Sequential> binary = BinaryModel();
};

const Fixture& GetFixture() {
  static const Fixture* const fixture = new Fixture;
  return *fixture;
}

void Exercise(const v1::ModelConfig& config,
              const std::shared_ptr<const Sequential>& model) {
  auto served = MakeServedModel("fuzz", 1, model, config);
  if (!served.ok()) {
    Require(absl::IsInvalidArgument(served.status()),
            "MakeServedModel refused with a code other than INVALID_ARGUMENT",
            served.status());
    return;
  }
  const ServedModel& s = **served;
  const bool binary = model->output_width() == 1;
  Require(s.threshold > 0.0f && s.threshold < 1.0f, "served threshold outside (0, 1)");
  Require(!(binary && (s.default_head == Head::kSoftmax || s.default_head == Head::kLogSoftmax)),
          "a one-output model serves softmax or log-softmax by default");
  Require(s.max_request_rows == config.max_request_rows(),
          "max_request_rows differs from the config");

  // One row with the config's default head, then with each head the model
  // allows, all top-k: the config's labels and threshold in every field of
  // the answer, which must fit ResponseBytesBound.
  std::vector<v1::OutputMode> outputs = {v1::OUTPUT_MODE_DEFAULT, v1::OUTPUT_MODE_LOGITS,
                                         v1::OUTPUT_MODE_SIGMOID};
  if (!binary) {
    outputs.push_back(v1::OUTPUT_MODE_SOFTMAX);
    outputs.push_back(v1::OUTPUT_MODE_LOG_SOFTMAX);
  }
  for (v1::OutputMode output : outputs) {
    v1::ClassifyRequest request;
    request.set_rows(1);
    for (int i = 0; i < model->input_width(); ++i) request.add_features(0.5f);
    request.set_top_k(static_cast<uint32_t>(model->output_width()));
    request.set_output(output);
    auto plan = PlanClassify(request, s, kLimits);
    if (!plan.ok() && absl::IsResourceExhausted(plan.status())) continue;  // long labels
    Require(plan.ok(), "a one-row request was refused", plan.status());
    std::vector<float> logits(plan->rows * model->output_width());
    absl::Status status = model->Forward(
        absl::MakeConstSpan(request.features().data(), request.features_size()),
        plan->rows, absl::MakeSpan(logits));
    Require(status.ok(), "Forward failed", status);
    v1::ClassifyResponse response;
    status = BuildClassifyResponse(s, *plan, absl::MakeSpan(logits), &response);
    Require(status.ok(), "BuildClassifyResponse failed on finite logits", status);
    Require(response.results_size() == 1, "not one result for one row");
    Require(response.ByteSizeLong() <= ResponseBytesBound(s, *plan),
            "the answer is larger than ResponseBytesBound");
  }
}

}  // namespace
}  // namespace seqserve::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  seqserve::fuzz::GetFixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  seqserve::v1::ModelConfig config;
  if (!seqserve::ParseTextProto(
           absl::string_view(reinterpret_cast<const char*>(data), size), &config)
           .ok()) {
    return 0;
  }
  const auto& fixture = seqserve::fuzz::GetFixture();
  seqserve::fuzz::Exercise(config, fixture.multi_class);
  seqserve::fuzz::Exercise(config, fixture.binary);
  return 0;
}
