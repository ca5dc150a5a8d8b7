#include "frontends/http/json_limits.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace seqserve {
namespace {

using nlohmann::json;

// Counts as the parser reads; returning false stops the parse at once.
// Nothing is kept of what is read, so memory is the parser's own stack of
// open containers, which max_depth bounds.
class LimitCounter : public nlohmann::json_sax<json> {
 public:
  explicit LimitCounter(const JsonLimits& limits) : limits_(limits) {}

  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }  // not in JSON text
  bool key(string_t&) override { return Value(); }
  bool start_object(std::size_t) override { return Open(); }
  bool start_array(std::size_t) override { return Open(); }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    // The exception's text quotes the last token read: client text, never
    // repeated. Only where it stopped is said.
    syntax_error_ = true;
    error_position_ = position;
    return false;
  }

  enum class Exceeded { kNothing, kDepth, kValues };

  Exceeded exceeded() const { return exceeded_; }
  bool syntax_error() const { return syntax_error_; }
  std::size_t error_position() const { return error_position_; }

 private:
  bool Value() {
    if (++values_ > limits_.max_values) {
      exceeded_ = Exceeded::kValues;
      return false;
    }
    return true;
  }
  bool Open() {
    if (++depth_ > limits_.max_depth) {
      exceeded_ = Exceeded::kDepth;
      return false;
    }
    return Value();
  }
  bool Close() {
    --depth_;
    return true;
  }

  const JsonLimits limits_;
  int depth_ = 0;
  uint64_t values_ = 0;
  Exceeded exceeded_ = Exceeded::kNothing;
  bool syntax_error_ = false;
  std::size_t error_position_ = 0;
};

}  // namespace

absl::Status CheckJsonLimits(absl::string_view body, absl::string_view context,
                             const JsonLimits& limits) {
  LimitCounter counter(limits);
  if (json::sax_parse(body.begin(), body.end(), &counter)) return absl::OkStatus();
  std::string reason;
  if (counter.exceeded() == LimitCounter::Exceeded::kDepth) {
    reason = absl::StrCat("JSON nested deeper than ", limits.max_depth, " levels");
  } else if (counter.exceeded() == LimitCounter::Exceeded::kValues) {
    reason = absl::StrCat("JSON has more than ", limits.max_values, " values");
  } else if (counter.error_position() > body.size()) {
    // The parser counts the end of input as a byte read.
    reason = "JSON ends before it is complete";
  } else {
    // The parser counts from 1: the byte it stopped at, from 0.
    reason = absl::StrCat("JSON syntax error at byte ", counter.error_position() - 1);
  }
  return absl::InvalidArgumentError(absl::StrCat(context, ": ", reason));
}

}  // namespace seqserve
