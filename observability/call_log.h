// One debug log line per call, whatever its protocol: method, model,
// version, rows, status code and duration. A RequestObserver, so no handler
// logs calls itself; at any level above debug it costs one level check.
#pragma once

#include "serving/request_observer.h"

namespace seqserve {

class CallLog : public RequestObserver {
 public:
  void OnStart(const CallRecord& call) override;
  void OnEnd(const CallRecord& call) override;
};

}  // namespace seqserve
