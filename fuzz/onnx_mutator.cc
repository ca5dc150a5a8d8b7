#include "fuzz/onnx_mutator.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"

namespace seqserve::fuzz {
namespace {

// The ops the loader knows, a few it refuses, and nothing.
constexpr const char* kOps[] = {
    "Gemm", "MatMul", "Add", "Relu", "LeakyRelu", "Tanh", "Sigmoid",
    "Elu", "Softmax", "Identity", "Dropout", "Flatten", "Constant",
    "Mul", "Reshape", "Transpose", "LogSoftmax", "BatchNormalization",
    "LayerNormalization", "Gelu", "Erf", "Div", "Sub", "Pow", "Sqrt", "ReduceMean",
    "Clip", "PRelu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid",
    "HardSwish", "Mish", "Abs", ""};
// Attribute names the supported ops read, a few others, and nothing.
constexpr const char* kAttributes[] = {
    "alpha", "beta", "transA", "transB", "axis", "value", "ratio",
    "training_mode", "perm", "value_float", "epsilon", "approximate", "min", "max",
    "gamma", "axes", "keepdims", "spatial", "momentum", "stash_type", ""};
constexpr int64_t kOpsets[] = {1, 6, 7, 8, 9, 11, 13, 16, 17, 18, 19, 20, 21, 23, 24};
// External data: the fixture directory's files (see fuzz_onnx_loader.cc)
// and locations the loader must refuse.
constexpr const char* kLocations[] = {
    "model.onnx.data", "link_in", "link_out", "link_out/hostname", "short.bin",
    "sub", "sub/../model.onnx.data", "./model.onnx.data", "../model.onnx.data",
    "/etc/hostname", "missing.data", ""};
constexpr const char* kOffsets[] = {
    "0", "4", "12", "48", "65532", "65536", "65540", "-1", "+4", " 4", "4x", "0x10",
    "18446744073709551615", "18446744073709551616", "9223372036854775808", ""};

template <typename T, size_t N>
constexpr size_t Count(const T (&)[N]) {
  return N;
}

class OnnxMutator {
 public:
  OnnxMutator(onnx::ModelProto* model, std::mt19937* rng)
      : model_(*model), graph_(*model->mutable_graph()), rng_(*rng) {}

  void MutateOnce() {
    switch (Pick(11)) {
      case 0: case 1: case 2:
        if (onnx::TensorProto* tensor = AnyTensor()) MutateTensor(tensor);
        break;
      case 3: case 4:
        MutateAttribute();
        break;
      case 5: case 6:
        MutateValueInfo();
        break;
      case 7: case 8:
        MutateNode();
        break;
      case 9:
        MutateGraph();
        break;
      default:
        MutateOpset();
        break;
    }
  }

 private:
  // A uniform pick in [0, n); n > 0.
  size_t Pick(size_t n) { return rng_() % n; }
  template <typename T>
  int PickIndex(const google::protobuf::RepeatedPtrField<T>& field) {
    return static_cast<int>(Pick(field.size()));
  }

  // A name the graph already uses (so edits rewire it), or a new one.
  std::string AnyName() {
    std::vector<const std::string*> names;
    for (const auto& v : graph_.input()) names.push_back(&v.name());
    for (const auto& v : graph_.output()) names.push_back(&v.name());
    for (const auto& t : graph_.initializer()) names.push_back(&t.name());
    for (const auto& node : graph_.node()) {
      for (const auto& name : node.input()) names.push_back(&name);
      for (const auto& name : node.output()) names.push_back(&name);
    }
    if (names.empty() || Pick(8) == 0) return Pick(2) ? "" : "fuzz_new";
    return *names[Pick(names.size())];
  }

