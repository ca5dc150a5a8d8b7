#include "frontends/edge/status_message.h"

namespace seqserve {

std::string CappedStatusMessage(const absl::Status& status) {
  std::string message(status.message());
  if (message.size() > kMaxStatusMessageBytes) {
    message.resize(kMaxStatusMessageBytes - 3);
    message += "...";
  }
  return message;
}

}  // namespace seqserve
