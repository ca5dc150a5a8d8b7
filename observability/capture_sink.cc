#include "observability/capture_sink.h"

#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "spdlog/spdlog.h"

namespace seqserve {
namespace {

// A token file is a line, not a document.
constexpr size_t kMaxTokenFileBytes = 64 * 1024;
// What a sink answers is read and thrown away, up to this.
constexpr size_t kMaxReplyBytes = 64 * 1024;

absl::Status StartCurl() {
  static const CURLcode started = [] { return curl_global_init(CURL_GLOBAL_DEFAULT); }();
  if (started != CURLE_OK) {
    return absl::FailedPreconditionError(
        absl::StrCat("libcurl cannot start: ", curl_easy_strerror(started)));
  }
  return absl::OkStatus();
}

// A header value from text that may hold anything: bytes outside printable
// ASCII become '_', so no value can end the header or begin another.
std::string HeaderValue(absl::string_view text) {
  std::string value(text.substr(0, 256));
  for (char& c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) c = '_';
  }
  return value;
}

// The URL as logs show it: no user:password@, no query or fragment (either
// may carry a credential).
std::string LoggableUrl(absl::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = url.find("://");
  const size_t authority = scheme == absl::string_view::npos ? 0 : scheme + 3;
  const size_t path = url.find('/', authority);
  const size_t at = url.substr(0, path).rfind('@');
  std::string shown(url.substr(0, authority));
  if (at != absl::string_view::npos && at >= authority) {
    absl::StrAppend(&shown, url.substr(at + 1));
  } else {
    absl::StrAppend(&shown, url.substr(authority));
  }
  return HeaderValue(shown);
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return HeaderValue(name);
}

size_t DiscardReply(char*, size_t size, size_t count, void* user) {
  auto* total = static_cast<size_t*>(user);
  *total += size * count;
  // Past the cap the transfer fails; the status line was already read.
  return *total > kMaxReplyBytes ? 0 : size * count;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CaptureSink>> CaptureSink::Create(
    const v1::CaptureConfig::Http& config, Options options, CaptureCounters* counters) {
  const std::string lower = absl::AsciiStrToLower(config.url());
  if (!absl::StartsWith(lower, "http://") && !absl::StartsWith(lower, "https://")) {
    // Not quoted: a URL may carry a password or a token.
    return absl::InvalidArgumentError("capture http url is not an http:// or https:// URL");
  }
  std::string token;
  if (!config.token_file().empty()) {
    auto text = ReadFileToString(config.token_file(), kMaxTokenFileBytes);
    if (!text.ok()) {
      // The file's name only: a read error carries no contents.
      return absl::FailedPreconditionError(
          absl::StrCat("capture token file ", config.token_file(), " cannot be read"));
    }
    token = std::string(absl::StripAsciiWhitespace(*text));
    if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat("capture token file ", config.token_file(),
                                                        " must hold one token on one line"));
    }
  }
  if (absl::Status started = StartCurl(); !started.ok()) return started;
  CURLM* multi = curl_multi_init();
  CURL* easy = curl_easy_init();
  if (multi == nullptr || easy == nullptr) {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (multi != nullptr) curl_multi_cleanup(multi);
    return absl::FailedPreconditionError("libcurl cannot make a transfer handle");
  }
  return std::unique_ptr<CaptureSink>(
      new CaptureSink(config, options, counters, std::move(token), multi, easy));
}

CaptureSink::CaptureSink(const v1::CaptureConfig::Http& config, Options options,
                         CaptureCounters* counters, std::string token, CURLM* multi, CURL* easy)
    : config_(config),
      options_(options),
      counters_(counters),
      token_(std::move(token)),
      multi_(multi),
      easy_(easy) {
  sender_ = std::thread([this] { Send(); });
}

CaptureSink::~CaptureSink() {
  Close(absl::Now());
  Join();
  curl_easy_cleanup(easy_);
  curl_multi_cleanup(multi_);
}

std::string CaptureSink::SourceFor(const CaptureEvent& event) {
  static const std::string host = HostName();
  return absl::StrCat("seqserve://", host, "/models/", HeaderValue(event.model));
}

void CaptureSink::Enqueue(CaptureEvent event) {
  absl::MutexLock lock(&mu_);
  if (closed_ || events_.size() >= options_.max_queued_events ||
      queued_bytes_ + event.data.size() > options_.max_queued_bytes) {
    counters_->dropped.Increment();
    return;
  }
  queued_bytes_ += event.data.size();
  events_.push_back(std::move(event));
}

void CaptureSink::Close(absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) {
      deadline_ = std::min(deadline_, deadline);
    } else {
      closed_ = true;
      deadline_ = deadline;
    }
  }
  curl_multi_wakeup(multi_);  // a POST under way looks at the deadline now
}

void CaptureSink::Join() {
  if (sender_.joinable()) sender_.join();
}

