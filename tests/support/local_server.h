// Starts a ModelServer inside the test process, as the in-process server
// tests need one: on 127.0.0.1 with a free gRPC port (and a free HTTP port
// when `with_http`), returned once its first load has ended. The rest of
// `options` (repository, poll interval, limits) is the caller's.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "server/model_server.h"

namespace seqserve::testing {

inline absl::StatusOr<std::unique_ptr<ModelServer>> StartLocalServer(
    ModelServer::Options options, bool with_http = false) {
  options.address = "127.0.0.1:0";
  if (with_http) options.http_address = "127.0.0.1:0";
  auto server = ModelServer::Start(options);
  if (server.ok()) (*server)->WaitUntilReady();
  return server;
}

}  // namespace seqserve::testing
