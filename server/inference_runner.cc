#include "server/inference_runner.h"

#include <utility>

namespace seqserve {

void InferenceRunner::Run(std::shared_ptr<const ServedModel> served,
                          absl::Span<const float> features, size_t rows,
                          absl::Span<float> logits,
                          absl::AnyInvocable<void(absl::Status) &&> done) {
  absl::Status status = served->model->Forward(features, rows, logits);
  std::move(done)(std::move(status));
}

}  // namespace seqserve
