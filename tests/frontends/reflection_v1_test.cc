// grpc.reflection.v1 answers, without a network: files with their imports
// once per stream, and errors for what does not exist.
#include "frontends/grpc/reflection_v1_service.h"

#include <google/protobuf/descriptor.pb.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace seqserve {
namespace {

namespace v1 = grpc::reflection::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> FileNames(const v1::ServerReflectionResponse& response) {
  std::vector<std::string> names;
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    EXPECT_TRUE(file.ParseFromString(bytes));
    names.push_back(file.name());
  }
  return names;
}

// No tokens configured: the guard admits every caller.
const EdgeGuard kLetEveryoneIn(nullptr);

TEST(ReflectionV1, ListsTheServicesItWasGiven) {
  ReflectionV1Service service({"a.A", "b.B"}, &kLetEveryoneIn);
  v1::ServerReflectionRequest request;
  request.set_list_services("*");
  std::vector<std::string> sent;
  const auto response = service.Answer(request, &sent);
  ASSERT_EQ(response.list_services_response().service_size(), 2);
  EXPECT_EQ(response.list_services_response().service(1).name(), "b.B");
  EXPECT_EQ(response.original_request().list_services(), "*");
}

TEST(ReflectionV1, TheAnswerComesFirstThenImportsOncePerStream) {
  ReflectionV1Service service({}, &kLetEveryoneIn);
  v1::ServerReflectionRequest request;
  // config.proto imports classifier.proto's OutputMode, which imports
  // preprocessing.proto's FeatureTransform (config.proto's too: sent once).
  request.set_file_containing_symbol("seqserve.v1.ModelConfig");
  std::vector<std::string> sent;
  EXPECT_THAT(FileNames(service.Answer(request, &sent)),
              ElementsAre("seqserve/v1/config.proto", "seqserve/v1/classifier.proto",
                          "seqserve/v1/preprocessing.proto"));
  // Asked again on this stream: the answer again, its imports not.
  EXPECT_THAT(FileNames(service.Answer(request, &sent)),
              ElementsAre("seqserve/v1/config.proto"));
  request.set_file_containing_symbol("seqserve.v1.Classifier.Classify");
  EXPECT_THAT(FileNames(service.Answer(request, &sent)),
              ElementsAre("seqserve/v1/classifier.proto"));
}

TEST(ReflectionV1, UnknownNamesAreNotFound) {
  ReflectionV1Service service({}, &kLetEveryoneIn);
  std::vector<std::string> sent;
  v1::ServerReflectionRequest request;
  request.set_file_containing_symbol("no.such.Symbol\n");
  auto response = service.Answer(request, &sent);
  EXPECT_EQ(response.error_response().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(response.error_response().error_message(),
              HasSubstr("symbol 'no.such.Symbol\\n' not found"));
  request.set_file_by_filename("nothing.proto");
  EXPECT_EQ(service.Answer(request, &sent).error_response().error_code(),
            grpc::StatusCode::NOT_FOUND);
  request.mutable_file_containing_extension()->set_containing_type("seqserve.v1.ClassifyRequest");
  request.mutable_file_containing_extension()->set_extension_number(99);
  EXPECT_EQ(service.Answer(request, &sent).error_response().error_code(),
            grpc::StatusCode::NOT_FOUND);
  request.set_all_extension_numbers_of_type("seqserve.v1.ClassifyRequest");
  response = service.Answer(request, &sent);
  EXPECT_EQ(response.all_extension_numbers_response().base_type_name(),
            "seqserve.v1.ClassifyRequest");
  EXPECT_EQ(response.all_extension_numbers_response().extension_number_size(), 0);
  request.Clear();
  EXPECT_EQ(service.Answer(request, &sent).error_response().error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace seqserve
