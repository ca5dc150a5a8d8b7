// Corrupted and truncated copies of valid model files must load with an
// error or succeed, never crash. Run under the asan preset to catch memory
// errors the plain build would miss.
#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <random>

#include "core/onnx_loader.h"
#include "core/text_loader.h"
#include "tests/support/onnx_builder.h"
#include "tests/support/reference_data.h"

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

// One change at the ONNX message level, where byte flips rarely reach:
// shapes (zero, huge, negative, wrong rank), attributes (missing, extra,
// out of range, NaN), weight data and ops.
void MutateMessage(onnx::ModelProto& model, std::mt19937& rng) {
  constexpr int64_t kDims[] = {0, -1, 1, 2, 3, 1 << 24, (int64_t{1} << 24) + 1,
                               int64_t{1} << 31, int64_t{1} << 62,
                               6148914691236517206, INT64_MAX, INT64_MIN};
  auto dim = [&] { return kDims[rng() % std::size(kDims)]; };
  onnx::GraphProto& graph = *model.mutable_graph();
  switch (rng() % 8) {
    case 0: {  // a weight's shape
      if (graph.initializer_size() == 0) break;
      auto& tensor = *graph.mutable_initializer(rng() % graph.initializer_size());
      if (tensor.dims_size() > 0 && rng() % 3 == 0) {
        tensor.set_dims(rng() % tensor.dims_size(), dim());
      } else if (tensor.dims_size() > 0 && rng() % 2 == 0) {
        for (int d = 0; d < tensor.dims_size(); ++d) tensor.set_dims(d, dim());
      } else if (rng() % 2 == 0) {
        tensor.add_dims(dim());
      } else {
        tensor.clear_dims();
      }
      break;
    }
    case 1: {  // the input's shape
      auto* shape = graph.mutable_input(0)->mutable_type()->mutable_tensor_type()
                        ->mutable_shape();
      if (shape->dim_size() > 0 && rng() % 3 != 0) {
        shape->mutable_dim(rng() % shape->dim_size())->set_dim_value(dim());
      } else {
        shape->add_dim()->set_dim_value(dim());
      }
      break;
    }
    case 2: {  // drop an attribute
      if (graph.node_size() == 0) break;
      auto& node = *graph.mutable_node(rng() % graph.node_size());
      if (node.attribute_size() > 0) {
        node.mutable_attribute()->DeleteSubrange(rng() % node.attribute_size(), 1);
      }
      break;
    }
    case 3: {  // add or change an attribute
      if (graph.node_size() == 0) break;
      auto& node = *graph.mutable_node(rng() % graph.node_size());
      constexpr const char* kNames[] = {"transA", "transB", "axis", "alpha", "beta"};
      auto* attribute = node.add_attribute();
      attribute->set_name(kNames[rng() % std::size(kNames)]);
      if (rng() % 2 == 0) {
        attribute->set_type(onnx::AttributeProto::INT);
        attribute->set_i(dim());
      } else {
        attribute->set_type(onnx::AttributeProto::FLOAT);
        const float values[] = {0.0f, -1.0f, 1e38f, std::nanf(""), INFINITY};
        attribute->set_f(values[rng() % std::size(values)]);
      }
      break;
    }
    case 4: {  // weight data that does not match the shape
      if (graph.initializer_size() == 0) break;
      auto& tensor = *graph.mutable_initializer(rng() % graph.initializer_size());
      if (!tensor.raw_data().empty()) {
        tensor.mutable_raw_data()->resize(rng() % (tensor.raw_data().size() + 8));
      } else if (rng() % 2 == 0) {
        tensor.clear_float_data();
      } else {
        tensor.add_float_data(1.0f);
      }
      break;
    }
    case 5: {  // another op
      if (graph.node_size() == 0) break;
      constexpr const char* kOps[] = {"Gemm", "MatMul", "Add", "Relu", "Softmax",
                                      "Flatten", "Sigmoid", "Identity", "Conv"};
      graph.mutable_node(rng() % graph.node_size())->set_op_type(kOps[rng() % std::size(kOps)]);
      break;
    }
    case 6: {  // another opset
      const int64_t opsets[] = {0, 1, 8, 9, 13, 17, 18, 1000};
      model.mutable_opset_import(0)->set_version(opsets[rng() % std::size(opsets)]);
      break;
    }
    default: {  // rewire a node input
      if (graph.node_size() == 0) break;
      auto& node = *graph.mutable_node(rng() % graph.node_size());
      if (node.input_size() > 0) {
        const auto& other = graph.node(rng() % graph.node_size());
        node.set_input(rng() % node.input_size(),
                       other.output_size() > 0 ? other.output(0) : "");
      }
      break;
    }
  }
}

