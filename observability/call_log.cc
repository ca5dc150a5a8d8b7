#include "observability/call_log.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "serving/client_text.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace {

// An error message can carry client bytes as they came (a JSON parser's
// excerpt of the body): cut, with control and non-ASCII bytes as \xNN, so
// it cannot add lines or terminal sequences to the log.
constexpr size_t kMaxLoggedErrorBytes = 1024;

std::string LoggableError(absl::string_view error) {
  std::string out;
  for (const char c : error.substr(0, kMaxLoggedErrorBytes)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(byte, absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  if (error.size() > kMaxLoggedErrorBytes) out += "...";
  return out;
}

}  // namespace

void CallLog::OnStart(const CallRecord&) {}

void CallLog::OnEnd(const CallRecord& call) {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  spdlog::debug("call {} {} model={} version={} rows={} code={} duration_ms={:.3f}{}{}",
                call.protocol, call.method, QuoteClientText(call.model), call.version,
                call.rows, absl::StatusCodeToString(call.code),
                absl::ToDoubleMilliseconds(call.duration), call.error.empty() ? "" : ": ",
                LoggableError(call.error));
}

}  // namespace seqserve