void CaptureSink::Send() {
  absl::Duration backoff = absl::ZeroDuration();
  for (;;) {
    CaptureEvent event;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !events_.empty() || closed_; };
      mu_.Await(absl::Condition(&ready));
      if (events_.empty() || absl::Now() >= deadline_) {
        // Closed: what could not be sent in time is lost.
        counters_->dropped.Increment(events_.size());
        events_.clear();
        queued_bytes_ = 0;
        return;
      }
      event = events_.front();  // stays queued (and counted) until sent
    }
    bool retry = false;
    const absl::Status posted = Post(event, &retry);
    if (posted.ok() || !retry) {
      if (posted.ok()) {
        counters_->written.Increment();
        backoff = absl::ZeroDuration();
      } else {
        counters_->errors.Increment();
        spdlog::warn("capture sink {}: {}; the record is dropped", LoggableUrl(config_.url()),
                     std::string(posted.message()));
      }
      absl::MutexLock lock(&mu_);
      if (!events_.empty()) {  // Close() may have emptied nothing: only Send pops
        queued_bytes_ -= events_.front().data.size();
        events_.pop_front();
      }
      continue;
    }
    counters_->errors.Increment();
    if (backoff == absl::ZeroDuration()) {
      spdlog::warn("capture sink {}: {}; retrying with backoff", LoggableUrl(config_.url()),
                   std::string(posted.message()));
    }
    backoff = backoff == absl::ZeroDuration() ? options_.first_backoff
                                              : std::min(backoff * 2, options_.longest_backoff);
    // Wait out the backoff, or until a Close() deadline comes first.
    absl::MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + backoff;
    auto closing = [this, until]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return closed_ && deadline_ <= until; };
    mu_.AwaitWithDeadline(absl::Condition(&closing), until);
  }
}

absl::Status CaptureSink::Post(const CaptureEvent& event, bool* retry) {
  *retry = true;
  curl_easy_reset(easy_);
  const std::string id = event.id.empty() ? "unknown" : HeaderValue(event.id);
  const std::string headers_text[] = {
      "Content-Type: application/json",
      "ce-specversion: 1.0",
      absl::StrCat("ce-id: ", id),
      absl::StrCat("ce-source: ", SourceFor(event)),
      absl::StrCat("ce-type: ", kCaptureEventType),
      absl::StrCat("ce-time: ",
                   absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", event.time, absl::UTCTimeZone())),
      absl::StrCat("ce-inferenceservicename: ", HeaderValue(event.model)),
      absl::StrCat("ce-component: predictor"),
      absl::StrCat("ce-endpoint: ", event.version),
      absl::StrCat("ce-modelversion: ", event.version),
      "Expect:",  // no 100-continue round trip
  };
  curl_slist* headers = nullptr;
  for (const std::string& line : headers_text) headers = curl_slist_append(headers, line.c_str());
  if (!token_.empty()) {
    const std::string authorization = absl::StrCat("Authorization: Bearer ", token_);
    headers = curl_slist_append(headers, authorization.c_str());
  }
  size_t reply_bytes = 0;
  char error_text[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(easy_, CURLOPT_URL, config_.url().c_str());
  curl_easy_setopt(easy_, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy_, CURLOPT_POST, 1L);
  curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, event.data.data());
  curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(event.data.size()));
  curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.request_timeout)));
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &DiscardReply);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &reply_bytes);
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_text);
  if (!config_.ca_file().empty())
    curl_easy_setopt(easy_, CURLOPT_CAINFO, config_.ca_file().c_str());
  if (!config_.cert_file().empty()) {
    curl_easy_setopt(easy_, CURLOPT_SSLCERT, config_.cert_file().c_str());
  }
  if (!config_.key_file().empty())
    curl_easy_setopt(easy_, CURLOPT_SSLKEY, config_.key_file().c_str());

  curl_multi_add_handle(multi_, easy_);
  CURLcode result = CURLE_OK;
  bool abandoned = false;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(multi_, &running) != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    if (running == 0) {
      int left = 0;
      if (CURLMsg* message = curl_multi_info_read(multi_, &left);
          message != nullptr && message->msg == CURLMSG_DONE) {
        result = message->data.result;
      }
      break;
    }
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      deadline = deadline_;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      abandoned = true;
      break;
    }
    const int wait_ms =
        static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(deadline - now), 1, 100));
    curl_multi_poll(multi_, nullptr, 0, wait_ms, nullptr);
  }
  long status = 0;
  curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(multi_, easy_);
  curl_slist_free_all(headers);
  if (abandoned) return absl::DeadlineExceededError("stopped at the shutdown's deadline");
  if (result != CURLE_OK) {
    // libcurl's text names the host and the failure, never a header.
    return absl::UnavailableError(absl::StrCat(
        "POST failed: ", error_text[0] != '\0' ? error_text : curl_easy_strerror(result)));
  }
  if (status >= 200 && status < 300) return absl::OkStatus();
  *retry = status >= 500 || status == 408 || status == 429;
  return absl::UnavailableError(absl::StrCat("POST answered HTTP ", status));
}

}  // namespace seqserve
