#include "frontends/edge/request_id.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace seqserve {

absl::Status CheckRequestId(absl::string_view id, absl::string_view source) {
  if (id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the request id (", source, ") has ",
                                                   id.size(), " bytes; at most ",
                                                   kMaxRequestIdBytes, " are allowed"));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the request id (%s) has byte 0x%02x at offset %d; only printable ASCII is allowed",
          std::string(source), c, i));
    }
  }
  return absl::OkStatus();
}

}  // namespace seqserve
