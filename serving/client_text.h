// Text a client sent, made safe to put in an error message or a log line.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace seqserve {

// Longest client text quoted in full; longer text is cut and marked.
inline constexpr size_t kMaxQuotedClientBytes = 128;

// `text` in single quotes, with control bytes, quotes, backslashes and
// non-ASCII bytes escaped as C escapes (a NUL or U+202E cannot reach a
// terminal or a log as is), cut to kMaxQuotedClientBytes.
std::string QuoteClientText(absl::string_view text);

// `text` with every byte that is not part of valid UTF-8 written as \xNN:
// a message that quotes names from a model file must still fit a proto3
// string field (ListModels' errors), which must be valid UTF-8.
std::string EscapeInvalidUtf8(absl::string_view text);

// `text` as a JSON string, quotes included, for a log line: ASCII only
// (control and non-ASCII characters as \u escapes, so neither a newline nor
// U+202E reaches a log reader as is; a byte that is not UTF-8 as \ufffd),
// at most `max_bytes` of escaped text between the quotes, cut at a whole
// character and marked "..." when longer.
std::string JsonQuoteClientText(absl::string_view text,
                                size_t max_bytes = kMaxQuotedClientBytes);

}  // namespace seqserve
