// A gRPC service's request and response bytes as protobuf messages, for
// services that take raw bytes so that a body which is not the method's
// message is INVALID_ARGUMENT with a message (gRPC's own parse failure
// answers without one).
#pragma once

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/message_allocator.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>
#include <grpcpp/support/server_callback.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "frontends/grpc/grpc_status.h"
#include "spdlog/spdlog.h"

namespace seqserve {

template <typename Message>
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, Message* message) {
  // A stream ended before its one message (or in the middle of it) carries
  // no buffer at all; empty bytes are a valid empty message, this is not.
  if (!bytes.Valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the call carried no ", Message::descriptor()->full_name(),
        ": a unary call sends exactly one message"));
  }
  grpc::ByteBuffer shared(bytes);  // the reader needs a mutable buffer; slices are shared
  grpc::ProtoBufferReader reader(&shared);
  if (!message->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request body is not a valid ", Message::descriptor()->full_name(),
        " (truncated, invalid UTF-8 in a string, or another message)"));
  }
  return absl::OkStatus();
}

template <typename Message>
absl::Status SerializeResponse(const Message& message, grpc::ByteBuffer* bytes) {
  bool own_buffer;
  const grpc::Status status =
      grpc::SerializationTraits<Message>::Serialize(message, bytes, &own_buffer);
  if (!status.ok()) return absl::InternalError(status.error_message());
  return absl::OkStatus();
}

// The end of a unary call whose messages came from a pool (see
// arena_message_pool.h): on success the response becomes the call's bytes;
// then the messages go back to the pool and the reactor finishes. `method`
// names the call in the log and must outlive it (a literal).
template <typename Request, typename Response>
auto FinishPooledCall(grpc::ServerUnaryReactor* reactor,
                      grpc::MessageHolder<Request, Response>* messages,
                      grpc::ByteBuffer* response_bytes, const char* method) {
  return [reactor, messages, response_bytes, method](absl::Status status) {
    if (status.ok()) {
      status = SerializeResponse(*messages->response(), response_bytes);
      if (!status.ok()) spdlog::error("{} answer not sent: {}", method, status.ToString());
    }
    messages->Release();
    reactor->Finish(ToGrpcStatus(status));
  };
}

}  // namespace seqserve
