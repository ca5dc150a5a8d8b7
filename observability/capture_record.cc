#include "observability/capture_record.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "serving/client_text.h"
#include "serving/output_mode_name.h"

namespace seqserve {
namespace {

// Client text in a record is kept whole (a category is data, not a log
// line), only escaped.
constexpr size_t kUncut = size_t{1} << 30;

void AppendNumber(std::string* out, float value) {
  if (!std::isfinite(value)) {
    out->append("null");
    return;
  }
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (error != std::errc()) {
    out->append("null");
    return;
  }
  out->append(buffer, end);
}

void AppendText(std::string* out, absl::string_view text) {
  // Printable ASCII without a quote or backslash is written as it is by
  // JsonQuoteClientText too: the common case, without its string.
  bool plain = text.size() < kUncut;
  for (const char c : text) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (!plain) {
    out->append(JsonQuoteClientText(text, kUncut));
    return;
  }
  out->push_back('"');
  out->append(text.data(), text.size());
  out->push_back('"');
}

void AppendNumbers(std::string* out, const std::vector<float>& values, size_t begin, size_t count) {
  out->push_back('[');
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out->push_back(',');
    AppendNumber(out, values[begin + i]);
  }
  out->push_back(']');
}

// "2026-12-05T13:00:00.123456Z". The writer formats one record after
// another, mostly within the same second: the part up to the second is
// formatted once per second.
void AppendTime(std::string* out, absl::Time time) {
  struct Cached {
    int64_t second = std::numeric_limits<int64_t>::min();
    std::string text;  // "2026-12-05T13:00:00"
  };
  thread_local Cached cached;
  const int64_t micros = absl::ToUnixMicros(time);
  if (micros <= std::numeric_limits<int64_t>::min() + 1000000 ||
      micros == std::numeric_limits<int64_t>::max()) {  // beyond int64 microseconds
    out->append(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone()));
    return;
  }
  const int64_t second = micros >= 0 ? micros / 1000000 : (micros - 999999) / 1000000;
  if (second != cached.second) {
    cached.second = second;
    cached.text = absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(second),
                                   absl::UTCTimeZone());
  }
  const int64_t fraction = micros - second * 1000000;
  char digits[8] = {'.', '0', '0', '0', '0', '0', '0', 'Z'};
  for (int i = 6, rest = static_cast<int>(fraction); i >= 1; --i, rest /= 10) {
    digits[i] = static_cast<char>('0' + rest % 10);
  }
  out->append(cached.text);
  out->append(digits, sizeof(digits));
}

}  // namespace

std::shared_ptr<const CaptureShape> MakeCaptureShape(const ServedModel& served,
                                                     size_t features) {
  auto shape = std::make_shared<CaptureShape>();
  shape->capture = served.config.capture();
  shape->capture_key = shape->capture.SerializeAsString();
  shape->labels.assign(served.config.labels().begin(), served.config.labels().end());
  const bool named = features == static_cast<size_t>(served.config.feature_names_size());
  shape->feature_names.reserve(features);
  shape->feature_keys.reserve(features);
  for (size_t f = 0; f < features; ++f) {
    shape->feature_names.push_back(named ? served.config.feature_names(static_cast<int>(f))
                                         : absl::StrCat("feature_", f));
    std::string key;
    AppendText(&key, shape->feature_names.back());
    key.push_back(':');
    shape->feature_keys.push_back(std::move(key));
  }
  return shape;
}

size_t CapturedCall::bytes() const {
  size_t total = sizeof(CapturedCall) + model.size() + protocol.size() + request_id.size() +
                 caller.size();
  for (const std::string& text : categories) total += text.size() + sizeof(std::string);
  for (const std::string& label : predicted_label) total += label.size() + sizeof(std::string);
  total += sizeof(float) * (features.size() + inputs.size() + scores.size() +
                            predicted_score.size() + predicted_index.size());
  return total;
}

