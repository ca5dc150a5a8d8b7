// Runs the real seqserve binary as a child process on a free port, for
// end-to-end tests of the CLI, the examples and signal handling.
#pragma once

#include <sys/types.h>

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <vector>

namespace seqserve::testing {

class ServerProcess {
 public:
  // Starts `binary` with --port=0, --http_port=0 and `arguments` (a later
  // flag wins), then waits until it prints the ports it listens on and its
  // health check says SERVING, asked over `credentials` (null: plaintext).
  ServerProcess(const std::string& binary, const std::vector<std::string>& arguments,
                std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  // Kills it if it still runs.
  ~ServerProcess();

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ready() const { return port_ > 0; }
  int port() const { return port_; }
  // The HTTP port; 0 when it has none (--http_port=-1).
  int http_port() const { return http_port_; }
  std::string target() const;
  // Everything the server printed so far.
  const std::string& output() const { return output_; }
  // Reads what the server printed without waiting: long tests call it now
  // and then so a full pipe never blocks the server's logging.
  void CollectOutput();
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits for the exit; returns the exit code (or -1
  // when it died of a signal or was not running).
  int Stop(int signal);

 private:
  void ReadUntil(const std::string& marker, int timeout_ms);

  pid_t pid_ = -1;
  int output_fd_ = -1;
  int port_ = 0;
  int http_port_ = 0;
  std::string output_;
};

// Runs a shell command; returns its exit code and what it printed
// (stdout and stderr together).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::string& command);

}  // namespace seqserve::testing
