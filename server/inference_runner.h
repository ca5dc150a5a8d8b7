// Runs forward passes for the RPC handlers.
//
// Today the calling thread runs the model at once. The call's shape (the
// model, the rows, where the logits go, a completion callback) is what a
// dynamic batcher needs, so one can take this class's place without
// touching the handlers.
#pragma once

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "server/served_model.h"

namespace seqserve {

class InferenceRunner {
 public:
  // Writes rows x output-width logits to `logits`, then calls `done`.
  // `features` and `logits` must stay valid until `done` runs.
  void Run(std::shared_ptr<const ServedModel> served,
           absl::Span<const float> features, size_t rows,
           absl::Span<float> logits,
           absl::AnyInvocable<void(absl::Status) &&> done);
};

}  // namespace seqserve
