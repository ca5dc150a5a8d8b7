#include "observability/payload_capture.h"

#include <new>
#include <set>
#include <vector>

#include "absl/random/random.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace {

constexpr char kFiles[] = "files";
constexpr char kHttp[] = "http";
// A destination that could not be made (a directory, a token file) is
// tried again this long after.
constexpr absl::Duration kRetryCreate = absl::Seconds(10);
// How long a sink replaced by a reload may still send what it holds.
constexpr absl::Duration kRetiredSinkGrace = absl::Seconds(5);
// The writer looks at idle files this often (their age limit).
constexpr absl::Duration kTick = absl::Seconds(1);
// Once a record waits, the writer lets more gather this long (or until the
// queue is half full) before it takes them: a wake per record would cost
// more than the record, on cores the calls need.
constexpr absl::Duration kGather = absl::Milliseconds(20);
// Past this many served versions the shapes are forgotten and made again.
constexpr size_t kMaxShapes = 64;

bool Sampled(double rate) {
  if (rate >= 1.0) return true;
  if (!(rate > 0.0)) return false;  // also NaN
  // One generator per inference thread: no lock, no shared state.
  thread_local absl::InsecureBitGen generator;
  return absl::Uniform(generator, 0.0, 1.0) < rate;
}

}  // namespace

PayloadCapture::PayloadCapture(Options options) : options_(std::move(options)) {
  writer_ = std::thread([this] { Write(); });
}

PayloadCapture::~PayloadCapture() { Shutdown(absl::Now()); }

void PayloadCapture::OnPayload(const PayloadRecord& record) {
  const ServedModel* served = record.served;
  if (served == nullptr || record.raw == nullptr || record.response == nullptr ||
      !served->config.has_capture()) {
    return;
  }
  const v1::CaptureConfig& capture = served->config.capture();
  if (!capture.has_files() && !capture.has_http()) return;
  if (!Sampled(capture.sample_rate())) return;
  CapturedCall call;
  try {  // on an inference thread: nothing may throw into the call
    call = CopyPayload(record, ShapeFor(*served, record.raw->features()));
  } catch (const std::bad_alloc&) {
    DroppedFor(served->name)->Increment();
    return;
  }
  const size_t bytes = call.bytes();
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && queue_.size() < options_.max_queued_records &&
        queued_bytes_ + bytes <= options_.max_queued_bytes) {
      queued_bytes_ += bytes;
      queue_.push_back(std::move(call));
      return;
    }
  }
  DroppedFor(served->name)->Increment();
}

std::shared_ptr<const CaptureShape> PayloadCapture::ShapeFor(const ServedModel& served,
                                                             size_t features) {
  if (served.preprocessing == nullptr) return nullptr;
  {
    absl::ReaderMutexLock lock(&shapes_mu_);
    auto found = shapes_.find(&served);
    if (found != shapes_.end() && found->second.pin == served.preprocessing &&
        found->second.shape->feature_names.size() == features) {
      return found->second.shape;
    }
  }
  std::shared_ptr<const CaptureShape> shape = MakeCaptureShape(served, features);
  absl::MutexLock lock(&shapes_mu_);
  if (shapes_.size() >= kMaxShapes) shapes_.clear();
  shapes_[&served] = ShapeEntry{served.preprocessing, shape};
  return shape;
}

void PayloadCapture::Shutdown(absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      deadline_ = std::min(deadline_, deadline);
    } else {
      stopping_ = true;
      deadline_ = deadline;
    }
  }
  if (writer_.joinable()) writer_.join();
}

void PayloadCapture::Write() {
  std::deque<CapturedCall> batch;
  for (;;) {
    bool stop;
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]()
                          ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&has_work), kTick);
      auto batch_ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || queue_.size() >= options_.max_queued_records / 2 ||
               queued_bytes_ >= options_.max_queued_bytes / 2;
      };
      if (!queue_.empty()) mu_.AwaitWithTimeout(absl::Condition(&batch_ready), kGather);
      batch.swap(queue_);
      queued_bytes_ = 0;
      stop = stopping_;
      deadline = deadline_;
    }
    for (CapturedCall& call : batch) {
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        DroppedFor(call.model)->Increment();  // the shutdown's time is up
        continue;
      }
      Deliver(call, now);
    }
    batch.clear();
    const absl::Time now = absl::Now();
    for (auto& [model, destinations] : destinations_) {
      if (destinations.files != nullptr) {
        destinations.files->Flush();
        destinations.files->Tick(now);
      }
    }
    // Once stopping_ is set nothing more is queued: this batch was the last.
    if (stop) {
      for (auto& [model, destinations] : destinations_) {
        destinations.files.reset();  // flushed and closed
        if (destinations.sink != nullptr) destinations.sink->Close(deadline);
      }
      for (auto& sink : retired_sinks_) sink->Close(deadline);
      for (auto& [model, destinations] : destinations_) {
        if (destinations.sink != nullptr) destinations.sink->Join();
      }
      for (auto& sink : retired_sinks_) sink->Join();
      return;
    }
  }
}

