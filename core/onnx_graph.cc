#include "core/onnx_graph.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/sequential.h"

namespace seqserve {
namespace {

constexpr int64_t kMaxWidth = Sequential::kMaxWidth;
// One weight tensor's values: 8 GiB of floats is past any file we read.
constexpr int64_t kMaxWeightValues = std::numeric_limits<int32_t>::max();

const std::vector<int>& NoUsers() {
  static const auto* none = new std::vector<int>();
  return *none;
}

std::string TypeName(int type) {
  return onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(type));
}

// IEEE binary16 to float32, exactly (subnormals, Inf and NaN included).
float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
  } else if (exponent == 0x1f) {
    magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity()
                              : std::numeric_limits<float>::quiet_NaN();
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  uint32_t bits;
  std::memcpy(&bits, &magnitude, sizeof(bits));
  bits |= sign;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// bfloat16 is the high half of a float32.
float BFloat16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

}  // namespace

OnnxGraph::OnnxGraph(const onnx::ModelProto& model, absl::string_view name,
                     std::string base_dir, int64_t opset)
    : graph_(model.graph()), name_(name), base_dir_(std::move(base_dir)), opset_(opset) {
  for (const auto& tensor : graph_.initializer()) constants_[tensor.name()] = &tensor;
  load_time_.assign(graph_.node_size(), false);
  for (int i = 0; i < graph_.node_size(); ++i) {
    const auto& node = graph_.node(i);
    if (node.op_type() != "Constant") continue;
    load_time_[i] = true;
    for (const auto& attribute : node.attribute()) {
      if (attribute.name() == "value" && node.output_size() == 1) {
        constants_[node.output(0)] = &attribute.t();
      }
    }
  }
  // Identity of a constant (torch 1.13 writes one per BatchNorm weight) is
  // that constant.
  for (int i = 0; i < graph_.node_size(); ++i) {
    const auto& node = graph_.node(i);
    if (node.op_type() != "Identity" || node.input_size() != 1 || node.output_size() != 1 ||
        constants_.count(node.input(0)) == 0) {
      continue;
    }
    constants_[node.output(0)] = constants_.at(node.input(0));
    load_time_[i] = true;
  }
  // Transpose(W, perm=[1, 0]) of a constant feeds MatMul in what today's
  // exporter writes for nn.Linear: fold it, the weight is torch's layout.
  for (int i = 0; i < graph_.node_size(); ++i) {
    const auto& node = graph_.node(i);
    if (node.op_type() != "Transpose" || node.input_size() != 1 || node.output_size() != 1 ||
        constants_.count(node.input(0)) == 0 ||
        constants_.at(node.input(0))->dims_size() != 2) {
      continue;
    }
    const std::vector<int64_t> perm = IntsAttribute(node, "perm");
    if (HasAttribute(node, "perm") && perm != std::vector<int64_t>{1, 0}) continue;
    transposed_[node.output(0)] = node.input(0);
    load_time_[i] = true;
  }
  for (int i = 0; i < graph_.node_size(); ++i) {
    if (load_time_[i]) continue;
    for (const auto& input : graph_.node(i).input()) {
      if (input.empty()) continue;
      std::vector<int>& users = users_[input];
      if (users.empty() || users.back() != i) users.push_back(i);  // Mul(x, x) reads x once
    }
  }
}

const std::vector<int>& OnnxGraph::Users(const std::string& tensor) const {
  auto it = users_.find(tensor);
  return it == users_.end() ? NoUsers() : it->second;
}

const onnx::TensorProto* OnnxGraph::TransposedWeight(const std::string& tensor) const {
  auto it = transposed_.find(tensor);
  return it == transposed_.end() ? nullptr : constants_.at(it->second);
}

absl::Status OnnxGraph::Error(absl::StatusCode code, absl::string_view message) const {
  return absl::Status(code, absl::StrCat(name_, ": ", message));
}

absl::Status OnnxGraph::NodeError(absl::StatusCode code, const onnx::NodeProto& node,
                                  absl::string_view message) const {
  const std::string label =
      node.name().empty()
          ? absl::StrCat("output '", node.output_size() > 0 ? node.output(0) : "", "'")
          : absl::StrCat("'", node.name(), "'");
  return Error(code, absl::StrCat("node ", label, " (", node.op_type(), "): ", message));
}

