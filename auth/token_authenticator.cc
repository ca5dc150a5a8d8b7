#include "auth/token_authenticator.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace seqserve {

bool TokenAuthenticator::StampOf(const std::string& path, FileStamp* stamp) {
  struct stat info = {};
  if (stat(path.c_str(), &info) != 0) return false;
  *stamp = FileStamp{info.st_ino, info.st_size,
                     int64_t{info.st_mtim.tv_sec} * 1'000'000'000 + info.st_mtim.tv_nsec,
                     int64_t{info.st_ctim.tv_sec} * 1'000'000'000 + info.st_ctim.tv_nsec};
  return true;
}

absl::StatusOr<TokenAuthenticator::Loaded> TokenAuthenticator::Load(const std::string& path) {
  Loaded loaded;
  if (!StampOf(path, &loaded.stamp)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read tokens file ", path, ": ", std::strerror(errno)));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read tokens file ", path));
  }
  auto tokens = TokenSet::Parse(text.str());
  if (!tokens.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("tokens file ", path, ": ", tokens.status().message()));
  }
  loaded.tokens = std::move(*tokens);
  return loaded;
}

namespace {

// An empty set is in force on purpose (every token revoked), but it is
// loud: a file truncated by mistake locks every client out.
void ReportCount(const std::string& path, size_t count, const char* changed) {
  if (count == 0) {
    spdlog::warn("tokens file {}{} holds no token: every call that needs a token is refused",
                 path, changed);
  } else {
    spdlog::info("tokens file {}{} holds {} token{}", path, changed, count,
                 count == 1 ? "" : "s");
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::Start(Options options) {
  auto loaded = Load(options.tokens_file);
  if (!loaded.ok()) return loaded.status();
  std::unique_ptr<TokenAuthenticator> authenticator(new TokenAuthenticator(std::move(options)));
  {
    absl::MutexLock lock(&authenticator->mu_);
    authenticator->stamp_ = loaded->stamp;
    authenticator->tokens_ = std::make_shared<const TokenSet>(std::move(loaded->tokens));
  }
  ReportCount(authenticator->options_.tokens_file, authenticator->token_count(), "");
  const absl::Duration every = authenticator->options_.refresh_interval;
  if (every > absl::ZeroDuration()) {
    TokenAuthenticator* raw = authenticator.get();
    authenticator->watcher_ = std::thread([raw, every] {
      while (!raw->stop_.WaitForNotificationWithTimeout(every)) raw->Refresh();
    });
  }
  return authenticator;
}

TokenAuthenticator::~TokenAuthenticator() {
  stop_.Notify();
  if (watcher_.joinable()) watcher_.join();
}

bool TokenAuthenticator::Refresh() {
  FileStamp now;
  StampOf(options_.tokens_file, &now);  // a missing file keeps the empty stamp
  {
    absl::MutexLock lock(&mu_);
    if (now == stamp_) {
      // Back to the file in force (a refused edit undone).
      refused_.reset();
      file_valid_ = true;
      return false;
    }
    if (now == refused_) return false;
  }
  auto loaded = Load(options_.tokens_file);
  absl::MutexLock lock(&mu_);
  if (!loaded.ok()) {
    refused_ = now;
    file_valid_ = false;
    ++reload_failures_;
    // The message names the file and the line, never a token.
    spdlog::error("{}; the {} in force {}", std::string(loaded.status().message()),
                  tokens_->size() == 1 ? std::string("1 token")
                                       : absl::StrCat(tokens_->size(), " tokens"),
                  tokens_->size() == 1 ? "stays" : "stay");
    return false;
  }
  stamp_ = loaded->stamp;
  refused_.reset();
  file_valid_ = true;
  tokens_ = std::make_shared<const TokenSet>(std::move(loaded->tokens));
  ReportCount(options_.tokens_file, tokens_->size(), " changed and");
  return true;
}

size_t TokenAuthenticator::token_count() const {
  absl::MutexLock lock(&mu_);
  return tokens_->size();
}

bool TokenAuthenticator::file_valid() const {
  absl::MutexLock lock(&mu_);
  return file_valid_;
}

uint64_t TokenAuthenticator::reload_failures() const {
  absl::MutexLock lock(&mu_);
  return reload_failures_;
}

absl::Status TokenAuthenticator::Check(const CallerCredentials& caller) const {
  std::string name;
  return Identify(caller, &name);
}

absl::Status TokenAuthenticator::Identify(const CallerCredentials& caller,
                                          std::string* name) const {
  if (caller.bearer_token.empty()) {
    return absl::UnauthenticatedError(
        "this server requires a bearer token: send the header 'authorization: Bearer <token>'");
  }
  std::shared_ptr<const TokenSet> tokens;
  {
    absl::MutexLock lock(&mu_);
    tokens = tokens_;
  }
  if (!tokens->Find(caller.bearer_token, name)) {
    return absl::UnauthenticatedError("the bearer token is not accepted");
  }
  return absl::OkStatus();
}

}  // namespace seqserve
