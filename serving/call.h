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
  // The caller's id for this request (x-request-id, or the Open Inference
  // Protocol's id), when it gives one: a traffic split routes by it.
  std::string request_id;
  // When the caller stops waiting; InfiniteFuture() when it never does.
  absl::Time deadline = absl::InfiniteFuture();
  // True once the caller gave up; null when the transport cannot tell.
  std::function<bool()> cancelled;
};

}  // namespace seqserve