TEST_P(OnnxFuzzTest, MessageLevelMutationsNeverCrash) {
  onnx::ModelProto original;
  ASSERT_TRUE(original.ParseFromString(testing::ReadReferenceBytes(GetParam())));
  std::mt19937 rng(20261127);
  int loaded = 0, refused = 0;
  for (int i = 0; i < kCopiesPerModel; ++i) {
    onnx::ModelProto model = original;
    for (int n = 1 + rng() % 3; n > 0; --n) MutateMessage(model, rng);
    ExerciseIfLoaded(ParseOnnxModel(model.SerializeAsString(), "fuzz.onnx"), &loaded,
                     &refused);
  }
  EXPECT_EQ(loaded + refused, kCopiesPerModel);
  EXPECT_GT(refused, kCopiesPerModel / 2);
}

INSTANTIATE_TEST_SUITE_P(Reference, OnnxFuzzTest,
                         ::testing::Values("mammal", "species",
                                           "opset17_binary_softmax"));

// The layers' attributes and external data entries, where MutateMessage
// rarely reaches: eps, approximate, training_mode, Clip and ReduceMean
// settings, and each initializer's location, offset and length.
void MutateLayerOrExternalData(onnx::ModelProto& model, std::mt19937& rng) {
  onnx::GraphProto& graph = *model.mutable_graph();
  if (rng() % 2 == 0 && graph.node_size() > 0) {
    auto& node = *graph.mutable_node(rng() % graph.node_size());
    constexpr const char* kNames[] = {"epsilon", "approximate", "training_mode", "min",
                                      "max", "axes", "keepdims", "alpha", "gamma",
                                      "spatial", "axis"};
    auto* attribute = node.add_attribute();
    attribute->set_name(kNames[rng() % std::size(kNames)]);
    switch (rng() % 4) {
      case 0: {
        attribute->set_type(onnx::AttributeProto::FLOAT);
        const float values[] = {0.0f, -1e-5f, 1e-30f, 1e30f, std::nanf(""), INFINITY};
        attribute->set_f(values[rng() % std::size(values)]);
        break;
      }
      case 1:
        attribute->set_type(onnx::AttributeProto::INT);
        attribute->set_i(static_cast<int64_t>(rng() % 5) - 2);
        break;
      case 2: {
        attribute->set_type(onnx::AttributeProto::STRING);
        const char* values[] = {"none", "tanh", "", "TANH", "erf"};
        attribute->set_s(values[rng() % std::size(values)]);
        break;
      }
      default:
        attribute->set_type(onnx::AttributeProto::INTS);
        attribute->add_ints(static_cast<int64_t>(rng() % 5) - 2);
        break;
    }
    return;
  }
  if (graph.initializer_size() == 0) return;
  auto& tensor = *graph.mutable_initializer(rng() % graph.initializer_size());
  tensor.set_data_location(onnx::TensorProto::EXTERNAL);
  constexpr const char* kKeys[] = {"location", "offset", "length", "checksum"};
  constexpr const char* kValues[] = {
      "model.onnx.data", "model.onnx", "../model.onnx.data", "/etc/hostname", "missing",
      "", "0", "4", "-4", "18446744073709551615", "9223372036854775807", "4096", " 8", "8x"};
  auto* entries = tensor.mutable_external_data();
  if (!entries->empty() && rng() % 2 == 0) {
    entries->Mutable(rng() % entries->size())->set_value(kValues[rng() % std::size(kValues)]);
  } else if (!entries->empty() && rng() % 2 == 0) {
    entries->DeleteSubrange(rng() % entries->size(), 1);
  } else {
    auto* entry = tensor.add_external_data();
    entry->set_key(kKeys[rng() % std::size(kKeys)]);
    entry->set_value(kValues[rng() % std::size(kValues)]);
  }
}

class LayerFuzzTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LayerFuzzTest, MutatedLayersAndExternalDataNeverCrash) {
  const std::string dir = testing::ReferenceDir() + "/layers/" + GetParam();
  onnx::ModelProto original;
  ASSERT_TRUE(original.ParseFromString(testing::ReadReferenceBytes("layers/" + GetParam() +
                                                                   "/model")));
  std::mt19937 rng(20261128);
  constexpr int kCopies = 800;
  int loaded = 0, refused = 0;
  for (int i = 0; i < kCopies; ++i) {
    onnx::ModelProto model = original;
    for (int n = 1 + rng() % 3; n > 0; --n) {
      if (rng() % 3 == 0) {
        MutateMessage(model, rng);
      } else {
        MutateLayerOrExternalData(model, rng);
      }
    }
    ExerciseIfLoaded(ParseOnnxModel(model.SerializeAsString(), "fuzz.onnx", dir), &loaded,
                     &refused);
  }
  EXPECT_EQ(loaded + refused, kCopies);
  EXPECT_GT(refused, kCopies / 4);
  EXPECT_GT(loaded, 0);  // some mutations leave a model that still runs
}

INSTANTIATE_TEST_SUITE_P(Layers, LayerFuzzTest,
                         ::testing::Values("bn_after_linear_m18", "layernorm_chain_m18",
                                           "gelu_tanh_m18", "prelu_per_feature_m22_b1",
                                           "hardtanh_m21_b1", "softplus_beta_m18",
                                           "layernorm_t9", "hardswish_t9", "softsign_t9"));

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
