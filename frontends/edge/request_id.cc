#include "frontends/edge/request_id.h"

#include <string>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
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

std::string NewRequestId() {
  thread_local absl::BitGen random;
  const uint64_t high = absl::Uniform<uint64_t>(random), low = absl::Uniform<uint64_t>(random);
  return absl::StrFormat("%016x%016x", high, low);
}

CallIds AssignCallIds(absl::string_view given, absl::string_view traceparent) {
  CallIds ids;
  ids.made = given.empty();
  ids.request_id = ids.made ? NewRequestId() : std::string(given);
  ids.trace_id = TraceIdOf(traceparent);
  return ids;
}

namespace {

bool LowerHex(absl::string_view digits) {
  for (char c : digits) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

bool AllZeros(absl::string_view digits) { return digits.find_first_not_of('0') == digits.npos; }

}  // namespace

std::string TraceIdOf(absl::string_view traceparent) {
  // version(2) - trace id(32) - parent id(16) - flags(2): 55 characters.
  if (traceparent.size() < 55 || traceparent[2] != '-' || traceparent[35] != '-' ||
      traceparent[52] != '-') {
    return "";
  }
  const absl::string_view version = traceparent.substr(0, 2), trace = traceparent.substr(3, 32),
                          parent = traceparent.substr(36, 16), flags = traceparent.substr(53, 2);
  if (!LowerHex(version) || version == "ff" || !LowerHex(trace) || !LowerHex(parent) ||
      !LowerHex(flags) || AllZeros(trace) || AllZeros(parent)) {
    return "";
  }
  // Version 00 has exactly these fields; later ones may add "-..." after.
  if (traceparent.size() > 55 && (version == "00" || traceparent[55] != '-')) return "";
  return std::string(trace);
}

}  // namespace seqserve
