#include "serving/output_mode_name.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace seqserve {
namespace {

// An API enum's values and their two spellings: the enum name, and that
// name without the enum's prefix in lower case.
template <typename Enum>
struct Spelling {
  const google::protobuf::EnumDescriptor* descriptor;
  absl::string_view prefix;

  std::string Short(Enum value) const {
    const auto* found = descriptor->FindValueByNumber(value);
    return found == nullptr ? absl::StrCat(static_cast<int>(value))
                            : absl::AsciiStrToLower(absl::StripPrefix(found->name(), prefix));
  }
  std::optional<Enum> Parse(absl::string_view name) const {
    for (int i = 0; i < descriptor->value_count(); ++i) {
      const auto* value = descriptor->value(i);
      const Enum number = static_cast<Enum>(value->number());
      if (name == value->name() || name == Short(number)) return number;
    }
    return std::nullopt;
  }
  std::string ShortNames() const {
    std::vector<std::string> names;
    for (int i = 0; i < descriptor->value_count(); ++i) {
      names.push_back(Short(static_cast<Enum>(descriptor->value(i)->number())));
    }
    return absl::StrJoin(names, ", ");
  }
};

// Made on first use: descriptors are not for static initialisers.
const Spelling<v1::OutputMode>& OutputModes() {
  static const Spelling<v1::OutputMode> spelling{v1::OutputMode_descriptor(), "OUTPUT_MODE_"};
  return spelling;
}
const Spelling<v1::AttributionMethod>& Methods() {
  static const Spelling<v1::AttributionMethod> spelling{v1::AttributionMethod_descriptor(),
                                                        "ATTRIBUTION_METHOD_"};
  return spelling;
}
const Spelling<v1::IntegrationRule>& Rules() {
  static const Spelling<v1::IntegrationRule> spelling{v1::IntegrationRule_descriptor(),
                                                      "INTEGRATION_RULE_"};
  return spelling;
}

// The API's name for `name` in either spelling of the enum a top-level key
// holds; nullopt for other keys and names.
std::optional<std::string> ApiName(absl::string_view key, absl::string_view name) {
  if (key == "output") {
    if (auto mode = OutputModes().Parse(name)) return v1::OutputMode_Name(*mode);
  } else if (key == "method") {
    if (auto method = Methods().Parse(name)) return v1::AttributionMethod_Name(*method);
  } else if (key == "rule") {
    if (auto rule = Rules().Parse(name)) return v1::IntegrationRule_Name(*rule);
  }
  return std::nullopt;
}

}  // namespace

std::string OutputModeName(v1::OutputMode mode) { return OutputModes().Short(mode); }

std::optional<v1::OutputMode> ParseOutputMode(absl::string_view name) {
  return OutputModes().Parse(name);
}

std::string OutputModeNames() { return OutputModes().ShortNames(); }

std::string AttributionMethodShortName(v1::AttributionMethod method) {
  return Methods().Short(method);
}

std::optional<v1::AttributionMethod> ParseAttributionMethodName(absl::string_view name) {
  return Methods().Parse(name);
}

std::string IntegrationRuleShortName(v1::IntegrationRule rule) { return Rules().Short(rule); }

std::optional<v1::IntegrationRule> ParseIntegrationRuleName(absl::string_view name) {
  return Rules().Parse(name);
}

std::optional<std::string> WithApiEnumNames(absl::string_view json) {
  auto skip_spaces = [json](size_t at) {
    while (at < json.size() && absl::ascii_isspace(static_cast<unsigned char>(json[at]))) ++at;
    return at;
  };
  std::optional<std::string> rewritten;
  size_t copied = 0;  // json before this is in `rewritten`
  int depth = 0;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
    if (c != '"') continue;
    size_t end = i + 1;  // the string's closing quote
    while (end < json.size() && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
    if (end >= json.size()) return std::nullopt;
    const absl::string_view key = json.substr(i + 1, end - i - 1);
    i = end;
    if (depth != 1 || (key != "output" && key != "method" && key != "rule")) continue;
    size_t value = skip_spaces(end + 1);
    if (value >= json.size() || json[value] != ':') continue;
    value = skip_spaces(value + 1);
    if (value >= json.size() || json[value] != '"') continue;
    const size_t value_end = json.find_first_of("\"\\", value + 1);
    if (value_end == absl::string_view::npos || json[value_end] != '"') continue;
    const absl::string_view name = json.substr(value + 1, value_end - value - 1);
    const std::optional<std::string> api = ApiName(key, name);
    i = value_end;  // past the value: it is no key
    if (!api || name == *api) continue;
    // One pass, copying each byte once, however many keys the body repeats.
    if (!rewritten) rewritten.emplace().reserve(json.size() + 64);
    absl::StrAppend(&*rewritten, json.substr(copied, value + 1 - copied), *api);
    copied = value_end;
  }
  if (rewritten) absl::StrAppend(&*rewritten, json.substr(copied));
  return rewritten;
}

}  // namespace seqserve
