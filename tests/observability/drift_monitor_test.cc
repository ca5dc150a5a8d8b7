// The drift monitor without a server: rows drawn from the baseline keep
// every PSI low, shifted rows raise it, the window forgets, memory stays
// fixed, the log warns once per crossing, and the metrics pass promtool.
#include "observability/drift_monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/onnx_loader.h"
#include "nlohmann/json.hpp"
#include "tests/auth/log_capture.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Deciles of the standard normal distribution: ten bins of 10% each.
constexpr float kDeciles[] = {-1.2816f, -0.8416f, -0.5244f, -0.2533f, 0.0f,
                              0.2533f,  0.5244f,  0.8416f,  1.2816f};

v1::DriftBaseline NormalBaseline() {
  v1::DriftBaseline baseline;
  for (const char* name : {"x0", "x1"}) {
    v1::DriftBaseline::Feature* feature = baseline.add_features();
    feature->set_name(name);
    for (float edge : kDeciles) feature->add_edges(edge);
    for (int bin = 0; bin < 10; ++bin) feature->add_counts(1000);
  }
  v1::DriftBaseline::Feature* colour = baseline.add_features();
  colour->set_name("colour");
  colour->add_categories("red");
  colour->add_categories("green");
  for (int count : {500, 500, 0}) colour->add_counts(count);
  for (int c = 0; c < 3; ++c) baseline.add_class_counts(100);
  return baseline;
}

std::shared_ptr<const ServedModel> Served(const std::string& name, int64_t version,
                                          bool with_baseline, uint32_t window_rows) {
  static std::shared_ptr<const Sequential> species = [] {
    auto model = LoadOnnxModel(testing::ReferenceDir() + "/species.onnx");
    EXPECT_TRUE(model.ok()) << model.status();
    return std::shared_ptr<const Sequential>(std::move(*model));
  }();
  auto served = std::make_shared<ServedModel>();
  served->name = name;
  served->version = version;
  served->model = species;
  for (const char* label : {"bird", "mammal", "reptile"}) served->config.add_labels(label);
  for (const char* feature : {"x0", "x1", "colour"}) served->config.add_feature_names(feature);
  if (with_baseline) {
    served->config.mutable_drift()->set_window_rows(window_rows);
    served->config.mutable_drift()->set_psi_threshold(0.25f);
    served->drift_baseline = std::make_shared<v1::DriftBaseline>(NormalBaseline());
  }
  return served;
}

// Rows as a caller sends them: x0 ~ N(shift, 1), x1 ~ N(0, 1), colour red
// or green, predicted class uniform.
class Caller {
 public:
  explicit Caller(uint32_t seed) : random_(seed) {}

  void Send(DriftMonitor& monitor, const ServedModel& served, size_t rows, float shift = 0.0f,
            bool send_x1 = true) {
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> coin(0, 1), klass(0, 2);
    std::vector<float> numbers;
    google::protobuf::RepeatedPtrField<std::string> categories;
    v1::ClassifyResponse response;
    const size_t width = send_x1 ? 3 : 2;
    for (size_t r = 0; r < rows; ++r) {
      numbers.push_back(normal(random_) + shift);
      *categories.Add() = "";
      if (send_x1) {
        numbers.push_back(normal(random_));
        *categories.Add() = "";
      }
      numbers.push_back(std::nanf(""));
      *categories.Add() = coin(random_) ? "red" : "green";
      response.add_results()->set_predicted_index(static_cast<uint32_t>(klass(random_)));
    }
    std::vector<size_t> order = send_x1 ? std::vector<size_t>{0, 1, 2}
                                        : std::vector<size_t>{0, RawRowsView::kAbsent, 1};
    const RawRowsView raw(rows, width, numbers, categories, std::move(order));
    PayloadRecord record;
    record.served = &served;
    record.raw = &raw;
    record.response = &response;
    monitor.OnPayload(record);
  }

 private:
  std::mt19937 random_;
};

