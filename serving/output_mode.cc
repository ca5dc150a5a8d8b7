#include "serving/output_mode.h"

namespace seqserve {

std::optional<Head> HeadForOutputMode(v1::OutputMode mode) {
  switch (mode) {
    case v1::OUTPUT_MODE_LOGITS:
      return Head::kLogits;
    case v1::OUTPUT_MODE_SIGMOID:
      return Head::kSigmoid;
    case v1::OUTPUT_MODE_SOFTMAX:
      return Head::kSoftmax;
    case v1::OUTPUT_MODE_LOG_SOFTMAX:
      return Head::kLogSoftmax;
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
    case Head::kLogSoftmax:
      return v1::OUTPUT_MODE_LOG_SOFTMAX;
  }
  return v1::OUTPUT_MODE_LOGITS;
}

}  // namespace seqserve
