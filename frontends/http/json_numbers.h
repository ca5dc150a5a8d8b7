// Floats in JSON answers, shared by the JSON encodings that nlohmann::json
// writes (the Open Inference Protocol's, TF Serving's).
#pragma once

#include <charconv>

namespace seqserve {

// An FP32 value as the double nearest its shortest decimal form, which JSON
// then prints as that form (-21.144819, not the float's full expansion
// -21.144819259643555); either text reads back as the same float.
inline double ShortestDecimal(float value) {
  char text[32];
  const std::to_chars_result printed = std::to_chars(text, text + sizeof text, value);
  double shortest = value;
  std::from_chars(text, printed.ptr, shortest);
  return shortest;
}

}  // namespace seqserve
