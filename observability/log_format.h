// The server log's line format: text for people, JSON Lines for log
// collectors.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace seqserve {

// "text": [time] [level] message, local time (spdlog's default).
// "json": {"time":"2026-11-27T10:27:54.243197Z","level":"info","message":"..."}
// per line, UTC, the message escaped as a JSON string.
// INVALID_ARGUMENT for any other format.
absl::Status SetLogFormat(absl::string_view format);

}  // namespace seqserve
