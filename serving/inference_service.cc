#include "serving/inference_service.h"

#include <map>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/layer.h"
#include "serving/client_text.h"
#include "serving/model_inputs.h"
#include "serving/output_mode.h"

namespace seqserve {
namespace {

// What a traffic split routes a call by: its request id, else its caller.
std::string RoutingKey(const CallInfo& call) {
  const std::string& id = call.callers_request_id();
  return id.empty() ? call.caller.name : id;
}

}  // namespace

InferenceService::InferenceService(ModelManager* models, InferenceRunner* runner,
                                   Options options)
    : models_(models),
      runner_(runner),
      options_(std::move(options)),
      shadows_(models, runner, options_.observer, options_.shadow) {}

std::unique_ptr<InferenceService::CallState> InferenceService::Start(const CallInfo& call,
                                                                     std::string model,
                                                                     Done done) {
  auto state = std::make_unique<CallState>();
  state->record.protocol = call.protocol;
  state->record.method = call.method;
  state->record.model = std::move(model);
  state->record.peer = call.caller.peer;
  state->record.request_id = call.request_id;
  state->record.trace_id = call.trace_id;
  state->record.caller = call.caller.name;
  state->record.start = absl::Now();
  state->done = std::move(done);
  ++calls_in_flight_;
  last_call_started_ns_.store(absl::ToUnixNanos(state->record.start),
                              std::memory_order_relaxed);
  if (options_.observer != nullptr) options_.observer->OnStart(state->record);
  return state;
}

void InferenceService::Finish(std::unique_ptr<CallState> state, absl::Status status) {
  state->record.code = status.code();
  if (!status.ok()) state->record.error = std::string(status.message());
  state->record.duration = absl::Now() - state->record.start;
  if (options_.observer != nullptr) options_.observer->OnEnd(state->record);
  // Count down before answering: once answered, a shutting-down server
  // may go away.
  --calls_in_flight_;
  std::move(state->done)(std::move(status));
}

absl::StatusOr<std::shared_ptr<const ServedModel>> InferenceService::Arrive(
    const std::string& model, int64_t version, const std::string& label, const CallInfo& call,
    CallState& state) {
  if (call.deadline <= absl::Now()) {
    return absl::DeadlineExceededError("deadline passed before the call arrived");
  }
  auto served = models_->Find(model, VersionRequest{version, label, RoutingKey(call)});
  if (!served.ok()) {
    state.record.model_known = models_->Snapshot()->models.count(model) > 0;
    return served.status();
  }
  state.record.model_known = true;
  state.record.version = (*served)->version;
  return served;
}

void InferenceService::Classify(const v1::ClassifyRequest& request, CallInfo call,
                                v1::ClassifyResponse* response, Done done) {
  Pass(request, nullptr, nullptr, std::move(call), Targets{response}, std::move(done));
}

void InferenceService::ClassifyOutputs(const v1::ClassifyRequest& request,
                                       const std::vector<OutputRequest>& outputs,
                                       TensorInterface* tensors, CallInfo call,
                                       std::vector<v1::ClassifyResponse>* responses,
                                       Done done) {
  responses->clear();
  responses->resize(outputs.size());
  Targets targets;
  for (v1::ClassifyResponse& response : *responses) targets.push_back(&response);
  Pass(request, &outputs, tensors, std::move(call), std::move(targets), std::move(done));
}

void InferenceService::Pass(const v1::ClassifyRequest& request,
                            const std::vector<OutputRequest>* outputs,
                            TensorInterface* tensors, CallInfo call, Targets targets,
                            Done done) {
  auto state = Start(call, request.model(), std::move(done));
  auto served = Arrive(request.model(), request.version(), request.version_label(), call,
                       *state);
  if (!served.ok()) return Finish(std::move(state), served.status());
  absl::InlinedVector<ClassifyPlan, 1> plans;
  if (outputs == nullptr) {
    auto plan = PlanClassify(request, **served, options_.limits);
    if (!plan.ok()) return Finish(std::move(state), plan.status());
    plans.push_back(*plan);
  } else {
    auto planned =
        PlanOutputs(request, *outputs, tensors, **served, options_.limits);
    if (!planned.ok()) return Finish(std::move(state), planned.status());
    plans.assign(planned->begin(), planned->end());
  }
  // Read before the plans move into the callback below.
  const size_t rows = plans.front().rows;
  state->record.rows = rows;
  // The model's inputs, held until the pass is done (a moved vector keeps
  // its buffer).
  ModelInputs inputs;
  if (absl::Status prepared = PrepareModelInputs(request, rows, **served, &inputs);
      !prepared.ok()) {
    return Finish(std::move(state), prepared);
  }
  const absl::Span<const float> features = inputs.values;
  // A call routed by the model (no version, no label asked) may be copied
  // to its shadow version.
  const int64_t shadow_version =
      request.version() == 0 && request.version_label().empty()
          ? ShadowRunner::SampledVersion(**served, call.callers_request_id())
          : 0;

  // The logits are the runner's until `done` returns: the responses are
  // built inside it.
  runner_->Run(
      *served, features, rows, call.deadline,
      [this, state = std::move(state), served = *served, plans = std::move(plans),
       targets = std::move(targets), inputs = std::move(inputs), features, rows, shadow_version,
       &request](absl::StatusOr<InferenceRunner::PassOutput> output) mutable {
        if (!output.ok()) return Finish(std::move(state), output.status());
        state->record.queued = output->queued;
        state->record.batch_rows = output->batch_rows;
        state->record.inference = output->inference;
        state->record.first_in_pass = output->first_in_pass;
        // Copied before the heads work on the logits in place.
        ShadowCopy shadow;
        if (shadow_version != 0) {
          shadow = shadows_.Take(*served, shadow_version, features, rows, output->logits);
        }
        absl::Status built;
        try {  // on an inference thread: nothing may throw past here
          built = BuildClassifyResponses(*served, plans, output->logits, targets);
        } catch (const std::bad_alloc&) {
          built = absl::ResourceExhaustedError("no memory to build the answer");
        }
        // Queued before the answer goes: once answered, a shutting-down
        // server may go away. A call that failed has nothing to compare.
        if (built.ok()) shadows_.Start(std::move(shadow));
        if (built.ok() && options_.payloads != nullptr) {
          const RawRowsView raw(rows, SentWidth(request, *served), request.features(),
                                request.categories(), std::move(inputs.order));
          ShowPayload(*served, state->record, raw, features, *targets.front());
        }
        Finish(std::move(state), std::move(built));
      },
      std::move(call.cancelled));
}

void InferenceService::Explain(const v1::ExplainRequest& request, CallInfo call,
                               v1::ExplainResponse* response, Done done,
                               TensorInterface* tensors) {
  auto state = Start(call, request.model(), std::move(done));
  auto served = Arrive(request.model(), request.version(), request.version_label(), call,
                       *state);
  if (!served.ok()) return Finish(std::move(state), served.status());
  // Counted by method even when refused (a method the API does not define
  // is no label).
  if (auto method = RequestedAttributionMethod(request.method())) {
    state->record.explanation = std::string(AttributionMethodName(*method));
  }
  auto plan = PlanExplain(request, **served, options_.limits, tensors);
  if (!plan.ok()) return Finish(std::move(state), plan.status());
  state->record.rows = plan->rows;
  // Computed by the job, read by `done`: both run on the same pool thread.
  auto result = std::make_shared<Attributions>();
  const size_t cost_rows = plan->cost_rows;
  InferenceRunner::Job job = [served = *served, plan = *plan,
                              features = absl::MakeConstSpan(request.features()),
                              result](const std::function<bool()>& stop) {
    std::vector<int> targets;
    if (plan.target) targets.assign(plan.rows, *plan.target);
    auto attributions = Attribute(*served->model, features, plan.rows, targets, plan.options,
                                  plan.threshold, stop);
    if (!attributions.ok()) return attributions.status();
    *result = std::move(*attributions);
    return absl::OkStatus();
  };
  runner_->RunJob(
      *served, cost_rows, call.deadline, std::move(job),
      [this, state = std::move(state), served = *served, plan = std::move(*plan), result,
       response](absl::StatusOr<InferenceRunner::PassOutput> output) mutable {
        if (!output.ok()) return Finish(std::move(state), output.status());
        state->record.queued = output->queued;
        state->record.batch_rows = output->batch_rows;
        state->record.inference = output->inference;
        state->record.first_in_pass = true;
        absl::Status built;
        try {  // on an inference thread: nothing may throw past here
          built = BuildExplainResponse(*served, plan, *result, response);
        } catch (const std::bad_alloc&) {
          built = absl::ResourceExhaustedError("no memory to build the answer");
        }
        Finish(std::move(state), std::move(built));
      },
      std::move(call.cancelled));
}

void InferenceService::ShowPayload(const ServedModel& served, const CallRecord& call,
                                   const RawRowsView& raw, absl::Span<const float> inputs,
                                   const v1::ClassifyResponse& response) {
  PayloadRecord record;
  record.served = &served;
  record.protocol = call.protocol;
  record.request_id = call.request_id;
  record.caller = call.caller;
  record.time = call.start;
  record.raw = &raw;
  record.inputs = inputs;
  record.response = &response;
  options_.payloads->OnPayload(record);
}

absl::Status InferenceService::Refuse(const CallInfo& call, absl::Status status) {
  absl::Status answer;
  auto state = Start(call, "", [&answer](absl::Status s) { answer = s; });
  Finish(std::move(state), std::move(status));
  return answer;
}

absl::Status InferenceService::DescribeModel(const v1::GetModelMetadataRequest& request,
                                             const CallInfo& call,
                                             v1::GetModelMetadataResponse* response) {
  absl::Status answer;
  auto state = Start(call, request.model(), [&answer](absl::Status s) { answer = s; });
  // One snapshot: the versions listed are those of the moment that answered.
  const auto snapshot = models_->Snapshot();
  // The version a call with the same request id or caller would reach.
  auto served = ModelManager::FindIn(
      *snapshot, request.model(),
      VersionRequest{request.version(), request.version_label(), RoutingKey(call)});
  state->record.model_known = snapshot->models.count(request.model()) > 0;
  if (!served.ok()) {
    Finish(std::move(state), served.status());
    return answer;
  }
  const ServedModel& model = **served;
  state->record.version = model.version;
  response->set_model(model.name);
  response->set_version(model.version);
  response->set_description(model.config.description());
  response->set_input_width(static_cast<uint32_t>(model.request_width()));
  response->set_output_width(model.model->output_width());
  *response->mutable_labels() = model.config.labels();
  *response->mutable_feature_names() = model.config.feature_names();
  *response->mutable_preprocessing() = model.config.preprocessing();
  response->set_model_input_width(static_cast<uint32_t>(model.model->input_width()));
  response->set_precision(ApiPrecision(model.model->precision()));
  response->set_input_tensor(model.model->tensor_names().input);
  response->set_output_tensor(model.model->tensor_names().output);
  for (const Layer& layer : model.model->layers()) {
    response->add_layers(layer.Describe());
  }
  response->set_default_output(OutputModeForHead(model.default_head));
  response->set_parameter_count(model.model->ParameterCount());
  response->set_threshold(model.threshold);
  v1::ServingLimits* limits = response->mutable_limits();
  limits->set_max_request_rows(model.max_request_rows ? model.max_request_rows
                                                      : options_.limits.max_rows);
  limits->set_max_request_memory_bytes(options_.limits.max_memory_bytes);
  const BatchingLimits batching = runner_->LimitsFor(model);
  limits->set_max_batch_rows(batching.max_batch_rows);
  limits->set_max_queue_delay_micros(
      static_cast<uint32_t>(absl::ToInt64Microseconds(batching.max_queue_delay)));
  limits->set_max_queued_rows(batching.max_queued_rows);
  auto record = snapshot->models.find(model.name);
  if (record != snapshot->models.end()) {
    FillVersionStatuses(record->second, response->mutable_versions());
  }
  Finish(std::move(state), absl::OkStatus());
  return answer;
}

absl::Status InferenceService::ListModels(const CallInfo& call,
                                          v1::ListModelsResponse* response) {
  absl::Status answer;
  auto state = Start(call, "", [&answer](absl::Status s) { answer = s; });
  const auto snapshot = models_->Snapshot();
  for (const auto& [name, record] : snapshot->models) {
    v1::ModelStatus* model = response->add_models();
    model->set_name(name);
    model->set_error(record.error);
    FillVersionStatuses(record, model->mutable_versions());
  }
  Finish(std::move(state), absl::OkStatus());
  return answer;
}

absl::Status InferenceService::ModelStatus(const std::string& model, int64_t version,
                                           const std::string& label, const CallInfo& call,
                                           v1::ModelStatus* response) {
  absl::Status answer;
  auto state = Start(call, model, [&answer](absl::Status s) { answer = s; });
  const auto snapshot = models_->Snapshot();
  auto found = snapshot->models.find(model);
  if (found == snapshot->models.end()) {
    Finish(std::move(state),
           absl::NotFoundError(absl::StrCat("model ", QuoteClientText(model), " is not served")));
    return answer;
  }
  state->record.model_known = true;
  const ModelRecord& record = found->second;
  if (!label.empty()) {
    auto labelled = ModelManager::VersionOfLabel(model, record, label);
    if (!labelled.ok()) {
      Finish(std::move(state), labelled.status());
      return answer;
    }
    version = *labelled;
  }
  response->set_name(model);
  response->set_error(record.error);
  if (version != 0) {
    auto entry = record.versions.find(version);
    if (entry == record.versions.end()) {
      // The same words as a call that asks this version.
      Finish(std::move(state), ModelManager::FindIn(*snapshot, model, version).status());
      return answer;
    }
    state->record.version = version;
    v1::VersionStatus* status = response->add_versions();
    status->set_version(version);
    status->set_state(entry->second.state);
    status->set_error(entry->second.error);
  } else {
    FillVersionStatuses(record, response->mutable_versions());
  }
  if (response->versions().empty()) {
    Finish(std::move(state),
           absl::NotFoundError(absl::StrCat("model '", model, "' has no versions",
                                            record.error.empty() ? "" : ": ", record.error)));
    return answer;
  }
  Finish(std::move(state), absl::OkStatus());
  return answer;
}

absl::Status InferenceService::ModelReady(const std::string& name, int64_t version) const {
  return models_->Find(name, version).status();
}

absl::Status InferenceService::RepositoryIndex(bool ready, const CallInfo& call,
                                               v1::RepositoryIndexResponse* index) {
  absl::Status answer;
  auto state = Start(call, "", [&answer](absl::Status s) { answer = s; });
  auto found = models_->Index(ready);
  if (found.ok()) {
    for (IndexEntry& entry : *found) {
      v1::RepositoryIndexResponse::Entry* out = index->add_entries();
      out->set_model(std::move(entry.model));
      out->set_version(entry.version);
      out->set_state(entry.state);
      out->set_reason(std::move(entry.reason));
    }
  }
  Finish(std::move(state), found.status());
  return answer;
}

void InferenceService::LoadModel(const std::string& model,
                                 std::optional<v1::ModelConfig> config, const CallInfo& call,
                                 v1::ModelStatus* status, Done done) {
  auto state = Start(call, model, std::move(done));
  state->record.model_known = models_->Snapshot()->models.count(model) > 0;
  loads_.Post([this, state = std::move(state), model, config = std::move(config),
               status]() mutable {
    auto loaded = models_->Load(model, config, options_.models_changed);
    if (loaded.ok()) {
      state->record.model_known = true;
      *status = std::move(*loaded);
    }
    Finish(std::move(state), loaded.status());
  });
}

absl::Status InferenceService::UnloadModel(const std::string& model, const CallInfo& call) {
  absl::Status answer;
  auto state = Start(call, model, [&answer](absl::Status s) { answer = s; });
  state->record.model_known = models_->Snapshot()->models.count(model) > 0;
  Finish(std::move(state), models_->Unload(model, options_.models_changed));
  return answer;
}

}  // namespace seqserve
