// Every gRPC method the server answers, with who may call it, declared
// once. Each handler takes its Access from here, and the admission test
// walks the services the server registers against this table, so a method
// added without an entry fails that test.
#pragma once

#include <vector>

#include "absl/strings/string_view.h"
#include "frontends/edge/access.h"

namespace seqserve {

struct GrpcMethod {
  const char* service;  // full name: "seqserve.v1.Classifier"
  const char* name;     // "Classify"
  Access access;
};

// The table, in no particular order.
const std::vector<GrpcMethod>& GrpcMethods();

// The entry of `service`/`name`; a method missing from the table is
// treated as needing a token (closed unless declared open).
const GrpcMethod& FindGrpcMethod(absl::string_view service, absl::string_view name);

}  // namespace seqserve
