// One captured Classify call, owned: what a PayloadRecord points at, copied
// on the inference thread so the writer can take its time. Written as one
// JSON line per call (a "rows" array holds the call's rows), the form of
// both the capture files and the CloudEvents' data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "seqserve/v1/classifier.pb.h"
#include "seqserve/v1/config.pb.h"
#include "serving/payload_observer.h"

namespace seqserve {

// What every record of one served version (and request width) shares,
// made once rather than copied per call.
struct CaptureShape {
  // Where the records go: the answering version's capture config, and it
  // serialized (what tells the writer a reload changed it).
  v1::CaptureConfig capture;
  std::string capture_key;
  // The model's features by name (its feature_names, else "feature_<i>"),
  // and each as the JSON key it is written as ("name":).
  std::vector<std::string> feature_names;
  std::vector<std::string> feature_keys;
  std::vector<std::string> labels;
};

// The shape of `served`'s records for calls of `features` raw features.
std::shared_ptr<const CaptureShape> MakeCaptureShape(const ServedModel& served,
                                                     size_t features);

struct CapturedCall {
  std::string model;
  int64_t version = 0;
  std::string protocol;
  std::string request_id;
  std::string caller;
  absl::Time time;
  // Shared with the version's other records; never null once copied.
  std::shared_ptr<const CaptureShape> shape;
  v1::OutputMode output = v1::OUTPUT_MODE_DEFAULT;  // as answered
  size_t rows = 0;
  // rows x shape->feature_names.size(): the number sent (NaN: missing), or the
  // category when `categories` holds a non-empty string there.
  std::vector<float> features;
  std::vector<std::string> categories;  // parallel to `features`, or empty
  // What the model read: rows x input_width.
  size_t input_width = 0;
  std::vector<float> inputs;
  // The answer: rows x output_width scores, and the predicted class per row.
  size_t output_width = 0;
  std::vector<float> scores;
  std::vector<uint32_t> predicted_index;
  std::vector<std::string> predicted_label;
  std::vector<float> predicted_score;

  // Bytes this record holds of its own, roughly (not the shared shape):
  // what the queues count against their bounds.
  size_t bytes() const;
};

// Copies what `record` points at; `shape` is MakeCaptureShape's for its
// version and raw width (made here when null).
CapturedCall CopyPayload(const PayloadRecord& record,
                         std::shared_ptr<const CaptureShape> shape = nullptr);

// The call as one JSON object on one line (no newline):
//   {"model":"species","version":1,"time":"2026-12-05T13:00:00.123456Z",
//    "request_id":"...","caller":"","protocol":"grpc","output":"softmax",
//    "labels":["bird","mammal","reptile"],
//    "rows":[{"features":{"limbs":4,"eggs":0,"hair":1},"inputs":[4,0,1],
//             "scores":[1.6e-17,1,1.5e-10],"predicted_index":1,
//             "predicted_label":"mammal","score":1}]}
// Numbers in float32's shortest round-trip form; a missing feature, and a
// value that is not finite, as null; client text escaped to ASCII.
std::string FormatCapturedCall(const CapturedCall& call);

}  // namespace seqserve