absl::StatusOr<const onnx::TensorProto*> OnnxGraph::Weight(const onnx::NodeProto& node,
                                                           int index) const {
  if (index >= node.input_size() || node.input(index).empty()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("input ", index, " is missing"));
  }
  auto it = constants_.find(node.input(index));
  if (it == constants_.end()) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("input '", node.input(index),
                                  "' is not an initializer; weights must be constant"));
  }
  return it->second;
}

absl::Status OnnxGraph::ReadRaw(const onnx::NodeProto& node, const onnx::TensorProto& tensor,
                                uint64_t bytes, const std::function<char*()>& allocate) const {
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    return ReadExternal(node, tensor, bytes, allocate);
  }
  if (tensor.raw_data().size() != bytes) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("initializer '", tensor.name(), "' holds ",
                                  tensor.raw_data().size(), " bytes for ", bytes));
  }
  std::memcpy(allocate(), tensor.raw_data().data(), bytes);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> OnnxGraph::ValueCount(const onnx::NodeProto& node,
                                              const onnx::TensorProto& tensor) const {
  int64_t count = 1;
  for (int64_t dim : tensor.dims()) {
    // Zero-element weights are refused too: a zero dim would otherwise let
    // any other dim through unchecked.
    if (dim <= 0 || dim > kMaxWidth || count > kMaxWeightValues / dim) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat("initializer '", tensor.name(), "' has shape [",
                                    absl::StrJoin(tensor.dims(), ", "),
                                    "]; every dimension must be 1 to ", kMaxWidth,
                                    " and the whole at most ", kMaxWeightValues, " values"));
    }
    count *= dim;
  }
  return count;
}

template <typename T>
absl::StatusOr<std::vector<T>> OnnxGraph::RawValues(const onnx::NodeProto& node,
                                                    const onnx::TensorProto& tensor,
                                                    int64_t count) const {
  std::vector<T> values;
  if (absl::Status read = ReadRaw(node, tensor, static_cast<uint64_t>(count) * sizeof(T),
                                  [&] {
                                    values.resize(count);
                                    return reinterpret_cast<char*>(values.data());
                                  });
      !read.ok()) {
    return read;
  }
  return values;
}

absl::StatusOr<std::vector<float>> OnnxGraph::Floats(const onnx::NodeProto& node,
                                                     const onnx::TensorProto& tensor) const {
  const std::string what = absl::StrCat("initializer '", tensor.name(), "'");
  const int type = tensor.data_type();
  const bool half = type == onnx::TensorProto::FLOAT16 || type == onnx::TensorProto::BFLOAT16;
  if (type != onnx::TensorProto::FLOAT && !half) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat(what, " has data type ", TypeName(type),
                                  "; weights are float32, float16 or bfloat16"));
  }
  auto count = ValueCount(node, tensor);
  if (!count.ok()) return count.status();
  const bool raw =
      tensor.data_location() == onnx::TensorProto::EXTERNAL || !tensor.raw_data().empty();
  std::vector<float> values;
  if (half) {
    // 16-bit floats widen to float32 exactly; the layers compute in float32.
    // Without raw bytes ONNX keeps them in int32_data, one per value.
    std::vector<uint16_t> bits;
    if (raw) {
      auto read = RawValues<uint16_t>(node, tensor, *count);
      if (!read.ok()) return read.status();
      bits = std::move(*read);
    } else if (tensor.int32_data_size() == *count) {
      bits.assign(tensor.int32_data().begin(), tensor.int32_data().end());
    } else {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat(what, " holds ", tensor.int32_data_size(), " values for ",
                                    *count));
    }
    values.resize(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) {
      values[i] = type == onnx::TensorProto::FLOAT16 ? HalfToFloat(bits[i])
                                                      : BFloat16ToFloat(bits[i]);
    }
  } else if (raw) {
    auto read = RawValues<float>(node, tensor, *count);
    if (!read.ok()) return read.status();
    values = std::move(*read);
  } else {
    if (tensor.float_data_size() != *count) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat(what, " holds ", tensor.float_data_size(),
                                    " values for ", *count));
    }
    values.assign(tensor.float_data().begin(), tensor.float_data().end());
  }
  for (float v : values) {
    if (!std::isfinite(v)) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat(what, " holds NaN or Inf"));
    }
  }
  return values;
}

