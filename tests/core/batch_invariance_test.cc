// A row's answer must not depend on its batch: the same rows sent alone and
// in calls of 1 to 300 rows, each row at many positions, give the same bits
// (memcmp, no tolerance) for every model file the repository holds
// (tests/, models/, and ../shared/reference when present), for models built
// here to reach every tile of the Linear kernel, and in every output mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/model_file.h"
#include "core/sequential.h"

namespace seqserve {
namespace {

namespace fs = std::filesystem;

constexpr Head kHeads[] = {Head::kLogits, Head::kSigmoid, Head::kSoftmax, Head::kLogSoftmax};

// Random-ish rows: mostly N(0, 2), every fifth row scaled by 100 and every
// seventh by 0.01, so sums cancel, saturate and stay tiny.
std::vector<float> Rows(size_t rows, size_t width, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> values(rows * width);
  for (size_t r = 0; r < rows; ++r) {
    const float scale = r % 5 == 4 ? 100.0f : r % 7 == 6 ? 0.01f : 1.0f;
    for (size_t i = 0; i < width; ++i) values[r * width + i] = scale * normal(rng);
  }
  return values;
}

// Sends `distinct` rows alone, then, for every batch size from 1 to
// `max_batch`, a call of that many rows starting at a row that moves with
// the size (so each row takes many positions); every answer must have the
// bits of the row alone, in every output mode. Returns a description of the
// first difference, or "".
std::string FirstBatchDependence(const Sequential& model, size_t distinct, size_t max_batch,
                                 unsigned seed) {
  const size_t in = model.input_width(), out = model.output_width();
  // The rows twice over, so that a call may start at any of them.
  std::vector<float> x = Rows(distinct, in, seed);
  x.insert(x.end(), x.begin(), x.end());
  std::vector<std::vector<float>> alone;
  for (Head head : kHeads) {
    alone.emplace_back(2 * distinct * out);
    for (size_t r = 0; r < 2 * distinct; ++r) {
      absl::Status status = model.Predict(absl::MakeConstSpan(x).subspan(r * in, in), 1, head,
                                          absl::MakeSpan(alone.back()).subspan(r * out, out));
      if (!status.ok()) return status.ToString();
    }
  }
  std::vector<float> logits(max_batch * out), scores(max_batch * out);
  for (size_t batch = 1; batch <= max_batch; ++batch) {
    const size_t first = (batch * 37 + 11) % distinct;
    // One pass, then each head over the whole call, as Predict() and the
    // server's answers apply them.
    absl::Status status = model.Forward(absl::MakeConstSpan(x).subspan(first * in, batch * in),
                                        batch, absl::MakeSpan(logits).subspan(0, batch * out));
    if (!status.ok()) return status.ToString();
    for (size_t h = 0; h < std::size(kHeads); ++h) {
      std::copy(logits.begin(), logits.begin() + batch * out, scores.begin());
      ApplyHead(kHeads[h], out, absl::MakeSpan(scores).subspan(0, batch * out));
      for (size_t r = 0; r < batch; ++r) {
        const float* expected = &alone[h][(first + r) * out];
        if (std::memcmp(&scores[r * out], expected, out * sizeof(float)) != 0) {
          return absl::StrCat(HeadName(kHeads[h]), ": row ", first + r, " at position ", r,
                              " of a call of ", batch, " rows gives ",
                              absl::StrFormat("%.9g", scores[r * out]), "... alone ",
                              absl::StrFormat("%.9g", expected[0]), "...");
        }
      }
    }
  }
  return "";
}

// Every model file under `dir`, recursively, in a stable order (a model
// repository's config.textproto is not one).
std::vector<std::string> ModelFilesUnder(const fs::path& dir) {
  std::vector<std::string> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && IsModelFileName(entry.path().string()) &&
        entry.path().stem() != "config") {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

const fs::path kTests = fs::path(SEQSERVE_TEST_DATA_DIR).parent_path();
const fs::path kRepository = kTests.parent_path();
const fs::path kShared = kRepository.parent_path() / "shared" / "reference";

void ExpectEveryFileBatchInvariant(const std::vector<std::string>& files) {
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    auto model = LoadModelFile(file);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ(FirstBatchDependence(**model, 300, 300, 7), "");
  }
}

TEST(SequentialBatchInvariance, EveryModelFileInTheRepository) {
  std::vector<std::string> files = ModelFilesUnder(kTests);
  const std::vector<std::string> samples = ModelFilesUnder(kRepository / "models");
  files.insert(files.end(), samples.begin(), samples.end());
  // tests/ holds 112 model files and models/ 2; fewer means the walk went
  // wrong.
  ASSERT_GE(files.size(), 114u);
  ExpectEveryFileBatchInvariant(files);
}

TEST(SequentialBatchInvariance, EveryModelFileInTheSharedReference) {
  const std::vector<std::string> files = ModelFilesUnder(kShared);
  if (files.empty()) GTEST_SKIP() << "no models under " << kShared;
  ExpectEveryFileBatchInvariant(files);
}

// Linear layers of `widths` with `between` (built anew for each gap) after
// each hidden one; weights as torch's default initialisation draws them.
template <typename Between>
std::unique_ptr<Sequential> Model(const std::vector<int>& widths, Between between) {
  std::mt19937 rng(11);
  std::vector<Layer> layers;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(widths[i]));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    std::vector<float> weight(static_cast<size_t>(widths[i]) * widths[i + 1]);
    std::vector<float> bias(widths[i + 1]);
    for (float& v : weight) v = uniform(rng);
    for (float& v : bias) v = uniform(rng);
    layers.push_back(Layer::Linear(widths[i], widths[i + 1], std::move(weight), std::move(bias)));
    if (i + 2 < widths.size()) {
      for (Layer& layer : between(widths[i + 1], rng)) layers.push_back(std::move(layer));
    }
  }
  auto model = Sequential::Create(widths.front(), std::move(layers), Head::kSoftmax);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

std::vector<Layer> JustRelu(int, std::mt19937&) {
  std::vector<Layer> layers;
  layers.push_back(Layer::Relu());
  return layers;
}

// A folded BatchNorm1d, the ReLU fused past it, then LayerNorm and GELU.
std::vector<Layer> NormsAndGelu(int width, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(0.5f, 1.5f);
  std::vector<float> gamma(width), beta(width), mean(width), var(width), ln_w(width),
      ln_b(width);
  for (int i = 0; i < width; ++i) {
    gamma[i] = uniform(rng);
    beta[i] = uniform(rng) - 1.0f;
    mean[i] = uniform(rng) - 1.0f;
    var[i] = uniform(rng);
    ln_w[i] = uniform(rng);
    ln_b[i] = uniform(rng) - 1.0f;
  }
  std::vector<Layer> layers;
  layers.push_back(Layer::BatchNorm1d(gamma, beta, mean, var, 1e-5f));
  layers.push_back(Layer::Relu());
  layers.push_back(Layer::LayerNorm(width, ln_w, ln_b, 1e-5f));
  layers.push_back(Layer::Gelu(/*tanh_approximation=*/false));
  return layers;
}

TEST(SequentialBatchInvariance, ALargeModelThatTakesEveryTile) {
  // 784 and 1024 inputs, 1024 outputs (64 slabs), 10 (a part slab).
  auto model = Model({784, 1024, 1024, 10}, JustRelu);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(FirstBatchDependence(*model, 300, 300, 3), "");
}

TEST(SequentialBatchInvariance, WidthsThatAreNotMultiplesOfAVector) {
  for (const std::vector<int>& widths :
       {std::vector<int>{3, 16, 3}, {37, 129, 5}, {1, 1}, {5, 17, 33, 1}, {256, 4096, 2}}) {
    auto model = Model(widths, JustRelu);
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(FirstBatchDependence(*model, 300, 300, 5), "") << model->layers()[0].Describe();
  }
}

TEST(SequentialBatchInvariance, NormsAndActivationsAfterTheLinear) {
  auto model = Model({37, 129, 64, 5}, NormsAndGelu);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(FirstBatchDependence(*model, 300, 300, 9), "");
}

TEST(SequentialBatchInvariance, RowsSplitIntoChunksOfTheScratchBudget) {
  // 2^19 hidden values a row: a pass runs in chunks of 8 rows.
  auto model = Model({3, 1 << 19, 3}, JustRelu);
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(Sequential::kScratchBudgetBytes / ((size_t{1} << 19) * sizeof(float)), 8u);
  EXPECT_EQ(FirstBatchDependence(*model, 40, 20, 13), "");
}

}  // namespace
}  // namespace seqserve
