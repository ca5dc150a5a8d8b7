#include "core/text_loader.h"

#include <exception>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/text_proto.h"
#include "seqserve/v1/model.pb.h"

namespace seqserve {
namespace {

absl::StatusOr<Layer> ToLayer(const v1::Layer& layer, int index) {
  switch (layer.kind_case()) {
    case v1::Layer::kLinear: {
      const v1::Linear& linear = layer.linear();
      return Layer::Linear(
          linear.in_features(), linear.out_features(),
          std::vector<float>(linear.weight().begin(), linear.weight().end()),
          std::vector<float>(linear.bias().begin(), linear.bias().end()));
    }
    case v1::Layer::kRelu:
      return Layer::Relu();
    case v1::Layer::kLeakyRelu: {
      const float slope = layer.leaky_relu().negative_slope();
      return Layer::LeakyRelu(slope == 0.0f ? 0.01f : slope);
    }
    case v1::Layer::kTanh:
      return Layer::Tanh();
    case v1::Layer::kSigmoid:
      return Layer::Sigmoid();
    case v1::Layer::kElu: {
      const float alpha = layer.elu().alpha();
      return Layer::Elu(alpha == 0.0f ? 1.0f : alpha);
    }
    case v1::Layer::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("layer ", index, " names no kind (linear, relu, ...)"));
}

Head ToHead(v1::Head head) {
  switch (head) {
    case v1::HEAD_SIGMOID:
      return Head::kSigmoid;
    case v1::HEAD_SOFTMAX:
      return Head::kSoftmax;
    default:
      return Head::kLogits;
  }
}

absl::StatusOr<std::unique_ptr<Sequential>> ParseTextBytes(
    absl::string_view text, absl::string_view name) {
  v1::SequentialModel proto;
  if (absl::Status parsed = ParseTextProto(text, &proto); !parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not a text model: ", parsed.message()));
  }
  std::vector<Layer> layers;
  layers.reserve(proto.layers_size());
  for (int i = 0; i < proto.layers_size(); ++i) {
    auto layer = ToLayer(proto.layers(i), i);
    if (!layer.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": ", layer.status().message()));
    }
    layers.push_back(std::move(*layer));
  }
  auto model =
      Sequential::Create(proto.input_width(), std::move(layers), ToHead(proto.head()));
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat(name, ": ", model.status().message()));
  }
  return model;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Sequential>> ParseTextModel(
    absl::string_view text, absl::string_view name) {
  // The loader boundary: nothing a file holds may throw past it.
  try {
    return ParseTextBytes(text, name);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name, ": out of memory while loading"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Sequential>> LoadTextModel(
    const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseTextModel(*text, path);
}

}  // namespace seqserve
