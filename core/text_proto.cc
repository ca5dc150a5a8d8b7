#include "core/text_proto.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

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
    return absl::StrCat(error, " Valid values: ", absl::StrJoin(valid, ", "), ".",
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

}  // namespace

absl::Status ParseTextProto(absl::string_view text,
                            google::protobuf::Message* message) {
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), message)) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", errors.line(), " column ", errors.column(), ": ",
                     Explain(errors.error(), message->GetDescriptor())));
  }
  return absl::OkStatus();
}

}  // namespace seqserve