  // An initializer or a Constant node's value; nullptr when there is none.
  onnx::TensorProto* AnyTensor() {
    std::vector<onnx::TensorProto*> tensors;
    for (auto& tensor : *graph_.mutable_initializer()) tensors.push_back(&tensor);
    for (auto& node : *graph_.mutable_node()) {
      for (auto& attribute : *node.mutable_attribute()) {
        if (attribute.has_t()) tensors.push_back(attribute.mutable_t());
      }
    }
    return tensors.empty() ? nullptr : tensors[Pick(tensors.size())];
  }

  onnx::NodeProto* AnyNode() {
    if (graph_.node_size() == 0) return nullptr;
    return graph_.mutable_node(PickIndex(graph_.node()));
  }

  void MutateShape(onnx::TensorShapeProto* shape) {
    auto* dims = shape->mutable_dim();
    const bool empty = dims->empty();
    switch (Pick(5)) {
      case 0:  // a dim's value: zero, negative, huge, just past the limit
        if (!empty) dims->Mutable(PickIndex(*dims))->set_dim_value(InterestingInt(rng_));
        break;
      case 1:  // a symbolic dim
        if (!empty) dims->Mutable(PickIndex(*dims))->set_dim_param("batch");
        break;
      case 2:  // rank up
        shape->add_dim()->set_dim_value(Pick(2) ? 1 : InterestingInt(rng_));
        break;
      case 3:  // rank down
        if (!empty) dims->DeleteSubrange(PickIndex(*dims), 1);
        break;
      default:  // an unknown dim
        if (!empty) dims->Mutable(PickIndex(*dims))->clear_value();
        break;
    }
  }

  void MutateValueInfo() {
    std::vector<onnx::ValueInfoProto*> values;
    for (auto& v : *graph_.mutable_input()) values.push_back(&v);
    for (auto& v : *graph_.mutable_output()) values.push_back(&v);
    for (auto& v : *graph_.mutable_value_info()) values.push_back(&v);
    if (values.empty()) return;
    onnx::ValueInfoProto* value = values[Pick(values.size())];
    auto* type = value->mutable_type()->mutable_tensor_type();
    switch (Pick(5)) {
      case 0: case 1:
        MutateShape(type->mutable_shape());
        break;
      case 2:
        type->clear_shape();
        break;
      case 3:
        type->set_elem_type(static_cast<int32_t>(Pick(17)));
        break;
      default:
        value->set_name(AnyName());
        break;
    }
  }

  void MutateTensor(onnx::TensorProto* tensor) {
    auto* dims = tensor->mutable_dims();
    // mutable_raw_data() would mark raw_data present even when empty, which
    // the ONNX checker refuses beside float_data: touch it only when set.
    std::string* raw = tensor->raw_data().empty() ? nullptr : tensor->mutable_raw_data();
    auto* floats = tensor->mutable_float_data();
    switch (Pick(10)) {
      case 0:  // a dim: zero, negative, huge
        if (!dims->empty()) dims->Set(static_cast<int>(Pick(dims->size())), InterestingInt(rng_));
        break;
      case 1:  // rank up
        dims->Add(Pick(2) ? 1 : InterestingInt(rng_));
        break;
      case 2:  // rank down
        if (!dims->empty()) {
          const int i = static_cast<int>(Pick(dims->size()));
          dims->erase(dims->begin() + i);
        }
        break;
      case 3:  // raw_data <-> float_data
        if (raw != nullptr) {
          floats->Resize(static_cast<int>(raw->size() / sizeof(float)), 0.0f);
          if (!floats->empty()) {
            std::memcpy(floats->mutable_data(), raw->data(),
                        floats->size() * sizeof(float));
          }
          tensor->clear_raw_data();
        } else if (!floats->empty()) {
          tensor->set_raw_data(reinterpret_cast<const char*>(floats->data()),
                               floats->size() * sizeof(float));
          floats->Clear();
        }
        break;
      case 4: {  // one value
        const float value = InterestingFloat(rng_);
        if (raw != nullptr && raw->size() >= sizeof(float)) {
          std::memcpy(&(*raw)[Pick(raw->size() / sizeof(float)) * sizeof(float)],
                      &value, sizeof(float));
        } else if (!floats->empty()) {
          floats->Set(static_cast<int>(Pick(floats->size())), value);
        }
        break;
      }
      case 5: {  // every value
        const float value = InterestingFloat(rng_);
        if (raw != nullptr) {
          for (size_t i = 0; i + sizeof(float) <= raw->size(); i += sizeof(float)) {
            std::memcpy(&(*raw)[i], &value, sizeof(float));
          }
        }
        for (float& v : *floats) v = value;
        break;
      }
      case 6:  // too few or too many values
        if (raw != nullptr) {
          raw->resize(Pick(2) ? raw->size() - 1 - Pick(raw->size())
                              : raw->size() + 1 + Pick(8));
        } else if (Pick(2) && !floats->empty()) {
          floats->RemoveLast();
        } else {
          floats->Add(InterestingFloat(rng_));
        }
        break;
      case 7:  // another element type
        tensor->set_data_type(static_cast<int32_t>(Pick(17)));
        break;
      case 8:
        MutateExternalData(tensor);
        break;
      default:
        tensor->set_name(AnyName());
        break;
    }
  }

