// Corrupted and truncated copies of valid model files must load with an
// error or succeed, never crash. Run under the asan preset to catch memory
// errors the plain build would miss.
#include <gtest/gtest.h>

#include <random>

#include "core/onnx_loader.h"
#include "core/text_loader.h"
#include "tests/support/onnx_builder.h"

namespace seqserve {
namespace {

constexpr int kCopiesPerModel = 2500;

std::string Corrupt(const std::string& original, std::mt19937& rng) {
  std::string bytes = original;
  switch (rng() % 4) {
    case 0:  // flip a few bytes
      for (int i = 0, n = 1 + rng() % 8; i < n; ++i) {
        bytes[rng() % bytes.size()] = static_cast<char>(rng());
      }
      break;
    case 1:  // truncate
      bytes.resize(rng() % bytes.size());
      break;
    case 2: {  // insert random bytes
      std::string noise(1 + rng() % 16, '\0');
      for (char& c : noise) c = static_cast<char>(rng());
      bytes.insert(rng() % bytes.size(), noise);
      break;
    }
    default: {  // duplicate a slice elsewhere
      const size_t from = rng() % bytes.size();
      const size_t length = 1 + rng() % std::min<size_t>(64, bytes.size() - from);
      bytes.insert(rng() % bytes.size(), bytes.substr(from, length));
      break;
    }
  }
  return bytes;
}

// A loaded survivor must still run a forward pass on a row.
void ExerciseIfLoaded(const absl::StatusOr<std::unique_ptr<Sequential>>& model,
                      int* loaded, int* refused) {
  if (!model.ok()) {
    ++*refused;
    EXPECT_FALSE(model.status().message().empty());
    return;
  }
  ++*loaded;
  std::vector<float> row((*model)->input_width(), 0.5f);
  EXPECT_TRUE((*model)->Predict(row, 1, Head::kSoftmax).ok());
}

class OnnxFuzzTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxFuzzTest, CorruptedCopiesNeverCrash) {
  const std::string original = testing::ReadReferenceBytes(GetParam());
  ASSERT_FALSE(original.empty());
  std::mt19937 rng(20261126);
  int loaded = 0, refused = 0;
  for (int i = 0; i < kCopiesPerModel; ++i) {
    ExerciseIfLoaded(ParseOnnxModel(Corrupt(original, rng), "fuzz.onnx"),
                     &loaded, &refused);
  }
  EXPECT_EQ(loaded + refused, kCopiesPerModel);
  // Most corruptions break the file; the loader must notice them.
  EXPECT_GT(refused, kCopiesPerModel / 2);
}

INSTANTIATE_TEST_SUITE_P(Reference, OnnxFuzzTest,
                         ::testing::Values("mammal", "species",
                                           "opset17_binary_softmax"));

TEST(TextFuzz, CorruptedTextModelsNeverCrash) {
  const std::string original = R"pb(
    input_width: 3
    layers { linear { in_features: 3 out_features: 2 weight: [1, 0, 0, 0, 1, -1] bias: [0.5, -0.5] } }
    layers { relu {} }
    layers { linear { in_features: 2 out_features: 1 weight: [2, -3] bias: 0.25 } }
    head: HEAD_SIGMOID
  )pb";
  std::mt19937 rng(7);
  int loaded = 0, refused = 0;
  for (int i = 0; i < kCopiesPerModel; ++i) {
    ExerciseIfLoaded(ParseTextModel(Corrupt(original, rng), "fuzz.textproto"),
                     &loaded, &refused);
  }
  EXPECT_EQ(loaded + refused, kCopiesPerModel);
  EXPECT_GT(refused, kCopiesPerModel / 2);
}

}  // namespace
}  // namespace seqserve
