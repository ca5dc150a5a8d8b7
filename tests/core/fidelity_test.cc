// How far seqserve's numbers are from PyTorch's, measured per layer family
// over every model the tests hold PyTorch's outputs for: the reference
// models (tests/data/reference/*.onnx, packed/, modern/) and every layer
// form (layers/, ONNX and the native text format). Each family's largest
// deviation must stay within the bound README.md states for it: the column
// "max error vs PyTorch" of the supported-layers table in "Serving your own
// model" (and the opening paragraph's overall bound). Change both together.
// The bounds are the largest deviations on every instruction set the
// Linear kernel runs (AVX-512 and AVX2 give the same bits; plain x86-64,
// without FMA, its own), rounded up to two digits; tests/CMakeLists.txt
// runs this suite under each (Core.LinearFallback*).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/onnx_loader.h"
#include "core/text_loader.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

namespace fs = std::filesystem;

// Values of this magnitude and above are measured by relative error,
// smaller ones by absolute error: the split the reference set's tolerance
// (1e-5 relative + 1e-6 absolute) makes.
constexpr double kRelativeFrom = 0.1;

// One row of the README's table: the torch modules it covers and the
// bounds it states (relative for |PyTorch value| >= kRelativeFrom, absolute
// below). Modules that give PyTorch's bits for the same input (clamps,
// pass-through) are `exact`: a model counts for them only when every other
// layer in it is a Linear or exact, so another layer's rounding is not
// charged to them.
struct Family {
  const char* name;
  std::set<std::string> modules;
  std::set<std::string> exact;
  double relative;
  double absolute;
};

const std::vector<Family>& Families() {
  static const std::vector<Family> families = {
      {"Linear", {}, {}, 1.8e-6, 2.3e-7},
      {"ReLU, Tanh, Sigmoid (hidden)", {"Tanh", "Sigmoid"}, {"ReLU"}, 1.8e-6, 2.3e-7},
      {"LeakyReLU, ELU", {"LeakyReLU", "ELU"}, {}, 1.5e-6, 9.7e-8},
      {"BatchNorm1d", {"BatchNorm1d"}, {}, 1.5e-6, 4.2e-7},
      {"LayerNorm", {"LayerNorm"}, {}, 1.1e-6, 1.1e-7},
      {"GELU", {"GELU"}, {}, 1.5e-6, 1.5e-7},
      {"SiLU", {"SiLU"}, {}, 3.7e-7, 7.5e-8},
      {"Hardtanh, ReLU6", {}, {"Hardtanh", "ReLU6"}, 6.7e-7, 1.5e-7},
      {"PReLU", {"PReLU"}, {}, 5.5e-7, 6.0e-8},
      {"SELU", {"SELU"}, {}, 6.2e-7, 8.2e-8},
      {"CELU", {"CELU"}, {}, 2.6e-7, 8.2e-8},
      {"Softplus", {"Softplus"}, {}, 3.2e-7, 5.6e-8},
      {"Softsign", {"Softsign"}, {}, 4.6e-7, 3.8e-8},
      {"Hardsigmoid", {"Hardsigmoid"}, {}, 2.2e-7, 3.8e-8},
      {"Hardswish", {"Hardswish"}, {}, 3.6e-7, 6.8e-8},
      {"Mish", {"Mish"}, {}, 2.3e-7, 1.4e-7},
      {"Dropout, Identity", {}, {"Dropout", "Identity"}, 2.4e-7, 4.5e-8},
      // Heads, over every model's outputs (each includes its body's error).
      {"Sigmoid head", {}, {}, 6.5e-7, 6.0e-8},
      {"Softmax head", {}, {}, 4.4e-7, 3.0e-8},
      // No log-probability in the set is below 0.1 in magnitude.
      {"LogSoftmax head", {}, {}, 6.3e-7, 0.0},
  };
  return families;
}

// The whole set: the README's opening claim.
constexpr double kOverallRelative = 1.8e-6;
constexpr double kOverallAbsolute = 4.2e-7;

struct Deviation {
  double relative = 0;  // over values with |PyTorch| >= kRelativeFrom
  double absolute = 0;  // over values with |PyTorch| < kRelativeFrom
  double largest_absolute = 0;  // over every value, for the record
  size_t values = 0;
  std::set<std::string> models;

  void Add(const std::vector<float>& got, const std::vector<float>& want,
           const std::string& model) {
    ASSERT_EQ(got.size(), want.size()) << model;
    for (size_t i = 0; i < want.size(); ++i) {
      const double d = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
      const double w = std::fabs(static_cast<double>(want[i]));
      if (w >= kRelativeFrom) {
        relative = std::max(relative, d / w);
      } else {
        absolute = std::max(absolute, d);
      }
      largest_absolute = std::max(largest_absolute, d);
    }
    values += want.size();
    models.insert(model);
  }
};