// The value of the one series whose line starts with `series` ("name{...}").
double Series(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  EXPECT_NE(at, std::string::npos) << series << " not in\n" << text;
  if (at == std::string::npos) return -1.0;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

std::string Labels(const std::string& feature = "") {
  return feature.empty() ? "{model=\"m\",version=\"1\"}"
                         : "{model=\"m\",version=\"1\",feature=\"" + feature + "\"}";
}

// At each lap's end the window's mean and variance are those of a fresh
// two-pass walk over its rows, bit for bit, missing and infinite values
// skipped; in between they keep following the rows.
TEST(DriftWindow, StatsAtEachLapEqualATwoPassWalkOfTheWindow) {
  constexpr size_t kCapacity = 37;
  DriftWindow window(std::make_shared<v1::DriftBaseline>(NormalBaseline()), kCapacity);
  std::mt19937 random(7);
  std::normal_distribution<float> normal(3.0f, 2.0f);
  std::uniform_int_distribution<int> pick(0, 19);
  std::vector<std::vector<float>> sent;  // x0 and x1 of each row
  for (size_t row = 0; row < 10 * kCapacity + 5; ++row) {
    float values[3];
    uint32_t bins[3];
    for (size_t f = 0; f < 2; ++f) {
      const int p = pick(random);
      values[f] = p == 0 ? std::nanf("") : p == 1 ? INFINITY : normal(random);
      bins[f] = window.NumberBin(f, values[f]);
    }
    values[2] = std::nanf("");
    bins[2] = window.CategoryBin(2, pick(random) < 10 ? "red" : "blue");
    window.Add(values, bins, 0);
    sent.push_back({values[0], values[1]});
    for (size_t f = 0; f < 2; ++f) {
      std::vector<float> kept;
      for (size_t r = sent.size() - std::min(sent.size(), kCapacity); r < sent.size(); ++r) {
        if (std::isfinite(sent[r][f])) kept.push_back(sent[r][f]);
      }
      double sum = 0.0;
      for (float x : kept) sum += x;
      const double mean = kept.empty() ? 0.0 : sum / static_cast<double>(kept.size());
      double m2 = 0.0;
      for (float x : kept) m2 += (x - mean) * (x - mean);
      const double variance = kept.empty() ? 0.0 : m2 / static_cast<double>(kept.size());
      const DriftWindow::FeatureStats stats = window.Stats(f);
      ASSERT_EQ(stats.count, kept.size()) << "row " << row;
      if ((row + 1) % kCapacity == 0) {
        ASSERT_EQ(stats.mean, mean) << "row " << row << " feature " << f;
        ASSERT_EQ(stats.variance, variance) << "row " << row << " feature " << f;
      } else {
        ASSERT_NEAR(stats.mean, mean, 1e-9 * (1.0 + std::abs(mean)));
        ASSERT_NEAR(stats.variance, variance, 1e-9 * (1.0 + variance));
      }
    }
    ASSERT_EQ(window.Stats(2).count, std::min(sent.size(), kCapacity));
  }
}

TEST(DriftMonitor, RowsFromTheBaselineKeepEveryPsiLow) {
  DriftMonitor monitor;
  auto served = Served("m", 1, true, 2000);
  Caller caller(1);
  for (int call = 0; call < 50; ++call) caller.Send(monitor, *served, 100);
  const std::string text = monitor.MetricsText();
  EXPECT_EQ(Series(text, "seqserve_drift_window_rows" + Labels()), 2000);
  for (const char* feature : {"x0", "x1", "colour"}) {
    EXPECT_LT(Series(text, "seqserve_feature_psi" + Labels(feature)), 0.1) << feature;
  }
  EXPECT_LT(Series(text, "seqserve_prediction_psi" + Labels()), 0.1);
  EXPECT_NEAR(Series(text, "seqserve_feature_window_mean" + Labels("x0")), 0.0, 0.1);
  // Every answered row counted by label, whatever the window holds.
  double predicted = 0;
  for (const char* label : {"bird", "mammal", "reptile"}) {
    predicted += Series(text, absl::StrCat("seqserve_predictions_total{model=\"m\",version=\"1\","
                                           "label=\"", label, "\"}"));
  }
  EXPECT_EQ(predicted, 5000);
}

TEST(DriftMonitor, ShiftedRowsRaiseThePsiAndTheWindowForgetsThem) {
  DriftMonitor monitor;
  auto served = Served("m", 1, true, 2000);
  Caller caller(2);
  for (int call = 0; call < 20; ++call) caller.Send(monitor, *served, 100, 2.0f);
  std::string text = monitor.MetricsText();
  EXPECT_GT(Series(text, "seqserve_feature_psi" + Labels("x0")), 0.25);
  EXPECT_LT(Series(text, "seqserve_feature_psi" + Labels("x1")), 0.1);
  EXPECT_NEAR(Series(text, "seqserve_feature_window_mean" + Labels("x0")), 2.0, 0.1);

  // One window of rows from the baseline pushes every shifted row out.
  for (int call = 0; call < 20; ++call) caller.Send(monitor, *served, 100);
  text = monitor.MetricsText();
  EXPECT_LT(Series(text, "seqserve_feature_psi" + Labels("x0")), 0.1);
  EXPECT_NEAR(Series(text, "seqserve_feature_window_mean" + Labels("x0")), 0.0, 0.1);

  const std::optional<std::string> report = monitor.ReportJson("m");
  ASSERT_TRUE(report.has_value());
  const nlohmann::json json = nlohmann::json::parse(*report);
  const nlohmann::json& drift = json["versions"][0]["drift"];
  EXPECT_EQ(drift["window_rows"], 2000);
  EXPECT_EQ(drift["features"][0]["name"], "x0");
  EXPECT_EQ(drift["features"][0]["bins"].size(), 10u);
  EXPECT_NEAR(drift["features"][0]["baseline"][0].get<double>(), 0.1, 1e-9);
  EXPECT_EQ(drift["features"][2]["bins"], nlohmann::json({"red", "green", "other"}));
  EXPECT_EQ(drift["prediction"]["labels"], nlohmann::json({"bird", "mammal", "reptile"}));
  EXPECT_FALSE(monitor.ReportJson("other").has_value());
}

TEST(DriftMonitor, NoPsiUntilTheWindowHoldsEnoughRows) {
  DriftMonitor monitor;
  auto served = Served("m", 1, true, 10000);
  Caller caller(3);
  caller.Send(monitor, *served, DriftMonitor::kMinRowsForPsi - 1, 3.0f);
  std::string text = monitor.MetricsText();
  EXPECT_EQ(Series(text, "seqserve_drift_window_rows" + Labels()), 499);
  EXPECT_THAT(text, Not(HasSubstr("seqserve_feature_psi{")));
  caller.Send(monitor, *served, 1, 3.0f);
  text = monitor.MetricsText();
  EXPECT_GT(Series(text, "seqserve_feature_psi" + Labels("x0")), 0.25);
}

TEST(DriftMonitor, AMissingValueIsSkippedForItsFeature) {
  DriftMonitor monitor;
  auto served = Served("m", 1, true, 1000);
  Caller caller(4);
  caller.Send(monitor, *served, 1000, 0.0f, /*send_x1=*/false);
  const std::string text = monitor.MetricsText();
  EXPECT_LT(Series(text, "seqserve_feature_psi" + Labels("x0")), 0.1);
  EXPECT_THAT(text, Not(HasSubstr(Labels("x1"))));
  const nlohmann::json json = nlohmann::json::parse(*monitor.ReportJson("m"));
  EXPECT_EQ(json["versions"][0]["drift"]["features"][1]["count"], 0);
  EXPECT_EQ(json["versions"][0]["drift"]["features"][0]["count"], 1000);
}

TEST(DriftMonitor, MemoryStaysFixedWhateverTheTraffic) {
  DriftMonitor monitor;
  auto served = Served("m", 1, true, 1000);
  Caller caller(5);
  caller.Send(monitor, *served, 1000);
  const size_t full = monitor.WindowBytes();
  // 1000 rows x 3 features x (value + bin) + classes, and little else.
  EXPECT_LT(full, 1000u * (3 * 8 + 4) + 4096);
  for (int call = 0; call < 100; ++call) caller.Send(monitor, *served, 100, static_cast<float>(call % 3));
  EXPECT_EQ(monitor.WindowBytes(), full);
  EXPECT_EQ(Series(monitor.MetricsText(), "seqserve_drift_window_rows" + Labels()), 1000);
}

TEST(DriftMonitor, WarnsOncePerCrossing) {
  testing::LogCapture log;
  DriftMonitor monitor;
  auto served = Served("m", 1, true, 1000);
  Caller caller(6);
  const std::string warning = "drift: model m version 1 feature 'x0' PSI";
  for (int call = 0; call < 30; ++call) caller.Send(monitor, *served, 100, 2.0f);
  ASSERT_EQ(log.Lines(warning).size(), 1u) << log.text();
  EXPECT_THAT(log.Lines(warning)[0], HasSubstr("warning"));
  EXPECT_THAT(log.Lines(warning)[0], HasSubstr("is above the threshold 0.250 over the last"));
  EXPECT_TRUE(log.Lines("feature 'x1'").empty()) << log.text();

  for (int call = 0; call < 20; ++call) caller.Send(monitor, *served, 100);
  ASSERT_EQ(log.Lines(warning).size(), 2u) << log.text();
  EXPECT_THAT(log.Lines(warning)[1], HasSubstr("is back under the threshold"));

  for (int call = 0; call < 20; ++call) caller.Send(monitor, *served, 100, -2.0f);
  const auto lines = log.Lines(warning);
  ASSERT_EQ(lines.size(), 3u) << log.text();
  EXPECT_THAT(lines[2], HasSubstr("warning"));
}

TEST(DriftMonitor, CountsPredictionsOfModelsWithoutABaselineAndForgetsUnservedVersions) {
  DriftMonitor monitor;
  auto plain = Served("plain", 3, false, 0);
  auto watched = Served("m", 1, true, 1000);
  Caller caller(7);
  caller.Send(monitor, *plain, 10);
  caller.Send(monitor, *watched, 10);
  std::string text = monitor.MetricsText();
  EXPECT_THAT(text, HasSubstr("seqserve_predictions_total{model=\"plain\",version=\"3\","
                              "label=\"bird\"}"));
  EXPECT_THAT(text, Not(HasSubstr("seqserve_drift_window_rows{model=\"plain\"")));
  EXPECT_EQ(monitor.versions(), 2u);

  RepositorySnapshot snapshot;
  snapshot.models["m"].versions[1].served = watched;
  snapshot.models["plain"].versions[3].state = v1::MODEL_STATE_FAILED;
  monitor.Retain(snapshot);
  EXPECT_EQ(monitor.versions(), 1u);
  text = monitor.MetricsText();
  EXPECT_THAT(text, Not(HasSubstr("model=\"plain\"")));
  EXPECT_THAT(text, HasSubstr("seqserve_drift_window_rows{model=\"m\",version=\"1\"} 10"));
}

TEST(DriftMonitor, AReloadedVersionStartsANewWindow) {
  DriftMonitor monitor;
  auto first = Served("m", 1, true, 1000);
  Caller caller(8);
  caller.Send(monitor, *first, 600);
  auto reloaded = Served("m", 1, true, 1000);  // a new baseline object
  caller.Send(monitor, *reloaded, 5);
  EXPECT_EQ(Series(monitor.MetricsText(), "seqserve_drift_window_rows" + Labels()), 5);
}

TEST(DriftMonitor, CountsEveryRowFromManyThreadsWhileScraped) {
  DriftMonitor monitor;
  auto served = Served("m", 1, true, 1000);
  // The version exists before the scraper starts: a report of a model never called is absent.
  Caller(99).Send(monitor, *served, 100);
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&monitor, &served, t] {
      Caller caller(100 + t);
      for (int call = 0; call < 50; ++call) caller.Send(monitor, *served, 100);
    });
  }
  threads.emplace_back([&monitor] {
    for (int scrape = 0; scrape < 20; ++scrape) {
      EXPECT_THAT(monitor.MetricsText(), HasSubstr("seqserve_predictions_total"));
      EXPECT_TRUE(monitor.ReportJson("m").has_value());
    }
  });
  for (auto& thread : threads) thread.join();
  const std::string text = monitor.MetricsText();
  double predicted = 0;
  for (const char* label : {"bird", "mammal", "reptile"}) {
    predicted += Series(text, absl::StrCat("seqserve_predictions_total{model=\"m\",version=\"1\","
                                           "label=\"", label, "\"}"));
  }
  EXPECT_EQ(predicted, 20100);
  EXPECT_EQ(Series(text, "seqserve_drift_window_rows" + Labels()), 1000);
  EXPECT_LT(Series(text, "seqserve_feature_psi" + Labels("x0")), 0.1);
}

TEST(DriftMonitor, TheMetricsPassPromtool) {
  DriftMonitor monitor;
  auto served = Served("m", 1, true, 1000);
  Caller caller(9);
  caller.Send(monitor, *served, 1000);
  const std::string path = ::testing::TempDir() + "/drift_metrics.txt";
  std::ofstream(path) << monitor.MetricsText();
  const std::string command = "promtool check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[256];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  EXPECT_EQ(pclose(pipe), 0) << output;
  EXPECT_EQ(output, "") << "promtool warned";
}

}  // namespace
}  // namespace seqserve
