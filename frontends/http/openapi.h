// The OpenAPI 3 document of the HTTP endpoints, generated from the route
// table the server dispatches with (RestApi::Routes()) and the protobuf
// descriptors of the messages each route takes and returns, so the
// document cannot drift from what is served.
#pragma once

#include <string>
#include <vector>

#include "frontends/http/rest_api.h"

namespace seqserve {

// `routes` as an OpenAPI 3.0.3 JSON document; `version` is the server's.
std::string OpenApiDocument(const std::vector<RestApi::Route>& routes,
                            const std::string& version);

}  // namespace seqserve
