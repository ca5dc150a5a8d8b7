// Whether the gRPC port can be had, asked before gRPC is: gRPC reports a
// port in use as a kilobyte of its internal error tree, this as one line.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace seqserve {

// UNAVAILABLE naming `address` ("host:port") and why when a socket cannot
// be bound there (a port in use, a port below 1024 without the right);
// OK for port 0, and for a host it cannot resolve (gRPC says why then).
absl::Status CheckCanListen(const std::string& address);

}  // namespace seqserve
