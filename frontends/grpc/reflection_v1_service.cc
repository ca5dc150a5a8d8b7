#include "frontends/grpc/reflection_v1_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "serving/client_text.h"
#include "frontends/grpc/grpc_caller.h"
#include "frontends/grpc/grpc_methods.h"
#include "frontends/grpc/grpc_status.h"

namespace seqserve {
namespace {

namespace v1 = grpc::reflection::v1;
namespace v1alpha = grpc::reflection::v1alpha;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

void AddProto(const FileDescriptor* file, v1::FileDescriptorResponse* out) {
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  out->add_file_descriptor_proto(proto.SerializeAsString());
}

// What it imports, transitively, each file once per stream.
void AddDependencies(const FileDescriptor* file, std::vector<std::string>* sent,
                     v1::FileDescriptorResponse* out) {
  for (int i = 0; i < file->dependency_count(); ++i) {
    const FileDescriptor* dependency = file->dependency(i);
    if (std::find(sent->begin(), sent->end(), dependency->name()) != sent->end()) continue;
    sent->push_back(dependency->name());
    AddProto(dependency, out);
    AddDependencies(dependency, sent, out);
  }
}

// The requested file first, always (clients read the first as the
// answer, as gRPC's own reflection sends it), then imports not yet sent.
void AddFile(const FileDescriptor* file, std::vector<std::string>* sent,
             v1::FileDescriptorResponse* out) {
  AddProto(file, out);
  if (std::find(sent->begin(), sent->end(), file->name()) == sent->end()) {
    sent->push_back(file->name());
  }
  AddDependencies(file, sent, out);
}

void SetError(grpc::StatusCode code, std::string message, v1::ServerReflectionResponse* out) {
  out->mutable_error_response()->set_error_code(code);
  out->mutable_error_response()->set_error_message(std::move(message));
}

// One stream: read a request, write its answer, until the client is done.
// `Request` and `Response` are v1's or v1alpha's messages: the same bytes.
template <typename Request, typename Response>
class Reactor final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  Reactor(const ReflectionV1Service* service, const absl::Status& admitted)
      : service_(service) {
    if (!admitted.ok()) {
      this->Finish(ToGrpcStatus(admitted));
      return;
    }
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side
      this->Finish(grpc::Status::OK);
      return;
    }
    if constexpr (std::is_same_v<Request, v1::ServerReflectionRequest>) {
      response_ = service_->Answer(request_, &sent_);
    } else {
      v1::ServerReflectionRequest request;
      request.ParseFromString(request_.SerializeAsString());
      response_.ParseFromString(service_->Answer(request, &sent_).SerializeAsString());
    }
    this->StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed"));
      return;
    }
    this->StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  const ReflectionV1Service* service_;
  Request request_;
  Response response_;
  std::vector<std::string> sent_;
};

}  // namespace

ReflectionV1Service::ReflectionV1Service(std::vector<std::string> services,
                                         const EdgeGuard* guard)
    : services_(std::move(services)), guard_(guard) {}

absl::Status ReflectionV1Service::CheckCaller(const grpc::CallbackServerContext& context,
                                              const char* service) const {
  CallerCredentials caller = GrpcCaller(context);
  return guard_->Admit(FindGrpcMethod(service, "ServerReflectionInfo").access, &caller);
}

grpc::ServerBidiReactor<v1::ServerReflectionRequest, v1::ServerReflectionResponse>*
ReflectionV1Service::ServerReflectionInfo(grpc::CallbackServerContext* context) {
  return new Reactor<v1::ServerReflectionRequest, v1::ServerReflectionResponse>(
      this, CheckCaller(*context, v1::ServerReflection::service_full_name()));
}

grpc::ServerBidiReactor<v1alpha::ServerReflectionRequest, v1alpha::ServerReflectionResponse>*
ReflectionV1AlphaService::ServerReflectionInfo(grpc::CallbackServerContext* context) {
  return new Reactor<v1alpha::ServerReflectionRequest, v1alpha::ServerReflectionResponse>(
      v1_, v1_->CheckCaller(*context, v1alpha::ServerReflection::service_full_name()));
}

v1::ServerReflectionResponse ReflectionV1Service::Answer(
    const v1::ServerReflectionRequest& request, std::vector<std::string>* sent) const {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  v1::ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  const FileDescriptor* file = nullptr;
  std::string missing;
  switch (request.message_request_case()) {
    case v1::ServerReflectionRequest::kListServices:
      for (const std::string& name : services_) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      return response;
    case v1::ServerReflectionRequest::kFileByFilename:
      file = pool->FindFileByName(request.file_by_filename());
      missing = absl::StrCat("file ", QuoteClientText(request.file_by_filename()));
      break;
    case v1::ServerReflectionRequest::kFileContainingSymbol:
      file = pool->FindFileContainingSymbol(request.file_containing_symbol());
      missing = absl::StrCat("symbol ", QuoteClientText(request.file_containing_symbol()));
      break;
    case v1::ServerReflectionRequest::kFileContainingExtension: {
      const auto& wanted = request.file_containing_extension();
      const auto* type = pool->FindMessageTypeByName(wanted.containing_type());
      const auto* extension =
          type ? pool->FindExtensionByNumber(type, wanted.extension_number()) : nullptr;
      file = extension ? extension->file() : nullptr;
      missing = absl::StrCat("extension ", wanted.extension_number(), " of ",
                             QuoteClientText(wanted.containing_type()));
      break;
    }
    case v1::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const auto* type = pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND,
                 absl::StrCat("type ", QuoteClientText(request.all_extension_numbers_of_type()),
                              " not found"),
                 &response);
        return response;
      }
      std::vector<const google::protobuf::FieldDescriptor*> extensions;
      pool->FindAllExtensions(type, &extensions);
      auto* numbers = response.mutable_all_extension_numbers_response();
      numbers->set_base_type_name(type->full_name());
      for (const auto* extension : extensions) numbers->add_extension_number(extension->number());
      return response;
    }
    case v1::ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      SetError(grpc::StatusCode::INVALID_ARGUMENT, "the request asks for nothing", &response);
      return response;
  }
  if (file == nullptr) {
    SetError(grpc::StatusCode::NOT_FOUND, absl::StrCat(missing, " not found"), &response);
    return response;
  }
  AddFile(file, sent, response.mutable_file_descriptor_response());
  return response;
}

}  // namespace seqserve