PayloadCapture::Destinations& PayloadCapture::DestinationsFor(const CapturedCall& call,
                                                              absl::Time now) {
  Destinations& destinations = destinations_[call.model];
  if (call.shape == destinations.shape) return destinations;
  if (call.shape->capture_key != destinations.config) {
    // A reload changed where this model's records go: the old files end
    // here, the old sink sends what it holds for a little longer.
    destinations.files.reset();
    if (destinations.sink != nullptr) {
      destinations.sink->Close(now + kRetiredSinkGrace);
      retired_sinks_.push_back(std::move(destinations.sink));
    }
    destinations = Destinations{};
    destinations.config = call.shape->capture_key;
  }
  destinations.shape = call.shape;
  return destinations;
}

void PayloadCapture::Deliver(const CapturedCall& call, absl::Time now) {
  Destinations& destinations = DestinationsFor(call, now);
  DroppedFor(call.model);  // the model's series exists from its first record
  const std::string line = FormatCapturedCall(call);
  if (call.shape->capture.has_files()) {
    CaptureCounters* counters = CountersFor(call.model, kFiles);
    if (destinations.files == nullptr && now >= destinations.retry_files) {
      auto files = CaptureFiles::Create(call.model, call.shape->capture.files());
      if (files.ok()) {
        destinations.files = std::move(*files);
      } else {
        spdlog::error("capture for model {}: {}", call.model,
                      std::string(files.status().message()));
        destinations.retry_files = now + kRetryCreate;
      }
    }
    if (destinations.files == nullptr) {
      counters->errors.Increment();
    } else if (absl::Status written = destinations.files->Write(line, now); written.ok()) {
      counters->written.Increment();
    } else {
      counters->errors.Increment();
      spdlog::error("capture for model {}: {}", call.model, std::string(written.message()));
    }
  }
  if (call.shape->capture.has_http()) {
    CaptureCounters* counters = CountersFor(call.model, kHttp);
    if (destinations.sink == nullptr && now >= destinations.retry_sink) {
      auto sink = CaptureSink::Create(call.shape->capture.http(), options_.sink, counters);
      if (sink.ok()) {
        destinations.sink = std::move(*sink);
      } else {
        spdlog::error("capture for model {}: {}", call.model, std::string(sink.status().message()));
        destinations.retry_sink = now + kRetryCreate;
      }
    }
    if (destinations.sink == nullptr) {
      counters->errors.Increment();
    } else {
      CaptureEvent event;
      event.id = call.request_id;
      event.model = call.model;
      event.version = call.version;
      event.time = call.time;
      event.data = line;
      destinations.sink->Enqueue(std::move(event));
    }
  }
}

CaptureCounters* PayloadCapture::CountersFor(const std::string& model,
                                             const std::string& destination) {
  absl::MutexLock lock(&counters_mu_);
  auto& counters = counters_[{model, destination}];
  if (counters == nullptr) counters = std::make_unique<CaptureCounters>();
  return counters.get();
}

Counter* PayloadCapture::DroppedFor(const std::string& model) {
  absl::MutexLock lock(&counters_mu_);
  auto& counter = dropped_[model];
  if (counter == nullptr) counter = std::make_unique<Counter>();
  return counter.get();
}

const CaptureCounters* PayloadCapture::FindCounters(const std::string& model,
                                                    const std::string& destination) const {
  absl::MutexLock lock(&counters_mu_);
  auto found = counters_.find({model, destination});
  return found == counters_.end() ? nullptr : found->second.get();
}

uint64_t PayloadCapture::dropped(const std::string& model) const {
  absl::MutexLock lock(&counters_mu_);
  uint64_t total = 0;
  if (auto found = dropped_.find(model); found != dropped_.end()) total = found->second->value();
  for (const auto& [key, counters] : counters_) {
    if (key.first == model) total += counters->dropped.value();
  }
  return total;
}

uint64_t PayloadCapture::written(const std::string& model, const std::string& destination) const {
  const CaptureCounters* counters = FindCounters(model, destination);
  return counters == nullptr ? 0 : counters->written.value();
}

uint64_t PayloadCapture::errors(const std::string& model, const std::string& destination) const {
  const CaptureCounters* counters = FindCounters(model, destination);
  return counters == nullptr ? 0 : counters->errors.value();
}

void PayloadCapture::RenderMetrics(ExpositionWriter& out) const {
  std::set<std::string> models;
  std::vector<std::pair<std::pair<std::string, std::string>, const CaptureCounters*>> series;
  {
    absl::MutexLock lock(&counters_mu_);
    for (const auto& [model, counter] : dropped_) models.insert(model);
    for (const auto& [key, counters] : counters_) {
      models.insert(key.first);
      series.emplace_back(key, counters.get());
    }
  }
  if (models.empty()) return;
  out.Family("seqserve_capture_dropped_total", "counter",
             "Captured calls dropped: a full queue, or the shutdown's deadline.");
  for (const std::string& model : models) {
    out.Sample("seqserve_capture_dropped_total", {{"model", model}}, dropped(model));
  }
  out.Family("seqserve_capture_records_total", "counter",
             "Captured calls a destination took (written to a file, or POSTed).");
  for (const auto& [key, counters] : series) {
    out.Sample("seqserve_capture_records_total",
               {{"model", key.first}, {"destination", key.second}}, counters->written.value());
  }
  out.Family("seqserve_capture_errors_total", "counter",
             "Failed capture writes and POSTs (each attempt).");
  for (const auto& [key, counters] : series) {
    out.Sample("seqserve_capture_errors_total", {{"model", key.first}, {"destination", key.second}},
               counters->errors.value());
  }
}

}  // namespace seqserve