  // Moves a tensor's data out of the file, or edits where it points:
  // location, offset and length entries, present, missing, twice or bad.
  void MutateExternalData(onnx::TensorProto* tensor) {
    auto* entries = tensor->mutable_external_data();
    switch (Pick(5)) {
      case 0: {  // inline data moved out, at an offset of the fixture file
        tensor->clear_raw_data();
        tensor->clear_float_data();
        tensor->set_data_location(onnx::TensorProto::EXTERNAL);
        entries->Clear();
        auto* location = entries->Add();
        location->set_key("location");
        location->set_value("model.onnx.data");
        auto* offset = entries->Add();
        offset->set_key("offset");
        offset->set_value(std::to_string(4 * Pick(1024)));
        break;
      }
      case 1: {  // an entry's value
        if (entries->empty()) break;
        auto* entry = entries->Mutable(PickIndex(*entries));
        entry->set_value(entry->key() == "location"
                             ? kLocations[Pick(Count(kLocations))]
                             : Pick(3) ? std::to_string(4 * Pick(16384))
                                       : kOffsets[Pick(Count(kOffsets))]);
        break;
      }
      case 2: {  // an extra entry, maybe a second one of a kind
        static constexpr const char* kKeys[] = {"location", "offset", "length", "checksum"};
        auto* entry = entries->Add();
        entry->set_key(kKeys[Pick(Count(kKeys))]);
        entry->set_value(entry->key() == "location" ? kLocations[Pick(Count(kLocations))]
                                                    : kOffsets[Pick(Count(kOffsets))]);
        break;
      }
      case 3:  // an entry less
        if (!entries->empty()) entries->DeleteSubrange(PickIndex(*entries), 1);
        break;
      default:  // back inside the file, or flagged external with inline data
        tensor->set_data_location(Pick(2) ? onnx::TensorProto::DEFAULT
                                          : onnx::TensorProto::EXTERNAL);
        break;
    }
  }

  void SetRandomAttribute(onnx::AttributeProto* attribute) {
    switch (Pick(6)) {
      case 0:
        attribute->set_type(onnx::AttributeProto::INT);
        attribute->set_i(InterestingInt(rng_));
        break;
      case 1:
        attribute->set_type(onnx::AttributeProto::FLOAT);
        attribute->set_f(InterestingFloat(rng_));
        break;
      case 2:
        attribute->set_type(onnx::AttributeProto::INTS);
        attribute->add_ints(InterestingInt(rng_));
        break;
      case 3:
        attribute->set_type(onnx::AttributeProto::FLOATS);
        attribute->add_floats(InterestingFloat(rng_));
        break;
      case 4:
        attribute->set_type(onnx::AttributeProto::STRING);
        attribute->set_s("fuzz");
        break;
      default:
        attribute->set_type(onnx::AttributeProto::TENSOR);
        if (onnx::TensorProto* tensor = AnyTensor()) {
          const onnx::TensorProto copy = *tensor;
          *attribute->mutable_t() = copy;
        } else {
          attribute->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
          attribute->mutable_t()->add_float_data(InterestingFloat(rng_));
        }
        break;
    }
  }

