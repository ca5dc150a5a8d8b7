#include "tests/support/server_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace seqserve::testing {

ServerProcess::ServerProcess(const std::string& binary,
                             const std::vector<std::string>& arguments,
                             std::shared_ptr<grpc::ChannelCredentials> credentials) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return;
  pid_ = fork();
  if (pid_ == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<std::string> all = {binary, "--port=0", "--http_port=0", "--host=127.0.0.1"};
    all.insert(all.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  output_fd_ = pipe_fds[0];
  ReadUntil("listening on", 20000);
  std::smatch match;
  static const std::regex kListening("listening on [^ ]*:([0-9]+)");
  if (!std::regex_search(output_, match, kListening)) return;
  const int port = std::stoi(match[1]);
  static const std::regex kHttp("HTTP on [^ ]*:([0-9]+)");
  if (std::smatch http; std::regex_search(output_, http, kHttp)) {
    http_port_ = std::stoi(http[1]);
  }
  // Ready once health says SERVING.
  auto channel = grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port),
      credentials ? credentials : grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  for (int i = 0; i < 400; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    grpc::health::v1::HealthCheckResponse response;
    if (health->Check(&context, {}, &response).ok() &&
        response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      port_ = port;
      return;
    }
    usleep(25000);
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(SIGKILL);
  if (output_fd_ >= 0) close(output_fd_);
}

std::string ServerProcess::target() const { return absl::StrCat("127.0.0.1:", port_); }

void ServerProcess::ReadUntil(const std::string& marker, int timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (output_.find(marker) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    pollfd fd{output_fd_, POLLIN, 0};
    if (poll(&fd, 1, 100) <= 0) continue;
    char buffer[4096];
    const ssize_t n = read(output_fd_, buffer, sizeof(buffer));
    if (n <= 0) return;
    output_.append(buffer, n);
  }
}

void ServerProcess::CollectOutput() {
  while (output_fd_ >= 0) {
    pollfd fd{output_fd_, POLLIN, 0};
    if (poll(&fd, 1, 0) <= 0) return;
    char buffer[4096];
    const ssize_t n = read(output_fd_, buffer, sizeof(buffer));
    if (n <= 0) return;
    output_.append(buffer, n);
  }
}

int ServerProcess::Stop(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  ReadUntil("\x01never", 200);  // collect the last lines
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace seqserve::testing
