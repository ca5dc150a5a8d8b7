// Where the command-line tools read feature rows from, in this order: the
// rows given as arguments ("4,0,1 2,1,0"), the --input file, or stdin ('-'
// or no --input). seqclient classify and seqmodel run take rows alike.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace seqserve {

struct RowText {
  std::string text;  // the arguments one per line, or the file as it is
  // What a line is in messages: "row", "rows.csv line", "stdin line".
  std::string line_word;
};

// The rows' text; an error names an input file that cannot be read.
absl::StatusOr<RowText> ReadRowText(const std::vector<std::string>& args,
                                    const std::string& input_file);

}  // namespace seqserve
