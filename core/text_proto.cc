#include "core/text_proto.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace seqserve {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;

// Keeps the first syntax error with its position instead of logging it.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error_.empty()) {
      line_ = line + 1;
      column_ = column + 1;
      error_ = message;
    }
  }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& error() const { return error_; }

 private:
  int line_ = 0;
  int column_ = 0;
  std::string error_;
};

// The text between the first two double quotes after `after` in `text`.
std::string QuotedAfter(absl::string_view text, absl::string_view after) {
  const size_t start = text.find(after);
  if (start == absl::string_view::npos) return "";
  std::vector<absl::string_view> parts =
      absl::StrSplit(text.substr(start + after.size()), '"');
  return parts.size() >= 2 ? std::string(parts[1]) : "";
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The enum of a field named `name` in `type` or any message it holds.
const EnumDescriptor* FindEnumField(const Descriptor* type, const std::string& name,
                                    std::set<const Descriptor*>* seen) {
  if (!seen->insert(type).second) return nullptr;
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (field->name() == name && field->enum_type() != nullptr) return field->enum_type();
    if (field->message_type() != nullptr) {
      if (auto* found = FindEnumField(field->message_type(), name, seen)) return found;
    }
  }
  return nullptr;
}

// The prefix every value name of `type` starts with, up to and including
// an underscore ("OUTPUT_MODE_"); empty when they share none.
std::string SharedPrefix(const EnumDescriptor* type) {
  if (type->value_count() == 0) return "";
  std::string prefix = type->value(0)->name();
  for (int i = 1; i < type->value_count(); ++i) {
    const std::string& name = type->value(i)->name();
    size_t same = 0;
    while (same < prefix.size() && same < name.size() && prefix[same] == name[same]) ++same;
    prefix.resize(same);
  }
  const size_t underscore = prefix.rfind('_');
  prefix.resize(underscore == std::string::npos ? 0 : underscore + 1);
  return prefix;
}

// "unknown enumeration value" gains the valid values; "no field named"
// gains the nearest field name. Other errors are returned as they are.
std::string Explain(const std::string& error, const Descriptor* root) {
  if (error.find("Unknown enumeration value") != std::string::npos) {
    const std::string value = QuotedAfter(error, "value of");
    std::set<const Descriptor*> seen;
    const EnumDescriptor* type = FindEnumField(root, QuotedAfter(error, "for field"), &seen);
    if (type == nullptr) return error;
    std::vector<std::string> valid;
    std::string suggestion;
    for (int i = 0; i < type->value_count(); ++i) {
      const std::string& name = type->value(i)->name();
      valid.push_back(name);
      // The shortest name that ends in "_" + value: SOFTMAX, not LOG_SOFTMAX.
      if (suggestion.empty() && !value.empty() && name.size() > value.size() &&
          name.compare(name.size() - value.size() - 1, std::string::npos, "_" + value) == 0) {
        suggestion = name;
      }
    }
    const std::string prefix = SharedPrefix(type);
    return absl::StrCat(
        error, " Valid values: ", absl::StrJoin(valid, ", "), ".",
        prefix.empty() ? ""
                       : absl::StrCat(" Each may also be written in lower case without \"",
                                      prefix, "\"."),
        suggestion.empty() ? "" : absl::StrCat(" Did you mean ", suggestion, "?"));
  }
  if (error.find("has no field named") != std::string::npos) {
    const Descriptor* type =
        root->file()->pool()->FindMessageTypeByName(QuotedAfter(error, "Message type"));
    const std::string unknown = QuotedAfter(error, "no field named");
    if (type == nullptr || unknown.empty()) return error;
    std::string nearest;
    size_t best = unknown.size();  // no closer than rewriting every letter
    std::vector<std::string> fields;
    for (int i = 0; i < type->field_count(); ++i) {
      const std::string& name = type->field(i)->name();
      fields.push_back(name);
      const size_t distance = EditDistance(unknown, name);
      if (distance < best) {
        best = distance;
        nearest = name;
      }
    }
    if (!nearest.empty() && best <= std::max<size_t>(2, unknown.size() / 3)) {
      return absl::StrCat(error, " Did you mean \"", nearest, "\"?");
    }
    return absl::StrCat(error, " Its fields: ", absl::StrJoin(fields, ", "), ".");
  }
  return error;
}

