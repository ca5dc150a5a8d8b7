// Models as today's PyTorch exporter writes them (IR 10, opsets 18 to 23,
// weights in model.onnx.data, a batch dimension fixed to the example's),
// and every refusal of external data that would read the wrong bytes or
// bytes outside the model's directory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/onnx_loader.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::OnnxBuilder;

void ExpectMatchesPyTorch(const std::string& name) {
  auto reference = testing::LoadReference(name);
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto model = LoadOnnxModel(reference->onnx_path);
  ASSERT_TRUE(model.ok()) << model.status();
  // The graph fixes or names its batch; any number of rows is served.
  for (auto [head, expected] : {std::pair{Head::kLogits, &reference->logits},
                                std::pair{Head::kSigmoid, &reference->sigmoid},
                                std::pair{(*model)->default_head(), &reference->output}}) {
    auto scores = (*model)->Predict(reference->inputs, reference->rows, head);
    ASSERT_TRUE(scores.ok()) << scores.status();
    EXPECT_EQ(testing::FirstMismatch(*scores, *expected), -1) << name;
  }
  if ((*model)->output_width() > 1) {
    auto softmax = (*model)->Predict(reference->inputs, reference->rows, Head::kSoftmax);
    ASSERT_TRUE(softmax.ok());
    EXPECT_EQ(testing::FirstMismatch(*softmax, reference->softmax), -1) << name;
  }
}

TEST(ModernExport, GemmAtOpset20WithAFixedBatchMatchesPyTorch) {
  ExpectMatchesPyTorch("modern/species_o20_static");
}

TEST(ModernExport, TransposeMatMulAddAtOpset18MatchesPyTorch) {
  ExpectMatchesPyTorch("modern/mammal_o18_matmul");
}

TEST(ModernExport, BatchNormLayerNormAndGeluAtOpset20MatchPyTorch) {
  ExpectMatchesPyTorch("modern/bn_relu_ln_gelu_o20");
}

// A 2 -> 1 Gemm whose weight [1, 2] lives in a data file.
class ExternalDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("external." + std::to_string(getpid()) + "." +
                                             ::testing::UnitTest::GetInstance()
                                                 ->current_test_info()
                                                 ->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "version");
    const float weight[] = {3.0f, -2.0f};
    std::string bytes(8, '\0');  // 8 bytes of padding first, then the weight
    bytes.append(reinterpret_cast<const char*>(weight), sizeof(weight));
    std::ofstream(dir_ / "version" / "model.onnx.data", std::ios::binary) << bytes;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The model with its weight at `location`, `offset`, `length` ("" leaves
  // an entry out).
  std::string Model(const std::string& location, const std::string& offset = "8",
                    const std::string& length = "8") {
    OnnxBuilder builder(2, 20);
    builder.model().set_ir_version(10);
    builder.Weight("w", {1, 2}, {});
    auto* tensor = builder.model().mutable_graph()->mutable_initializer(0);
    tensor->set_data_location(onnx::TensorProto::EXTERNAL);
    for (auto [key, value] : {std::pair{"location", location}, std::pair{"offset", offset},
                              std::pair{"length", length}}) {
      if (value.empty()) continue;
      auto* entry = tensor->add_external_data();
      entry->set_key(key);
      entry->set_value(value);
    }
    testing::SetInt(builder.Node("Gemm", {"features", "w"}, {"scores"}), "transB", 1);
    builder.Output("scores", 1);
    return builder.Serialize();
  }

  absl::StatusOr<std::unique_ptr<Sequential>> Load(const std::string& bytes) {
    const fs::path path = dir_ / "version" / "model.onnx";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return LoadOnnxModel(path.string());
  }

  void ExpectRefused(const std::string& bytes, const std::string& fragment) {
    auto model = Load(bytes);
    ASSERT_FALSE(model.ok()) << fragment;
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
    EXPECT_THAT(std::string(model.status().message()), HasSubstr(fragment));
    EXPECT_THAT(std::string(model.status().message()), HasSubstr("initializer 'w'"));
  }

  fs::path dir_;
};

TEST_F(ExternalDataTest, ReadsTheWeightAtItsOffset) {
  auto model = Load(Model("model.onnx.data"));
  ASSERT_TRUE(model.ok()) << model.status();
  const float row[] = {1.0f, 1.0f};
  auto logits = (*model)->Predict(row, 1, Head::kLogits);
  ASSERT_TRUE(logits.ok());
  EXPECT_FLOAT_EQ((*logits)[0], 1.0f);  // 3 * 1 - 2 * 1
}

TEST_F(ExternalDataTest, WithoutALengthTheShapeSaysHowMuch) {
  EXPECT_TRUE(Load(Model("model.onnx.data", "8", "")).ok());
}

TEST_F(ExternalDataTest, RefusesLocationsOutsideTheModelsDirectory) {
  ExpectRefused(Model((dir_ / "version" / "model.onnx.data").string()), "is absolute");
  std::ofstream(dir_ / "outside.data", std::ios::binary) << std::string(16, '\0');
  ExpectRefused(Model("../outside.data"), "contains '..'");
  fs::create_symlink(dir_ / "outside.data", dir_ / "version" / "link.data");
  ExpectRefused(Model("link.data"), "resolves outside the model's directory");
  ExpectRefused(Model(""), "no location");
}

TEST_F(ExternalDataTest, RefusesBytesThatDoNotFit) {
  ExpectRefused(Model("missing.data"), "'missing.data': No such file or directory");
  ExpectRefused(Model("model.onnx.data", "12"), "is 16 bytes, shorter than offset 12 + length 8");
  ExpectRefused(Model("model.onnx.data", "8", "4"), "length 4 disagrees with its shape (8 bytes)");
  ExpectRefused(Model("model.onnx.data", "-1"), "offset '-1' is not a non-negative integer");
}

// The graph and its data files together, by size on disk, before reading.
TEST_F(ExternalDataTest, RefusesFilesOverMaxModelBytesBeforeReadingThem) {
  const fs::path path = dir_ / "version" / "model.onnx";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << Model("model.onnx.data");
  const uint64_t graph = fs::file_size(path);
  auto over = LoadOnnxModel(path.string(), ModelLoadOptions{graph - 1});
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.status().message()),
              HasSubstr(absl::StrCat("model.onnx: ", graph, " bytes is over the limit of ",
                                     graph - 1, " bytes")));
  // The 16-byte data file brings the total past graph + 15.
  auto data = LoadOnnxModel(path.string(), ModelLoadOptions{graph + 15});
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr(absl::StrCat("external data file 'model.onnx.data' is 16 bytes, which "
                                     "brings the model's files to ",
                                     graph + 16, " bytes, over the limit of ", graph + 15)));
  EXPECT_TRUE(LoadOnnxModel(path.string(), ModelLoadOptions{graph + 16}).ok());
}

// A 2.5 GB sparse data file is refused by its size, with nothing allocated.
TEST_F(ExternalDataTest, RefusesAHugeSparseDataFileByItsSize) {
  const fs::path data = dir_ / "version" / "model.onnx.data";
  fs::resize_file(data, (uint64_t{5} << 30) / 2);
  auto model = Load(Model("model.onnx.data"));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("external data file 'model.onnx.data' is 2684354560 bytes"));
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("over the limit of 1073741824"));
}

TEST_F(ExternalDataTest, ParsedBytesWithoutADirectoryRefuseExternalData) {
  auto model = ParseOnnxModel(Model("model.onnx.data"), "bytes.onnx");
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("no model directory"));
}

}  // namespace
}  // namespace seqserve