CapturedCall CopyPayload(const PayloadRecord& record,
                         std::shared_ptr<const CaptureShape> shape) {
  CapturedCall call;
  const ServedModel& served = *record.served;
  call.model = served.name;
  call.version = served.version;
  call.protocol = std::string(record.protocol);
  call.request_id = std::string(record.request_id);
  call.caller = std::string(record.caller);
  call.time = record.time;

  const RawRowsView& raw = *record.raw;
  const size_t features = raw.features();
  call.rows = raw.rows();
  if (shape == nullptr || shape->feature_names.size() != features) {
    shape = MakeCaptureShape(served, features);
  }
  call.shape = std::move(shape);
  call.features.resize(call.rows * features);
  bool any_category = false;
  for (size_t r = 0; r < call.rows; ++r) {
    for (size_t f = 0; f < features; ++f) {
      call.features[r * features + f] = raw.number(r, f);
      if (!raw.category(r, f).empty()) any_category = true;
    }
  }
  if (any_category) {
    call.categories.resize(call.rows * features);
    for (size_t r = 0; r < call.rows; ++r) {
      for (size_t f = 0; f < features; ++f) {
        call.categories[r * features + f] = std::string(raw.category(r, f));
      }
    }
  }

  call.input_width = call.rows == 0 ? 0 : record.inputs.size() / call.rows;
  call.inputs.assign(record.inputs.begin(), record.inputs.end());

  const v1::ClassifyResponse& response = *record.response;
  call.output = response.output();
  call.output_width = response.results_size() == 0 ? 0 : response.results(0).scores_size();
  call.scores.reserve(call.output_width * response.results_size());
  for (const v1::RowResult& row : response.results()) {
    for (size_t i = 0; i < call.output_width; ++i) {
      call.scores.push_back(static_cast<int>(i) < row.scores_size()
                                ? row.scores(static_cast<int>(i))
                                : std::numeric_limits<float>::quiet_NaN());
    }
    call.predicted_index.push_back(row.predicted_index());
    call.predicted_label.push_back(row.predicted_label());
    call.predicted_score.push_back(row.score());
  }
  return call;
}

std::string FormatCapturedCall(const CapturedCall& call) {
  std::string out;
  out.reserve(256 + call.rows * (32 + 12 * (call.shape->feature_names.size() + call.input_width +
                                            call.output_width)));
  absl::StrAppend(&out, "{\"model\":");
  AppendText(&out, call.model);
  absl::StrAppend(&out, ",\"version\":", call.version, ",\"time\":\"");
  AppendTime(&out, call.time);
  out.append("\",\"request_id\":");
  AppendText(&out, call.request_id);
  out.append(",\"caller\":");
  AppendText(&out, call.caller);
  out.append(",\"protocol\":");
  AppendText(&out, call.protocol);
  out.append(",\"output\":");
  AppendText(&out, OutputModeName(call.output));
  const CaptureShape& shape = *call.shape;
  out.append(",\"labels\":[");
  for (size_t i = 0; i < shape.labels.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendText(&out, shape.labels[i]);
  }
  out.append("],\"rows\":[");
  const size_t features = shape.feature_keys.size();
  const size_t answered = call.predicted_index.size();
  // Without preprocessing the inputs are the features again: their text is
  // copied from the features' rather than formatted twice.
  const bool inputs_are_features = call.categories.empty() && call.input_width == features &&
                                   call.inputs.size() == call.features.size() &&
                                   !call.inputs.empty() &&
                                   std::memcmp(call.inputs.data(), call.features.data(),
                                               sizeof(float) * call.inputs.size()) == 0;
  std::vector<std::pair<size_t, size_t>> number_text;  // a row's features: begin, end in `out`
  if (inputs_are_features) number_text.resize(features);
  for (size_t r = 0; r < call.rows; ++r) {
    if (r > 0) out.push_back(',');
    out.append("{\"features\":{");
    for (size_t f = 0; f < features; ++f) {
      if (f > 0) out.push_back(',');
      out.append(shape.feature_keys[f]);
      const size_t at = r * features + f;
      if (!call.categories.empty() && !call.categories[at].empty()) {
        AppendText(&out, call.categories[at]);
      } else {
        const size_t begin = out.size();
        AppendNumber(&out, call.features[at]);  // NaN (missing) is null
        if (inputs_are_features) number_text[f] = {begin, out.size()};
      }
    }
    out.append("},\"inputs\":");
    if (inputs_are_features) {
      out.push_back('[');
      for (size_t f = 0; f < features; ++f) {
        if (f > 0) out.push_back(',');
        const auto [begin, end] = number_text[f];
        out.append(out, begin, end - begin);
      }
      out.push_back(']');
    } else {
      AppendNumbers(&out, call.inputs, r * call.input_width, call.input_width);
    }
    if (r < answered) {
      out.append(",\"scores\":");
      AppendNumbers(&out, call.scores, r * call.output_width, call.output_width);
      absl::StrAppend(&out, ",\"predicted_index\":", call.predicted_index[r],
                      ",\"predicted_label\":");
      AppendText(&out, call.predicted_label[r]);
      out.append(",\"score\":");
      AppendNumber(&out, call.predicted_score[r]);
    }
    out.push_back('}');
  }
  out.append("]}");
  return out;
}

}  // namespace seqserve
