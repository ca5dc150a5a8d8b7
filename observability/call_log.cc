#include "observability/call_log.h"

#include "absl/status/status.h"
#include "serving/client_text.h"
#include "spdlog/spdlog.h"

namespace seqserve {

void CallLog::OnStart(const CallRecord&) {}

void CallLog::OnEnd(const CallRecord& call) {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  spdlog::debug("call {} {} model={} version={} rows={} code={} duration_ms={:.3f}{}{}",
                call.protocol, call.method, QuoteClientText(call.model), call.version,
                call.rows, absl::StatusCodeToString(call.code),
                absl::ToDoubleMilliseconds(call.duration), call.error.empty() ? "" : ": ",
                call.error);
}

}  // namespace seqserve