// Every model file with PyTorch's numbers, with the name of its reference.
std::vector<std::pair<std::string, std::string>> ModelFiles() {
  std::vector<std::string> names = testing::ReferenceNames();
  for (const char* name : {"modern", "layers"}) {
    std::vector<std::string> folders;
    for (const auto& entry : fs::directory_iterator(testing::ReferenceDir() + "/" + name)) {
      folders.push_back(std::string(name) + "/" + entry.path().filename().string());
    }
    std::sort(folders.begin(), folders.end());
    names.insert(names.end(), folders.begin(), folders.end());
  }
  std::vector<std::pair<std::string, std::string>> files;
  for (const std::string& name : names) {
    const bool folder = fs::is_directory(testing::ReferenceDir() + "/" + name);
    const std::string base = testing::ReferenceDir() + "/" + name;
    files.push_back({name, folder ? base + "/model.onnx" : base + ".onnx"});
    if (folder && fs::exists(base + "/model.textproto")) {
      files.push_back({name, base + "/model.textproto"});
    }
  }
  return files;
}

// torch's module class names of the body, without a final head module.
std::vector<std::string> BodyModules(const std::vector<std::string>& layers) {
  std::vector<std::string> body;
  for (const std::string& layer : layers) body.push_back(layer.substr(0, layer.find('(')));
  if (!body.empty() &&
      (body.back() == "Sigmoid" || body.back() == "Softmax" || body.back() == "LogSoftmax")) {
    body.pop_back();
  }
  return body;
}

// The families a model's logits count for.
std::vector<std::string> FamiliesOf(const std::vector<std::string>& body) {
  std::set<std::string> all_exact;
  for (const Family& family : Families()) all_exact.insert(family.exact.begin(), family.exact.end());
  bool only_exact = true;
  for (const std::string& module : body) {
    only_exact = only_exact && (module == "Linear" || all_exact.count(module) > 0);
  }
  std::vector<std::string> out;
  if (only_exact) out.push_back("Linear");
  for (const Family& family : Families()) {
    bool counts = false;
    for (const std::string& module : body) {
      counts = counts || family.modules.count(module) > 0 ||
               (only_exact && family.exact.count(module) > 0);
    }
    if (counts) out.push_back(family.name);
  }
  return out;
}

TEST(Fidelity, EveryLayerFamilyStaysWithinTheBoundTheReadmeStates) {
  std::map<std::string, Deviation> measured;
  Deviation overall;
  size_t files = 0;
  for (const auto& [name, file] : ModelFiles()) {
    auto reference = testing::LoadReference(name);
    ASSERT_TRUE(reference.ok()) << reference.status();
    const bool text = file.size() > 10 && file.substr(file.size() - 10) == ".textproto";
    auto model = text ? LoadTextModel(file) : LoadOnnxModel(file);
    ASSERT_TRUE(model.ok()) << model.status();
    ++files;
    const std::vector<std::string> body = BodyModules(reference->layers);
    for (const std::string& module : body) {
      bool known = module == "Linear";
      for (const Family& family : Families()) {
        known = known || family.modules.count(module) > 0 || family.exact.count(module) > 0;
      }
      EXPECT_TRUE(known) << file << ": module " << module << " is in no family";
    }
    const std::tuple<Head, const std::vector<float>*, const char*> outputs[] = {
        {Head::kLogits, &reference->logits, ""},
        {Head::kSigmoid, &reference->sigmoid, "Sigmoid head"},
        {Head::kSoftmax, &reference->softmax, "Softmax head"},
        {Head::kLogSoftmax, &reference->log_softmax, "LogSoftmax head"}};
    for (const auto& [head, expected, head_family] : outputs) {
      if (expected->empty()) continue;  // older files have no log_softmax
      auto scores = (*model)->Predict(reference->inputs, reference->rows, head);
      ASSERT_TRUE(scores.ok()) << scores.status();
      overall.Add(*scores, *expected, file);
      if (head == Head::kLogits) {
        for (const std::string& family : FamiliesOf(body)) {
          measured[family].Add(*scores, *expected, file);
        }
      } else {
        measured[head_family].Add(*scores, *expected, file);
      }
    }
  }
  std::printf("%zu model files; relative error for |PyTorch| >= %g, absolute below\n", files,
              kRelativeFrom);
  EXPECT_EQ(files, 112u) << "the README's opening paragraph counts 112 model files";
  std::printf("%-30s %6s %7s %12s %12s %12s\n", "family", "models", "values", "max rel",
              "max abs", "(abs, all)");
  for (const Family& family : Families()) {
    const Deviation& d = measured[family.name];
    std::printf("%-30s %6zu %7zu %12.3e %12.3e %12.3e\n", family.name, d.models.size(), d.values,
                d.relative, d.absolute, d.largest_absolute);
    EXPECT_GT(d.values, 0u) << family.name << ": no model measures it";
    EXPECT_LE(d.relative, family.relative) << family.name;
    EXPECT_LE(d.absolute, family.absolute) << family.name;
  }
  std::printf("%-30s %6zu %7zu %12.3e %12.3e %12.3e\n", "all", overall.models.size(),
              overall.values, overall.relative, overall.absolute, overall.largest_absolute);
  EXPECT_LE(overall.relative, kOverallRelative);
  EXPECT_LE(overall.absolute, kOverallAbsolute);
}

}  // namespace
}  // namespace seqserve
