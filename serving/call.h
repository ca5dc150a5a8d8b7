// What every front end knows about a call before the inference service
// sees it: protocol, method, caller, deadline, and whether the caller gave
// up. The same struct comes from gRPC, REST or any later protocol.
#pragma once

#include <functional>
#include <string>

#include "absl/time/time.h"

namespace seqserve {

// Who is calling, as far as the transport can tell. Front ends fill what
// their protocol carries; the Authenticator decides what is enough, at the
// edge (frontends/edge/access.h), before the inference service is called.
struct CallerCredentials {
  std::string peer;  // "ipv4:127.0.0.1:53412"
  std::string bearer_token;  // from "authorization: Bearer ..."; never logged
  std::string client_certificate_subject;  // with mutual TLS
  // Who the edge found the caller to be, for logs; "" when anonymous.
  std::string name;
};

struct CallInfo {
  std::string protocol;  // "grpc", "http"
  std::string method;  // "Classify", "GetModelMetadata", "ListModels"
  CallerCredentials caller;
  // The call's id: the caller's x-request-id (X-Request-Id) when it gives
  // one, else one the front end made. Echoed (x-request-id) and logged, so
  // that one call can be followed from a proxy's log to this server's.
  std::string request_id;
  bool request_id_made = false;
  // The Open Inference Protocol's own request id, from the request body;
  // it routes a split over the transport's id.
  std::string protocol_request_id;
  // The W3C trace context's trace id (32 hex digits of traceparent); empty
  // when none came or it was malformed. Logged beside the request id.
  std::string trace_id;
  // The caller's own id, the one a traffic split routes by and a shadow
  // samples by; empty when it gave none.
  const std::string& callers_request_id() const {
    static const std::string kNone;
    if (!protocol_request_id.empty()) return protocol_request_id;
    return request_id_made ? kNone : request_id;
  }
  // When the caller stops waiting; InfiniteFuture() when it never does.
  absl::Time deadline = absl::InfiniteFuture();
  // True once the caller gave up; null when the transport cannot tell.
  std::function<bool()> cancelled;
};

}  // namespace seqserve
