#include "core/text_loader.h"

#include <algorithm>
#include <exception>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/text_proto.h"
#include "seqserve/v1/model.pb.h"

namespace seqserve {
namespace {

absl::StatusOr<Layer> ToElementwise(const v1::Elementwise& elementwise, int index) {
  std::vector<ElementwiseStep> steps;
  for (int i = 0; i < elementwise.steps_size(); ++i) {
    const v1::Elementwise::Step& in = elementwise.steps(i);
    ElementwiseStep step;
    switch (in.op()) {
      case v1::Elementwise::OP_ADD:
        step.op = ElementwiseOp::kAdd;
        break;
      case v1::Elementwise::OP_SUB:
        step.op = ElementwiseOp::kSub;
        break;
      case v1::Elementwise::OP_MUL:
        step.op = ElementwiseOp::kMul;
        break;
      case v1::Elementwise::OP_DIV:
        step.op = ElementwiseOp::kDiv;
        break;
      case v1::Elementwise::OP_RECIPROCAL:
        step.op = ElementwiseOp::kReciprocal;
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", index, " (elementwise): step ", i,
            " names no op (OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_RECIPROCAL)"));
    }
    const bool reciprocal = step.op == ElementwiseOp::kReciprocal;
    if (reciprocal != (in.value_size() == 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", index, " (elementwise): step ", i,
          reciprocal ? " is OP_RECIPROCAL, which takes no value"
                     : " needs a value (one, or one per feature)"));
    }
    step.constant_first = in.constant_first();
    step.values.assign(in.value().begin(), in.value().end());
    steps.push_back(std::move(step));
  }
  return Layer::Elementwise(std::move(steps));
}

// The layer a text layer lists (Dropout and Identity as no-ops).
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
    case v1::Layer::kBatchNorm: {
      const v1::BatchNorm1d& bn = layer.batch_norm();
      auto values = [](const auto& field) { return std::vector<float>(field.begin(), field.end()); };
      Layer out = Layer::BatchNorm1d(values(bn.weight()), values(bn.bias()),
                                     values(bn.running_mean()), values(bn.running_var()),
                                     bn.has_eps() ? bn.eps() : 1e-5f);
      if (out.out_features != bn.num_features()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", index, " (batch_norm): num_features is ", bn.num_features(), " but ",
            "running_var holds ", out.out_features, " values"));
      }
      return out;
    }
    case v1::Layer::kLayerNorm: {
      const v1::LayerNorm& ln = layer.layer_norm();
      return Layer::LayerNorm(ln.normalized_shape(),
                              std::vector<float>(ln.weight().begin(), ln.weight().end()),
                              std::vector<float>(ln.bias().begin(), ln.bias().end()),
                              ln.has_eps() ? ln.eps() : 1e-5f);
    }
    case v1::Layer::kGelu: {
      const std::string& approximate = layer.gelu().approximate();
      if (!approximate.empty() && approximate != "none" && approximate != "tanh") {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", index, " (gelu): approximate '", approximate, "' is not none or tanh"));
      }
      return Layer::Gelu(approximate == "tanh");
    }
    case v1::Layer::kSilu:
      return Layer::Silu();
    case v1::Layer::kHardtanh: {
      const v1::Hardtanh& h = layer.hardtanh();
      return Layer::Hardtanh(h.has_min_val() ? h.min_val() : -1.0f,
                             h.has_max_val() ? h.max_val() : 1.0f);
    }
    case v1::Layer::kReluSix:
      return Layer::Hardtanh(0.0f, 6.0f);
    case v1::Layer::kPrelu: {
      const auto& w = layer.prelu().weight();
      return Layer::Prelu(std::vector<float>(w.begin(), w.end()));
    }
    case v1::Layer::kSelu:
      return Layer::Selu();
    case v1::Layer::kCelu:
      return Layer::Celu(layer.celu().has_alpha() ? layer.celu().alpha() : 1.0f);
    case v1::Layer::kSoftplus: {
      const v1::Softplus& sp = layer.softplus();
      return Layer::Softplus(sp.has_beta() ? sp.beta() : 1.0f,
                             sp.has_threshold() ? sp.threshold() : 20.0f);
    }
    case v1::Layer::kSoftsign:
      return Layer::Softsign();
    case v1::Layer::kHardsigmoid:
      return Layer::HardSigmoid(1.0f / 6.0f, 0.5f);
    case v1::Layer::kHardswish:
      return Layer::HardSwish();
    case v1::Layer::kMish:
      return Layer::Mish();
    case v1::Layer::kDropout:
      return Layer::Dropout(layer.dropout().p());
    case v1::Layer::kIdentity:
      return Layer::Identity();
    case v1::Layer::kElementwise:
      return ToElementwise(layer.elementwise(), index);
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
    case v1::HEAD_LOG_SOFTMAX:
      return Head::kLogSoftmax;
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
    const std::string& path, const ModelLoadOptions& options) {
  auto text = ReadFileToString(path, std::min(options.max_model_bytes, kMaxModelFileBytes));
  if (!text.ok()) return text.status();
  return ParseTextModel(*text, path);
}

}  // namespace seqserve
