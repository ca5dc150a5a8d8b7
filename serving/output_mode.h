// Mapping between the API's OutputMode and core's Head.
#pragma once

#include <optional>

#include "core/head.h"
#include "seqserve/v1/classifier.pb.h"

namespace seqserve {

// nullopt for OUTPUT_MODE_DEFAULT and unknown values.
std::optional<Head> HeadForOutputMode(v1::OutputMode mode);
v1::OutputMode OutputModeForHead(Head head);

}  // namespace seqserve