  void MutateAttribute() {
    onnx::NodeProto* node = AnyNode();
    if (node == nullptr) return;
    auto* attributes = node->mutable_attribute();
    if (attributes->empty() || Pick(3) == 0) {  // an extra attribute
      onnx::AttributeProto* attribute = node->add_attribute();
      attribute->set_name(kAttributes[Pick(Count(kAttributes))]);
      SetRandomAttribute(attribute);
      return;
    }
    const int index = PickIndex(*attributes);
    onnx::AttributeProto* attribute = attributes->Mutable(index);
    switch (Pick(7)) {
      case 0:  // a missing attribute
        attributes->DeleteSubrange(index, 1);
        break;
      case 1:  // its value, whatever its type
        attribute->set_i(InterestingInt(rng_));
        attribute->set_f(InterestingFloat(rng_));
        break;
      case 2:  // a type that does not match the value
        attribute->set_type(static_cast<onnx::AttributeProto::AttributeType>(Pick(15)));
        break;
      case 3:
        attribute->set_name(kAttributes[Pick(Count(kAttributes))]);
        break;
      case 4:
        SetRandomAttribute(attribute);
        break;
      case 5:  // its list (Transpose's perm): swapped, longer, shorter, edge values
        if (attribute->ints_size() > 1 && Pick(2)) {
          attribute->mutable_ints()->SwapElements(0, attribute->ints_size() - 1);
        } else if (attribute->ints_size() > 0 && Pick(2)) {
          attribute->set_ints(static_cast<int>(Pick(attribute->ints_size())),
                              Pick(2) ? static_cast<int64_t>(Pick(3)) : InterestingInt(rng_));
        } else if (Pick(2)) {
          attribute->add_ints(static_cast<int64_t>(Pick(3)));
        } else if (attribute->ints_size() > 0) {
          attribute->mutable_ints()->RemoveLast();
        }
        break;
      default:
        if (attribute->has_t()) MutateTensor(attribute->mutable_t());
        break;
    }
  }

  void MutateNode() {
    onnx::NodeProto* node = AnyNode();
    if (node == nullptr) return;
    switch (Pick(8)) {
      case 0:
        node->set_op_type(kOps[Pick(Count(kOps))]);
        break;
      case 1: {
        static constexpr const char* kDomains[] = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"};
        node->set_domain(kDomains[Pick(Count(kDomains))]);
        break;
      }
      case 2:
        if (node->input_size() > 0) node->set_input(PickIndex(node->input()), AnyName());
        break;
      case 3:
        node->add_input(AnyName());
        break;
      case 4:
        if (node->input_size() > 0) node->mutable_input()->DeleteSubrange(PickIndex(node->input()), 1);
        break;
      case 5:
        if (node->output_size() > 0) node->set_output(PickIndex(node->output()), AnyName());
        break;
      case 6:
        if (Pick(2) && node->output_size() > 0) {
          node->mutable_output()->DeleteSubrange(PickIndex(node->output()), 1);
        } else {
          node->add_output(AnyName());
        }
        break;
      default:
        node->set_name(Pick(2) ? "" : AnyName());
        break;
    }
  }

