#include "serving/client_text.h"

#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace seqserve {

std::string QuoteClientText(absl::string_view text) {
  const bool cut = text.size() > kMaxQuotedClientBytes;
  return absl::StrCat("'", absl::CHexEscape(text.substr(0, kMaxQuotedClientBytes)),
                      cut ? "'..." : "'");
}

namespace {

// The valid UTF-8 sequence at the start of `text`: its length (0 when
// there is none) and its code point.
struct Utf8Char {
  size_t length = 0;
  uint32_t code = 0;
};

Utf8Char DecodeUtf8(absl::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char first = byte(0);
  size_t length;
  uint32_t code;
  if (first < 0x80) return {1, first};
  if (first >= 0xc2 && first <= 0xdf) {
    length = 2;
    code = first & 0x1f;
  } else if (first >= 0xe0 && first <= 0xef) {
    length = 3;
    code = first & 0x0f;
  } else if (first >= 0xf0 && first <= 0xf4) {
    length = 4;
    code = first & 0x07;
  } else {
    return {};
  }
  if (text.size() < length) return {};
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return {};
    code = (code << 6) | (byte(i) & 0x3f);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < smallest[length] || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) {
    return {};
  }
  return {length, code};
}

void AppendUnicodeEscape(uint32_t unit, std::string* out) {
  absl::StrAppend(out, "\\u", absl::Hex(unit, absl::kZeroPad4));
}

}  // namespace

std::string EscapeInvalidUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t length = DecodeUtf8(text).length;
    if (length == 0) {
      absl::StrAppend(&out, "\\x", absl::Hex(static_cast<unsigned char>(text[0]),
                                              absl::kZeroPad2));
      text.remove_prefix(1);
    } else {
      out.append(text.data(), length);
      text.remove_prefix(length);
    }
  }
  return out;
}

std::string JsonQuoteClientText(absl::string_view text, size_t max_bytes) {
  std::string out = "\"";
  size_t written = 0;
  std::string piece;
  while (!text.empty()) {
    const Utf8Char c = DecodeUtf8(text);
    piece.clear();
    if (c.length == 0) {
      piece = "\\ufffd";  // what a JSON reader shows for a byte that is not UTF-8
    } else if (c.code == '"' || c.code == '\\') {
      piece = {'\\', static_cast<char>(c.code)};
    } else if (c.code < 0x20 || c.code == 0x7f) {
      AppendUnicodeEscape(c.code, &piece);
    } else if (c.code < 0x80) {
      piece = static_cast<char>(c.code);
    } else if (c.code < 0x10000) {
      AppendUnicodeEscape(c.code, &piece);
    } else {  // a surrogate pair
      AppendUnicodeEscape(0xd800 + ((c.code - 0x10000) >> 10), &piece);
      AppendUnicodeEscape(0xdc00 + ((c.code - 0x10000) & 0x3ff), &piece);
    }
    if (written + piece.size() > max_bytes) {
      out += "...";
      break;
    }
    out += piece;
    written += piece.size();
    text.remove_prefix(c.length == 0 ? 1 : c.length);
  }
  out += '"';
  return out;
}

}  // namespace seqserve
