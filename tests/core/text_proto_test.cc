// Config and model text that does not parse says how to fix it.
#include "core/text_proto.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "seqserve/v1/config.pb.h"
#include "seqserve/v1/model.pb.h"

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
                        "Each may also be written in lower case without \"OUTPUT_MODE_\". "
                        "Did you mean OUTPUT_MODE_SOFTMAX?"));
}

// One vocabulary: an enum value in either spelling, the API's name or the
// short one the tools print (default_output: softmax, head: sigmoid).
TEST(TextProto, EnumValuesMayBeWrittenShort) {
  v1::ModelConfig config;
  ASSERT_TRUE(ParseTextProto("default_output: log_softmax", &config).ok());
  EXPECT_EQ(config.default_output(), v1::OUTPUT_MODE_LOG_SOFTMAX);
  // Comments and strings are left alone, whatever they hold.
  ASSERT_TRUE(ParseTextProto("# default_output: logits\n"
                             "labels: ['default_output: softmax', \"x: sigmoid\"]\n"
                             "default_output:softmax threshold: 0.7",
                             &config)
                  .ok());
  EXPECT_EQ(config.default_output(), v1::OUTPUT_MODE_SOFTMAX);
  EXPECT_EQ(config.labels(0), "default_output: softmax");
  EXPECT_EQ(config.labels(1), "x: sigmoid");
  EXPECT_FLOAT_EQ(config.threshold(), 0.7f);
  ASSERT_TRUE(ParseTextProto("default_output: OUTPUT_MODE_SIGMOID", &config).ok());
  EXPECT_EQ(config.default_output(), v1::OUTPUT_MODE_SIGMOID);
  v1::SequentialModel model;
  ASSERT_TRUE(ParseTextProto("input_width: 1 head: sigmoid", &model).ok());
  EXPECT_EQ(model.head(), v1::HEAD_SIGMOID);
  // Only lower case, and only whole names.
  for (const char* text : {"default_output: Softmax", "default_output: soft",
                           "default_output: output_mode_softmax"}) {
    const absl::Status status = ParseTextProto(text, &config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(status.message(), HasSubstr("Unknown enumeration value")) << text;
  }
  // An error after a short value is still the error.
  const absl::Status status = ParseTextProto("default_output: softmax\nlables: 'a'", &config);
  EXPECT_THAT(status.message(), HasSubstr("line 2 column"));
  EXPECT_THAT(status.message(), HasSubstr("Did you mean \"labels\"?"));
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
