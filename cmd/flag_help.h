// --help for the project's programs: their own flags only, in named groups,
// each with its default. (Abseil's --help lists the flags of the file named
// after the program, which for seqserve is none; --helpfull still lists
// every flag linked in, gRPC's and Abseil's too.)
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace seqserve {

struct FlagGroup {
  std::string title;
  std::vector<std::string> flags;  // names, without "--"
};

// argv with "--FLAG -" (and "-FLAG -") as the one argument "--FLAG=-", so
// '-' for stdin reads as it does with '=' (Abseil warns about a separate
// value that starts with '-'). The result points into argv and into
// storage that lives as long as the program.
std::vector<char*> JoinDashValue(int argc, char** argv, absl::string_view flag);

// True when the command line asks for --help (or -help, -h).
bool HelpRequested(int argc, char** argv);

// `usage`, then each group: "  --name=default" and the flag's help below
// it. Flags defined in `source_file` (a path suffix, e.g. "cmd/seqserve.cc")
// that no group names are listed last under "other", so none is hidden;
// an empty `source_file` lists the groups only.
std::string GroupedFlagHelp(absl::string_view usage, const std::vector<FlagGroup>& groups,
                            absl::string_view source_file);

}  // namespace seqserve