absl::StatusOr<std::vector<int32_t>> OnnxGraph::Bytes(const onnx::NodeProto& node,
                                                      const onnx::TensorProto& tensor) const {
  const int type = tensor.data_type();
  if (type != onnx::TensorProto::INT8 && type != onnx::TensorProto::UINT8) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("initializer '", tensor.name(), "' has data type ",
                                  TypeName(type), "; expected INT8 or UINT8"));
  }
  auto count = ValueCount(node, tensor);
  if (!count.ok()) return count.status();
  std::vector<int32_t> values;
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL || !tensor.raw_data().empty()) {
    auto read = RawValues<uint8_t>(node, tensor, *count);
    if (!read.ok()) return read.status();
    values.reserve(read->size());
    for (uint8_t byte : *read) {
      values.push_back(type == onnx::TensorProto::INT8 ? static_cast<int8_t>(byte) : byte);
    }
    return values;
  }
  // Without raw bytes ONNX keeps 8-bit values in int32_data.
  if (tensor.int32_data_size() != *count) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("initializer '", tensor.name(), "' holds ",
                                  tensor.int32_data_size(), " values for ", *count));
  }
  const int32_t low = type == onnx::TensorProto::INT8 ? -128 : 0;
  const int32_t high = type == onnx::TensorProto::INT8 ? 127 : 255;
  for (int32_t v : tensor.int32_data()) {
    if (v < low || v > high) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat("initializer '", tensor.name(), "' holds ", v,
                                    ", outside ", TypeName(type)));
    }
    values.push_back(v);
  }
  return values;
}

absl::StatusOr<std::vector<float>> OnnxGraph::InputFloats(const onnx::NodeProto& node,
                                                          int index) const {
  auto tensor = Weight(node, index);
  if (!tensor.ok()) return tensor.status();
  return Floats(node, **tensor);
}

absl::StatusOr<std::vector<int64_t>> OnnxGraph::InputInts(const onnx::NodeProto& node,
                                                          int index) const {
  auto tensor = Weight(node, index);
  if (!tensor.ok()) return tensor.status();
  const onnx::TensorProto& t = **tensor;
  if (t.data_type() != onnx::TensorProto::INT64 || t.dims_size() > 1 ||
      (t.dims_size() == 1 && (t.dims(0) < 0 || t.dims(0) > 16))) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat("input '", t.name(), "' is not a short list of int64"));
  }
  const int64_t count = t.dims_size() == 0 ? 1 : t.dims(0);
  if (t.data_location() != onnx::TensorProto::EXTERNAL && t.raw_data().empty()) {
    if (t.int64_data_size() != count) {
      return NodeError(absl::StatusCode::kInvalidArgument, node,
                       absl::StrCat("input '", t.name(), "' holds ", t.int64_data_size(),
                                    " values for ", count));
    }
    return std::vector<int64_t>(t.int64_data().begin(), t.int64_data().end());
  }
  std::vector<int64_t> values;
  if (absl::Status read = ReadRaw(node, t, static_cast<uint64_t>(count) * sizeof(int64_t),
                                  [&] {
                                    values.resize(count);
                                    return reinterpret_cast<char*>(values.data());
                                  });
      !read.ok()) {
    return read;
  }
  return values;
}

