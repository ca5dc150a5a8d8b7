// Every PyTorch-exported reference model, run through core/, must give
// PyTorch's numbers for every head.
#include <gtest/gtest.h>

#include "core/model_file.h"
#include "core/onnx_loader.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using testing::FirstMismatch;
using testing::LoadReference;
using testing::ReferenceCase;

class ReferenceModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto reference = LoadReference(GetParam());
    ASSERT_TRUE(reference.ok()) << reference.status();
    reference_ = std::move(*reference);
    ASSERT_GT(reference_.rows, 0u);
    auto model = LoadOnnxModel(reference_.onnx_path);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
  }

  void ExpectHead(Head head, const std::vector<float>& expected) {
    auto scores = model_->Predict(reference_.inputs, reference_.rows, head);
    ASSERT_TRUE(scores.ok()) << scores.status();
    ASSERT_EQ(scores->size(), expected.size());
    const long bad = FirstMismatch(*scores, expected);
    EXPECT_EQ(bad, -1) << HeadName(head) << " value " << bad << ": got "
                       << (*scores)[bad < 0 ? 0 : bad] << ", PyTorch gives "
                       << expected[bad < 0 ? 0 : bad];
  }

  ReferenceCase reference_;
  std::unique_ptr<Sequential> model_;
};

TEST_P(ReferenceModelTest, WidthsMatchPyTorch) {
  EXPECT_EQ(model_->input_width(), static_cast<int>(reference_.input_width));
  EXPECT_EQ(model_->output_width(), static_cast<int>(reference_.output_width));
}

TEST_P(ReferenceModelTest, LogitsMatchPyTorch) {
  ExpectHead(Head::kLogits, reference_.logits);
}

TEST_P(ReferenceModelTest, SigmoidMatchesPyTorch) {
  ExpectHead(Head::kSigmoid, reference_.sigmoid);
}

TEST_P(ReferenceModelTest, SoftmaxMatchesPyTorch) {
  ExpectHead(Head::kSoftmax, reference_.softmax);
}

TEST_P(ReferenceModelTest, DefaultHeadGivesTheGraphOutput) {
  ExpectHead(model_->default_head(), reference_.output);
}

TEST_P(ReferenceModelTest, LayersMatchTheSequential) {
  // PyTorch lists the head module too; core keeps it apart from the body.
  std::vector<std::string> body = reference_.layers;
  if (!body.empty() && (body.back() == "Sigmoid" || body.back() == "Softmax")) {
    body.pop_back();
  }
  ASSERT_EQ(model_->layers().size(), body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    EXPECT_EQ(model_->layers()[i].Describe().rfind(body[i], 0), 0u)
        << "layer " << i << " is " << model_->layers()[i].Describe()
        << ", PyTorch has " << body[i];
  }
}

TEST_P(ReferenceModelTest, RowsAnswerAloneAsInABatch) {
  // A row's result must not depend on the batch it came in (sgemm or packed).
  const size_t in = reference_.input_width;
  const size_t out = reference_.output_width;
  for (size_t r = 0; r < reference_.rows; ++r) {
    auto one = model_->Predict(
        absl::MakeConstSpan(reference_.inputs).subspan(r * in, in), 1,
        Head::kLogits);
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_EQ(FirstMismatch(*one, absl::MakeConstSpan(reference_.logits)
                                      .subspan(r * out, out)),
              -1)
        << "row " << r;
  }
}

TEST_P(ReferenceModelTest, LoadModelFilePicksTheOnnxLoader) {
  auto model = LoadModelFile(reference_.onnx_path);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->ParameterCount(), model_->ParameterCount());
}

INSTANTIATE_TEST_SUITE_P(PyTorch, ReferenceModelTest,
                         ::testing::ValuesIn(testing::ReferenceNames()));

TEST(ReferenceModels, DefaultHeadsAreTheExportedOnes) {
  const std::pair<const char*, Head> expected[] = {
      {"mammal", Head::kSigmoid},
      {"species", Head::kSoftmax},
      {"deep_tanh_leaky_elu", Head::kSoftmax},
      {"multilabel_logits", Head::kLogits},
      {"extreme_logits", Head::kSoftmax},
      {"opset17_binary_softmax", Head::kSoftmax},
  };
  for (const auto& [name, head] : expected) {
    auto model = LoadOnnxModel(testing::ReferenceDir() + "/" + name + ".onnx");
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->default_head(), head) << name;
  }
}

}  // namespace
}  // namespace seqserve
