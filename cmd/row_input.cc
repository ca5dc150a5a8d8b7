#include "cmd/row_input.h"

#include <iostream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_util.h"

namespace seqserve {

absl::StatusOr<RowText> ReadRowText(const std::vector<std::string>& args,
                                    const std::string& input_file) {
  RowText rows;
  if (!args.empty()) {
    rows.text = absl::StrJoin(args, "\n");
    rows.line_word = "row";
  } else if (!input_file.empty() && input_file != "-") {
    auto contents = ReadFileToString(input_file);
    if (!contents.ok()) return contents.status();
    rows.text = std::move(*contents);
    rows.line_word = absl::StrCat(input_file, " line");
  } else {
    rows.text.assign(std::istreambuf_iterator<char>(std::cin), {});
    rows.line_word = "stdin line";
  }
  return rows;
}

}  // namespace seqserve
