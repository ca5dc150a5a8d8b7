// A streaming check of a JSON body before any tree is built from it.
//
// A parser that builds a tree (nlohmann::json::parse, protobuf's
// JsonStringToMessage) spends memory per nesting level and per value before
// a single field is looked at: 8 MiB of `[` cost gigabytes. This walks the
// bytes with a SAX handler that only counts, so it holds O(depth) memory and
// stops at the first byte past a limit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace seqserve {

// Deeper than this is no request of any protocol we speak: a REST classify
// request is 3 levels deep, a v2 tensor's nested data one per dimension.
inline constexpr int kMaxJsonDepth = 32;

// Values (numbers, strings, booleans, nulls, arrays, objects, and object
// keys, which cost a map entry each) in one body. A valid body spends at
// least 2 bytes on a value ("0," - one-hot features are sent that way), so
// a body under the default --max_message_bytes (16 MiB) holds at most 8 Mi
// of them: this cap refuses no request the default limits admit, and when
// --max_message_bytes is raised (up to 2 GiB) it still keeps a tree built
// afterwards to 8 Mi values instead of growing with the body.
inline constexpr uint64_t kMaxJsonValues = (uint64_t{16} << 20) / 2;

struct JsonLimits {
  int max_depth = kMaxJsonDepth;
  uint64_t max_values = kMaxJsonValues;
};

// OK when `body` is one well-formed JSON text within `limits`; otherwise
// INVALID_ARGUMENT "<context>: <reason>", the reason one of "JSON nested
// deeper than 32 levels", "JSON has more than N values", "JSON ends before
// it is complete" or "JSON syntax error at byte N". `context` is the
// caller's words for a body it cannot read, so its protocol's message stays
// the same whichever parser refused. A syntax error is refused here too,
// not left to the parser that follows: that parser may accept what this one
// stops at (protobuf's takes single-quoted strings) and go on to build what
// was never checked. No byte of the body is quoted.
absl::Status CheckJsonLimits(absl::string_view body, absl::string_view context,
                             const JsonLimits& limits = {});

}  // namespace seqserve
