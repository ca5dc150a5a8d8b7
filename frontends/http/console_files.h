// The web console's files (frontends/http/console/), compiled into the binary
// at build time by cmake/embed_files.cmake.
#pragma once

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace seqserve {

struct EmbeddedFile {
  const char* name;  // "index.html"
  absl::string_view contents;
};

absl::Span<const EmbeddedFile> ConsoleFiles();

}  // namespace seqserve
