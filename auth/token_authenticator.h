// Bearer-token authentication from a tokens file (--auth_tokens_file),
// re-read when the file changes so a token can be added or revoked without
// a restart. A file that holds no token (empty, or only comments) is a
// valid file that revokes every token: each call that needs one is refused
// until a token is added back. A replacement that cannot be read or has a
// bad line is logged once (file and line number) and ignored: the tokens in
// force stay, and file_valid() says so until the file is fixed. No token
// text is ever logged or put in a status message.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "auth/token_set.h"
#include "serving/authenticator.h"

namespace seqserve {

class TokenAuthenticator final : public Authenticator {
 public:
  struct Options {
    std::string tokens_file;
    // How often the file is checked for a change; zero never checks.
    absl::Duration refresh_interval = absl::Seconds(60);
  };

  // Reads the file; FAILED_PRECONDITION naming it (and the bad line's
  // number) when it cannot be read or has a bad line. A file without a
  // token starts, refusing every token, with a warning.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> Start(Options options);
  ~TokenAuthenticator() override;

  absl::Status Check(const CallerCredentials& caller) const override;
  absl::Status Identify(const CallerCredentials& caller, std::string* name) const override;

  // Re-reads the file now if it changed since the last read; returns
  // whether a new set of tokens took effect.
  bool Refresh();

  size_t token_count() const;
  // Whether the tokens in force are the file on disk: false from a change
  // refused (unreadable, a bad line) until the file is good again.
  bool file_valid() const;
  // Changes of the file refused since the start, each counted once.
  uint64_t reload_failures() const;

 private:
  // What tells a replaced file apart (an editor's rename, a Kubernetes
  // Secret's symlink swap, or an edit in place).
  struct FileStamp {
    ino_t inode = 0;
    off_t size = -1;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    bool operator==(const FileStamp& other) const {
      return inode == other.inode && size == other.size && mtime_ns == other.mtime_ns &&
             ctime_ns == other.ctime_ns;
    }
  };
  struct Loaded {
    FileStamp stamp;
    TokenSet tokens;
  };
  static bool StampOf(const std::string& path, FileStamp* stamp);
  static absl::StatusOr<Loaded> Load(const std::string& path);

  explicit TokenAuthenticator(Options options) : options_(std::move(options)) {}

  const Options options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TokenSet> tokens_ ABSL_GUARDED_BY(mu_);
  FileStamp stamp_ ABSL_GUARDED_BY(mu_);
  // The stamp of the last replacement refused, so it is logged and counted
  // once (a missing file's stamp is the empty one).
  std::optional<FileStamp> refused_ ABSL_GUARDED_BY(mu_);
  bool file_valid_ ABSL_GUARDED_BY(mu_) = true;
  uint64_t reload_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Notification stop_;
  std::thread watcher_;
};

}  // namespace seqserve
