#include "serving/model_inputs.h"

#include <cmath>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "serving/client_text.h"
#include "serving/raw_rows.h"

namespace seqserve {
namespace {

// For each of the model's features, the column of `columns` that holds it.
absl::Status OrderColumns(const ServedModel& served,
                          const google::protobuf::RepeatedPtrField<std::string>& columns,
                          std::vector<size_t>* order) {
  const auto& features = served.config.feature_names();
  if (features.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", served.name, "' names no features (its config has no feature_names): give "
        "each row's ", served.request_width(), " values in order"));
  }
  // By hash, not by search: a model may have many features, and a request
  // as many names.
  std::unordered_map<std::string_view, size_t> model_columns;
  for (int i = 0; i < features.size(); ++i) model_columns.emplace(features[i], i);
  order->assign(features.size(), RawRowsView::kAbsent);
  auto known = [&] { return absl::StrJoin(features, ", "); };
  for (int j = 0; j < columns.size(); ++j) {
    const std::string& name = columns[j];
    auto found = model_columns.find(name);
    if (found == model_columns.end()) {
      return absl::InvalidArgumentError(absl::StrCat("model '", served.name,
                                                     "' has no feature ", QuoteClientText(name),
                                                     "; its features are ", known()));
    }
    if ((*order)[found->second] != RawRowsView::kAbsent) {
      return absl::InvalidArgumentError(absl::StrCat(
          "feature '", name, "' of model '", served.name, "' is given more than once"));
    }
    (*order)[found->second] = static_cast<size_t>(j);
  }
  for (size_t i = 0; i < order->size(); ++i) {
    if ((*order)[i] == RawRowsView::kAbsent && !served.preprocessing->may_be_left_out(i)) {
      return absl::InvalidArgumentError(absl::StrCat("feature '", features[static_cast<int>(i)],
                                                     "' of model '", served.name,
                                                     "' is missing; its features are ", known()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

size_t SentWidth(const v1::ClassifyRequest& request, const ServedModel& served) {
  if (!request.columns().empty()) return static_cast<size_t>(request.columns_size());
  return served.request_width();
}

absl::Status PrepareModelInputs(const v1::ClassifyRequest& request, size_t rows,
                                const ServedModel& served, ModelInputs* inputs) {
  const Preprocessing& preprocessing = *served.preprocessing;
  const absl::Span<const float> sent = request.features();
  if (!request.categories().empty() && request.categories_size() != request.features_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "categories has ", request.categories_size(), " strings for ", request.features_size(),
        " values of features: give one per value (empty for a number), or none"));
  }
  if (request.columns().empty()) {
    inputs->order.resize(preprocessing.raw_width());
    for (size_t f = 0; f < inputs->order.size(); ++f) inputs->order[f] = f;
  } else if (absl::Status ordered = OrderColumns(served, request.columns(), &inputs->order);
             !ordered.ok()) {
    return ordered;
  }
  // The common case: numbers in the model's order, no preparation.
  if (preprocessing.passthrough() && request.columns().empty() &&
      request.categories().empty()) {
    const size_t width = preprocessing.raw_width();
    for (size_t i = 0; i < sent.size(); ++i) {
      if (!std::isfinite(sent[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("row ", i / width, " feature ", i % width, " is NaN or Inf"));
      }
    }
    inputs->values = sent;
    return absl::OkStatus();
  }
  const RawRowsView raw(rows, SentWidth(request, served), sent, request.categories(),
                        inputs->order);
  try {
    inputs->prepared.resize(rows * preprocessing.prepared_width());
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("no memory to prepare the rows");
  }
  if (absl::Status prepared = preprocessing.Prepare(raw, absl::MakeSpan(inputs->prepared));
      !prepared.ok()) {
    return prepared;
  }
  inputs->values = inputs->prepared;
  return absl::OkStatus();
}

}  // namespace seqserve