// Every enum field of `type` and the messages it holds, by field name.
void CollectEnumFields(const Descriptor* type, std::set<const Descriptor*>* seen,
                       std::map<std::string, const EnumDescriptor*>* fields) {
  if (!seen->insert(type).second) return;
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (field->enum_type() != nullptr) fields->emplace(field->name(), field->enum_type());
    if (field->message_type() != nullptr) CollectEnumFields(field->message_type(), seen, fields);
  }
}

// The full name of `value` when it is one of `type`'s value names without
// the prefix all of them share, in lower case ("softmax" for
// OUTPUT_MODE_SOFTMAX, "sigmoid" for HEAD_SIGMOID); empty otherwise.
std::string ShortEnumValue(const EnumDescriptor* type, absl::string_view value) {
  const std::string prefix = SharedPrefix(type);
  if (prefix.empty() || absl::AsciiStrToLower(value) != value) return "";
  const std::string full = absl::StrCat(prefix, absl::AsciiStrToUpper(value));
  return type->FindValueByName(full) != nullptr ? full : "";
}

// `text` with each `field: value` whose field holds an enum and whose value
// is a short name (ShortEnumValue) written in full. Comments and strings
// are copied as they are.
std::string ExpandShortEnumValues(absl::string_view text, const Descriptor* root) {
  std::map<std::string, const EnumDescriptor*> enum_fields;
  std::set<const Descriptor*> seen;
  CollectEnumFields(root, &seen, &enum_fields);
  auto identifier_char = [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  };
  std::string out;
  out.reserve(text.size());
  std::string field;  // the identifier before a ':', if that is where we are
  bool after_colon = false;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') {
      const size_t end = std::min(text.find('\n', i), text.size());
      absl::StrAppend(&out, text.substr(i, end - i));
      i = end;
      continue;
    }
    if (c == '"' || c == '\'') {
      size_t end = i + 1;
      while (end < text.size() && text[end] != c && text[end] != '\n') {
        end += text[end] == '\\' ? 2 : 1;
      }
      end = std::min(end + 1, text.size());
      absl::StrAppend(&out, text.substr(i, end - i));
      i = end;
      field.clear();
      after_colon = false;
      continue;
    }
    if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = i;
      while (end < text.size() && identifier_char(text[end])) ++end;
      const absl::string_view word = text.substr(i, end - i);
      i = end;
      if (after_colon) {
        auto found = enum_fields.find(field);
        const std::string full =
            found == enum_fields.end() ? "" : ShortEnumValue(found->second, word);
        absl::StrAppend(&out, full.empty() ? word : absl::string_view(full));
        field.clear();
        after_colon = false;
      } else {
        field = std::string(word);
        absl::StrAppend(&out, word);
      }
      continue;
    }
    if (c == ':') {
      after_colon = !field.empty();
    } else if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
      field.clear();
      after_colon = false;
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

bool Parse(const std::string& text, google::protobuf::Message* message,
           FirstErrorCollector* errors) {
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(errors);
  return parser.ParseFromString(text, message);
}

}  // namespace

absl::Status ParseTextProto(absl::string_view text,
                            google::protobuf::Message* message) {
  FirstErrorCollector first;
  if (Parse(std::string(text), message, &first)) return absl::OkStatus();
  const FirstErrorCollector* errors = &first;
  // An enum value written short ("default_output: softmax") is read as its
  // full name; the text is rewritten only when its first reading failed on
  // an enum value, so other errors keep their columns.
  FirstErrorCollector second;
  if (first.error().find("Unknown enumeration value") != std::string::npos) {
    const std::string expanded = ExpandShortEnumValues(text, message->GetDescriptor());
    if (expanded != text) {
      message->Clear();
      if (Parse(expanded, message, &second)) return absl::OkStatus();
      errors = &second;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("line ", errors->line(), " column ", errors->column(), ": ",
                   Explain(errors->error(), message->GetDescriptor())));
}

}  // namespace seqserve
