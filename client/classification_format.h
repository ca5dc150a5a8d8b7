// How seqclient prints a Classification: a table for people, CSV and JSON
// for scripts.
#pragma once

#include <string>
#include <vector>

#include "client/seqserve_client.h"

namespace seqserve {

// Aligned columns: row, predicted label, its score, then every score.
std::string FormatTable(const Classification& result,
                        const std::vector<std::string>& labels);
// A header line, then one line per row ending with that row's scores in
// full float precision.
std::string FormatCsv(const Classification& result,
                      const std::vector<std::string>& labels);
// One JSON object with every row.
std::string FormatJson(const Classification& result);

}  // namespace seqserve
