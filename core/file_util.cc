#include "core/file_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"

namespace seqserve {
namespace {

// Closes the descriptor on every path out.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A pipe or terminal (`--input <(...)`): no size to trust, so read until the
// end, within the limit, and give up on a writer silent for a minute.
absl::StatusOr<std::string> ReadStream(int fd, const std::string& path,
                                       uint64_t max_bytes) {
  constexpr int kSilenceMillis = 60'000;
  std::string contents;
  char buffer[1 << 16];
  while (true) {
    const ssize_t got = read(fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd ready{fd, POLLIN, 0};
      if (poll(&ready, 1, kSilenceMillis) <= 0) {
        return absl::DeadlineExceededError(
            absl::StrCat(path, ": nothing to read for ", kSilenceMillis / 1000, " s"));
      }
      continue;
    }
    if (got < 0) {
      return absl::NotFoundError(
          absl::StrCat(path, ": read failed: ", std::strerror(errno)));
    }
    if (got == 0) return contents;
    if (contents.size() + static_cast<uint64_t>(got) > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": more than the limit of ", max_bytes, " bytes"));
    }
    try {
      contents.append(buffer, static_cast<size_t>(got));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(absl::StrCat(path, ": no memory to read it"));
    }
  }
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO named like a model must not hang the loader.
  FileDescriptor file(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (file.get() < 0) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat info;
  if (fstat(file.get(), &info) != 0) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot stat: ", std::strerror(errno)));
  }
  if (S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": is a directory, not a file"));
  }
  if (!S_ISREG(info.st_mode)) return ReadStream(file.get(), path, max_bytes);
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  if (size > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        path, ": ", size, " bytes is over the limit of ", max_bytes, " bytes"));
  }
  std::string contents;
  try {
    contents.resize(size);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": no memory for ", size, " bytes"));
  }
  size_t done = 0;
  while (done < size) {
    const ssize_t got = read(file.get(), contents.data() + done, size - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      return absl::NotFoundError(
          absl::StrCat(path, ": read failed: ", std::strerror(errno)));
    }
    if (got == 0) {  // the file shrank while being read
      contents.resize(done);
      break;
    }
    done += static_cast<size_t>(got);
  }
  return contents;
}

}  // namespace seqserve
