// Parses protobuf text format with the first error's line and column, for
// the native model format and the repository's config files.
#pragma once

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace seqserve {

// INVALID_ARGUMENT "line L column C: ..." on a syntax error.
absl::Status ParseTextProto(absl::string_view text,
                            google::protobuf::Message* message);

}  // namespace seqserve