absl::Status OnnxGraph::CheckDataFileSizes(uint64_t graph_bytes, uint64_t limit) const {
  if (graph_bytes > limit) {
    return Error(absl::StatusCode::kResourceExhausted,
                 absl::StrCat("the graph is ", graph_bytes, " bytes, over the limit of ", limit,
                              " bytes for a model's files"));
  }
  if (base_dir_.empty()) return absl::OkStatus();
  std::set<std::string> counted;
  uint64_t total = graph_bytes;
  for (const auto& tensor : graph_.initializer()) {
    if (tensor.data_location() != onnx::TensorProto::EXTERNAL) continue;
    for (const auto& entry : tensor.external_data()) {
      if (entry.key() != "location" || entry.value().empty()) continue;
      const std::string path = absl::StrCat(base_dir_, "/", entry.value());
      if (!counted.insert(path).second) continue;
      struct stat info;
      if (stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) continue;
      total += static_cast<uint64_t>(info.st_size);
      if (total > limit) {
        return Error(absl::StatusCode::kResourceExhausted,
                     absl::StrCat("external data file '", entry.value(), "' is ", info.st_size,
                                  " bytes, which brings the model's files to ", total,
                                  " bytes, over the limit of ", limit, " bytes"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status OnnxGraph::ReadExternal(const onnx::NodeProto& node,
                                     const onnx::TensorProto& tensor, uint64_t bytes,
                                     const std::function<char*()>& allocate) const {
  const std::string what = absl::StrCat("initializer '", tensor.name(), "'");
  auto refuse = [&](absl::string_view why) {
    return NodeError(absl::StatusCode::kInvalidArgument, node,
                     absl::StrCat(what, " (external data): ", why));
  };
  if (base_dir_.empty()) return refuse("no model directory to read it from");
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const auto& entry : tensor.external_data()) {
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset" || entry.key() == "length") {
      uint64_t value;
      if (!absl::SimpleAtoi(entry.value(), &value)) {
        return refuse(absl::StrCat(entry.key(), " '", entry.value(),
                                   "' is not a non-negative integer"));
      }
      (entry.key() == "offset" ? offset : length.emplace()) = value;
    }
  }
  // Only files beside the model: a location may not reach elsewhere.
  const std::filesystem::path relative(location);
  if (location.empty()) return refuse("no location");
  if (relative.is_absolute()) return refuse(absl::StrCat("location '", location, "' is absolute"));
  for (const auto& part : relative) {
    if (part == "..") return refuse(absl::StrCat("location '", location, "' contains '..'"));
  }
  std::error_code error;
  const std::filesystem::path dir = std::filesystem::canonical(base_dir_, error);
  if (error) return refuse(absl::StrCat("model directory: ", error.message()));
  const std::filesystem::path file = std::filesystem::canonical(dir / relative, error);
  if (error) return refuse(absl::StrCat("'", location, "': ", error.message()));
  const std::string dir_prefix = dir.string() + "/";
  if (file.string().compare(0, dir_prefix.size(), dir_prefix) != 0) {
    return refuse(absl::StrCat("'", location, "' resolves outside the model's directory"));
  }
  if (length && *length != bytes) {
    return refuse(absl::StrCat("length ", *length, " disagrees with its shape (", bytes,
                               " bytes)"));
  }
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return refuse(absl::StrCat("'", location, "': ", std::strerror(errno)));
  struct stat info;
  const bool sized = fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
  if (!sized || offset > static_cast<uint64_t>(info.st_size) ||
      static_cast<uint64_t>(info.st_size) - offset < bytes) {
    close(fd);
    return refuse(absl::StrCat("'", location, "' is ", sized ? info.st_size : 0,
                               " bytes, shorter than offset ", offset, " + length ", bytes));
  }
  char* const out = allocate();
  size_t done = 0;
  while (done < bytes) {
    const ssize_t got =
        pread(fd, out + done, bytes - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  close(fd);
  if (done != bytes) return refuse(absl::StrCat("'", location, "': read failed"));
  return absl::OkStatus();
}

int64_t IntAttribute(const onnx::NodeProto& node, absl::string_view name, int64_t fallback) {
  for (const auto& attribute : node.attribute()) {
    if (attribute.name() == name) return attribute.i();
  }
  return fallback;
}

float FloatAttribute(const onnx::NodeProto& node, absl::string_view name, float fallback) {
  for (const auto& attribute : node.attribute()) {
    if (attribute.name() == name) return attribute.f();
  }
  return fallback;
}

std::string StringAttribute(const onnx::NodeProto& node, absl::string_view name,
                            absl::string_view fallback) {
  for (const auto& attribute : node.attribute()) {
    if (attribute.name() == name) return attribute.s();
  }
  return std::string(fallback);
}

bool HasAttribute(const onnx::NodeProto& node, absl::string_view name) {
  for (const auto& attribute : node.attribute()) {
    if (attribute.name() == name) return true;
  }
  return false;
}

std::vector<int64_t> IntsAttribute(const onnx::NodeProto& node, absl::string_view name) {
  for (const auto& attribute : node.attribute()) {
    if (attribute.name() == name) {
      return std::vector<int64_t>(attribute.ints().begin(), attribute.ints().end());
    }
  }
  return {};
}

}  // namespace seqserve
