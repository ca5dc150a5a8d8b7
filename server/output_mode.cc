#include "server/output_mode.h"

namespace seqserve {

std::optional<Head> HeadForOutputMode(v1::OutputMode mode) {
  switch (mode) {
    case v1::OUTPUT_MODE_LOGITS:
      return Head::kLogits;
    case v1::OUTPUT_MODE_SIGMOID:
      return Head::kSigmoid;
    case v1::OUTPUT_MODE_SOFTMAX:
      return Head::kSoftmax;
    default:
      return std::nullopt;
  }
}

v1::OutputMode OutputModeForHead(Head head) {
  switch (head) {
    case Head::kLogits:
      return v1::OUTPUT_MODE_LOGITS;
    case Head::kSigmoid:
      return v1::OUTPUT_MODE_SIGMOID;
    case Head::kSoftmax:
      return v1::OUTPUT_MODE_SOFTMAX;
  }
  return v1::OUTPUT_MODE_LOGITS;
}

}  // namespace seqserve
