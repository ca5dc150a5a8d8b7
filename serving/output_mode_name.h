// How seqserve spells an output mode, the same on every interface: the short
// name ("softmax") is the one its programs, console and messages print; the
// API's enum name ("OUTPUT_MODE_SOFTMAX") is accepted too, wherever a mode
// is read (flags, REST bodies, config files, Open Inference Protocol output
// names). seqserve's REST answers stay protobuf's JSON of the API messages,
// enum names and all, so that protobuf's own parsers read them.
// Protobuf's descriptors only: no model or server behind it.
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "seqserve/v1/classifier.pb.h"

namespace seqserve {

// "default", "logits", "sigmoid", "softmax" or "log_softmax": the enum name
// without its prefix, in lower case (core's head names, and the Open
// Inference Protocol's output names).
std::string OutputModeName(v1::OutputMode mode);

// The mode `name` spells, in either spelling ("softmax" or
// "OUTPUT_MODE_SOFTMAX", exactly so); nullopt for anything else.
std::optional<v1::OutputMode> ParseOutputMode(absl::string_view name);

// Every mode's short name, separated by ", ", for messages that list them.
std::string OutputModeNames();

// The same two spellings for Explain's enums: "integrated_gradients" or
// "ATTRIBUTION_METHOD_INTEGRATED_GRADIENTS"; "gausslegendre" (Captum's
// name) or "INTEGRATION_RULE_GAUSSLEGENDRE".
std::string AttributionMethodShortName(v1::AttributionMethod method);
std::optional<v1::AttributionMethod> ParseAttributionMethodName(absl::string_view name);
std::string IntegrationRuleShortName(v1::IntegrationRule rule);
std::optional<v1::IntegrationRule> ParseIntegrationRuleName(absl::string_view name);

// A JSON object whose top-level "output" (and "method", "rule") is a
// string in the short spelling, with those strings rewritten as the API's
// names, which is all protobuf's JSON parser reads; nullopt when there is
// nothing to rewrite (any other text is left for that parser to judge).
std::optional<std::string> WithApiEnumNames(absl::string_view json);

}  // namespace seqserve
