// Config and model text that does not parse says how to fix it.
#include "core/text_proto.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "seqserve/v1/config.pb.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;

TEST(TextProto, AnUnknownEnumValueListsTheValidOnes) {
  v1::ModelConfig config;
  const absl::Status status = ParseTextProto("labels: 'a'\ndefault_output: SOFTMAX", &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("line 2 column"));
  EXPECT_THAT(status.message(), HasSubstr("\"SOFTMAX\""));
  EXPECT_THAT(status.message(),
              HasSubstr("Valid values: OUTPUT_MODE_DEFAULT, OUTPUT_MODE_LOGITS, "
                        "OUTPUT_MODE_SIGMOID, OUTPUT_MODE_SOFTMAX, OUTPUT_MODE_LOG_SOFTMAX. "
                        "Did you mean OUTPUT_MODE_SOFTMAX?"));
}

TEST(TextProto, AnUnknownFieldNamesTheNearestOne) {
  v1::ModelConfig config;
  absl::Status status = ParseTextProto("lables: 'a'", &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("no field named \"lables\""));
  EXPECT_THAT(status.message(), HasSubstr("Did you mean \"labels\"?"));
  // Nothing close: the message's fields are listed instead.
  status = ParseTextProto("colour: 3", &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("Its fields: labels, default_output"));
}

TEST(TextProto, NestedFieldsAreExplainedToo) {
  v1::ModelConfig config;
  const absl::Status status =
      ParseTextProto("version_policy { latest { num_version: 2 } }", &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("Did you mean \"num_versions\"?"));
}

}  // namespace
}  // namespace seqserve
