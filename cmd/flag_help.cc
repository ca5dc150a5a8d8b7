#include "cmd/flag_help.h"

#include <deque>
#include <set>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace seqserve {
namespace {

void AppendFlag(const absl::CommandLineFlag& flag, std::string* out) {
  std::string value = flag.DefaultValue();
  if (value.empty()) value = "\"\"";
  absl::StrAppend(out, "  --", flag.Name(), "=", value, "\n      ", flag.Help(), "\n");
}

}  // namespace

std::vector<char*> JoinDashValue(int argc, char** argv, absl::string_view flag) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (i + 1 < argc && absl::string_view(argv[i + 1]) == "-" &&
        (arg == absl::StrCat("--", flag) || arg == absl::StrCat("-", flag))) {
      // Lives as long as the program, as argv does; a deque never moves
      // what it holds.
      static std::deque<std::string>* const joined = new std::deque<std::string>;
      joined->push_back(absl::StrCat("--", flag, "=-"));
      args.push_back(joined->back().data());
      ++i;
      continue;
    }
    args.push_back(argv[i]);
  }
  return args;
}

bool HelpRequested(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") return false;
    if (arg == "--help" || arg == "-help" || arg == "-h") return true;
  }
  return false;
}

std::string GroupedFlagHelp(absl::string_view usage, const std::vector<FlagGroup>& groups,
                            absl::string_view source_file) {
  std::string out = absl::StrCat(usage, "\n");
  std::set<std::string> listed;
  for (const FlagGroup& group : groups) {
    absl::StrAppend(&out, "\n", group.title, ":\n");
    for (const std::string& name : group.flags) {
      const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      if (flag == nullptr) continue;
      AppendFlag(*flag, &out);
      listed.insert(name);
    }
  }
  std::string other;
  if (source_file.empty()) return out;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::EndsWith(flag->Filename(), source_file) && !listed.count(std::string(name))) {
      AppendFlag(*flag, &other);
    }
  }
  if (!other.empty()) absl::StrAppend(&out, "\nother:\n", other);
  return out;
}

}  // namespace seqserve