  void MutateGraph() {
    auto* nodes = graph_.mutable_node();
    switch (Pick(7)) {
      case 0:  // a node less
        if (!nodes->empty()) nodes->DeleteSubrange(PickIndex(*nodes), 1);
        break;
      case 1:  // a node twice
        if (!nodes->empty()) {
          const onnx::NodeProto copy = nodes->Get(PickIndex(*nodes));
          *graph_.add_node() = copy;
        }
        break;
      case 2:  // nodes out of order
        if (nodes->size() > 1) nodes->SwapElements(PickIndex(*nodes), PickIndex(*nodes));
        break;
      case 3:  // an initializer less
        if (graph_.initializer_size() > 0) {
          graph_.mutable_initializer()->DeleteSubrange(PickIndex(graph_.initializer()), 1);
        }
        break;
      case 4:  // an input or output less, or twice
        if (Pick(2)) {
          auto* values = Pick(2) ? graph_.mutable_input() : graph_.mutable_output();
          if (!values->empty()) values->DeleteSubrange(PickIndex(*values), 1);
        } else {
          auto* values = Pick(2) ? graph_.mutable_input() : graph_.mutable_output();
          if (!values->empty()) {
            const onnx::ValueInfoProto copy = values->Get(PickIndex(*values));
            *values->Add() = copy;
          }
        }
        break;
      case 5:  // an initializer moved into a Constant node
        if (graph_.initializer_size() > 0) {
          const int i = PickIndex(graph_.initializer());
          onnx::NodeProto* constant = graph_.add_node();
          constant->set_op_type("Constant");
          constant->add_output(graph_.initializer(i).name());
          onnx::AttributeProto* value = constant->add_attribute();
          value->set_name("value");
          value->set_type(onnx::AttributeProto::TENSOR);
          *value->mutable_t() = graph_.initializer(i);
          graph_.mutable_initializer()->DeleteSubrange(i, 1);
          nodes->SwapElements(0, nodes->size() - 1);
        }
        break;
      default:  // an initializer that shadows a graph input
        if (graph_.input_size() > 0 && graph_.initializer_size() > 0) {
          onnx::TensorProto* tensor = graph_.add_initializer();
          *tensor = graph_.initializer(PickIndex(graph_.initializer()));
          tensor->set_name(graph_.input(PickIndex(graph_.input())).name());
        }
        break;
    }
  }

  void MutateOpset() {
    auto* opsets = model_.mutable_opset_import();
    switch (Pick(4)) {
      case 0:
        if (!opsets->empty()) {
          opsets->Mutable(PickIndex(*opsets))
              ->set_version(Pick(4) ? kOpsets[Pick(Count(kOpsets))] : InterestingInt(rng_));
        }
        break;
      case 1: {
        static constexpr const char* kDomains[] = {"", "ai.onnx", "ai.onnx.ml"};
        onnx::OperatorSetIdProto* opset = opsets->Add();
        opset->set_domain(kDomains[Pick(Count(kDomains))]);
        opset->set_version(kOpsets[Pick(Count(kOpsets))]);
        break;
      }
      case 2:
        model_.set_ir_version(Pick(2) ? static_cast<int64_t>(Pick(13)) : InterestingInt(rng_));
        break;
      default:
        if (!opsets->empty()) opsets->DeleteSubrange(PickIndex(*opsets), 1);
        break;
    }
  }

  onnx::ModelProto& model_;
  onnx::GraphProto& graph_;
  std::mt19937& rng_;
};

}  // namespace

size_t MutateOnnxModel(uint8_t* data, size_t size, size_t max_size,
                       unsigned int seed) {
  std::mt19937 rng(seed);
  onnx::ModelProto model;
  if (rng() % 5 == 0 || !model.ParseFromArray(data, static_cast<int>(size)) ||
      !model.has_graph()) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  OnnxMutator mutator(&model, &rng);
  for (int i = 0, n = 1 + static_cast<int>(rng() % 3); i < n; ++i) {
    mutator.MutateOnce();
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes) || bytes.size() > max_size) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  std::memcpy(data, bytes.data(), bytes.size());
  return bytes.size();
}

}  // namespace seqserve::fuzz
