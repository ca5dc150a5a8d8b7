#include "server/client_text.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace seqserve {

std::string QuoteClientText(absl::string_view text) {
  const bool cut = text.size() > kMaxQuotedClientBytes;
  return absl::StrCat("'", absl::CHexEscape(text.substr(0, kMaxQuotedClientBytes)),
                      cut ? "'..." : "'");
}

}  // namespace seqserve
