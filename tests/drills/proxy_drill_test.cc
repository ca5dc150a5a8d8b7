// Three seqserve replicas behind HAProxy, run with deploy/haproxy/haproxy.cfg
// as shipped, all on loopback: gRPC and REST callers send through the proxy
// while each replica in turn is stopped with SIGTERM and started again, then
// one is killed with SIGKILL. Every answer is checked; the SIGTERM restarts
// fail no call, with no retry by the callers (the proxy's health checks and
// the server's drain do it), and the kill fails at most the calls it cut.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/seqserve_client.h"
#include "tests/support/http_client.h"
#include "tests/support/server_process.h"

namespace seqserve {
namespace {

using testing::HttpConnection;
using testing::ServerProcess;

constexpr int kReplicas = 3;
constexpr int kGrpcCallers = 4, kRestCallers = 2;

std::string HaproxyBinary() {
  for (const char* path : {"/usr/sbin/haproxy", "/usr/bin/haproxy"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

// A port no one listens on now (the kernel's pick, released at once).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), size) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

std::string Loopback(int port) { return absl::StrCat("127.0.0.1:", port); }

// HAProxy in the foreground with the shipped configuration and the
// addresses in its environment; its output goes to a file for failures.
class Proxy {
 public:
  Proxy(const std::map<std::string, std::string>& environment, const std::string& log)
      : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      for (const auto& [name, value] : environment) setenv(name.c_str(), value.c_str(), 1);
      const std::string binary = HaproxyBinary();
      const std::string config = absl::StrCat(SEQSERVE_DEPLOY_DIR, "/haproxy/haproxy.cfg");
      execl(binary.c_str(), binary.c_str(), "-db", "-f", config.c_str(), nullptr);
      _exit(127);
    }
  }
  ~Proxy() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::string log() const {
    return testing::RunCommand(absl::StrCat("cat ", log_)).output;
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// Calls through the proxy until stopped, counting answers and failures;
// a failure is any answer but the species sample's right one.
class Callers {
 public:
  Callers(const std::string& grpc_target, int http_port) {
    for (int i = 0; i < kGrpcCallers; ++i) {
      threads_.emplace_back([this, grpc_target] { CallGrpc(grpc_target); });
    }
    for (int i = 0; i < kRestCallers; ++i) {
      threads_.emplace_back([this, http_port] { CallRest(http_port); });
    }
  }
  ~Callers() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  int answered() const { return answered_; }
  int failed() {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  std::string first_failure() {
    absl::MutexLock lock(&mu_);
    return first_failure_;
  }

 private:
  void Fail(const std::string& what) {
    absl::MutexLock lock(&mu_);
    if (failed_++ == 0) first_failure_ = what;
  }
  void CallGrpc(const std::string& target) {
    ClientOptions options;
    options.max_attempts = 1;  // no retry: the proxy and the drain must do
    options.deadline = absl::Seconds(20);
    auto client = Client::Create(target, options);
    if (!client.ok()) return Fail(client.status().ToString());
    while (!stop_) {
      auto answer = (*client)->Classify("species", {4, 0, 1}, 1);
      if (answer.ok() && answer->rows.size() == 1 && answer->rows[0].predicted_label == "mammal") {
        ++answered_;
      } else {
        Fail(absl::StrCat("gRPC: ", answer.ok() ? "a wrong answer" : answer.status().ToString()));
      }
    }
  }
  void CallRest(int port) {
    auto connection = std::make_unique<HttpConnection>(port);
    while (!stop_) {
      const testing::HttpReply reply =
          connection->Send("POST", "/v1/models/species:classify",
                           R"({"features": [4, 0, 1], "rows": 1})");
      if (reply.status == 200 && absl::StrContains(reply.body, "\"predicted_label\":\"mammal\"")) {
        ++answered_;
      } else {
        Fail(absl::StrCat("REST: ", reply.status, " ", reply.body));
      }
      // HAProxy may close a keep-alive connection; a caller reconnects.
      if (auto it = reply.headers.find("connection");
          reply.status == 0 || (it != reply.headers.end() && it->second == "close")) {
        connection = std::make_unique<HttpConnection>(port);
      }
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  absl::Mutex mu_;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_failure_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;  // last: started once the rest exists
};

class ProxyDrill : public ::testing::Test {
 protected:
  void SetUp() override {
    if (HaproxyBinary().empty()) {
      GTEST_SKIP() << "haproxy is not installed (scripts/test-packages.txt installs it)";
    }
    for (int i = 0; i < kReplicas; ++i) ports_.push_back({FreePort(), FreePort()});
    proxy_grpc_ = FreePort();
    proxy_http_ = FreePort();
    proxy_admin_ = FreePort();
    for (int i = 0; i < kReplicas; ++i) {
      replicas_.push_back(StartReplica(i));
      ASSERT_TRUE(replicas_[i]->ready()) << replicas_[i]->output();
    }
    std::map<std::string, std::string> environment = {
        {"SEQSERVE_PROXY_GRPC", Loopback(proxy_grpc_)},
        {"SEQSERVE_PROXY_HTTP", Loopback(proxy_http_)},
        {"SEQSERVE_PROXY_ADMIN", Loopback(proxy_admin_)}};
    for (int i = 0; i < kReplicas; ++i) {
      environment[absl::StrCat("SEQSERVE_", i + 1, "_GRPC")] = Loopback(ports_[i].first);
      environment[absl::StrCat("SEQSERVE_", i + 1, "_HTTP")] = Loopback(ports_[i].second);
    }
    proxy_ = std::make_unique<Proxy>(environment, absl::StrCat(::testing::TempDir(),
                                                               "/haproxy.log"));
    for (int i = 0; i < kReplicas; ++i) {
      ASSERT_TRUE(AwaitState(i, "UP")) << "replica " << i << ": " << State(i) << "\n"
                                       << proxy_->log();
    }
  }

  std::unique_ptr<ServerProcess> StartReplica(int i) {
    return std::make_unique<ServerProcess>(
        SEQSERVE_PATH,
        std::vector<std::string>{absl::StrCat("--port=", ports_[i].first),
                                 absl::StrCat("--http_port=", ports_[i].second),
                                 absl::StrCat("--model_repository=", SEQSERVE_MODELS_DIR),
                                 "--drain_seconds=5", "--drain_quiet_seconds=1",
                                 "--shutdown_grace_seconds=10"});
  }

  // HAProxy's stats as CSV. Asked in HTTP/1.0: the answer then ends with
  // the connection instead of coming in chunks.
  std::string StatsCsv() {
    HttpConnection connection(proxy_admin_);
    if (!connection.Write("GET /stats;csv;norefresh HTTP/1.0\r\n\r\n")) return "";
    std::string text;
    char buffer[4096];
    for (ssize_t got; (got = read(connection.fd(), buffer, sizeof(buffer))) > 0;) {
      text.append(buffer, static_cast<size_t>(got));
    }
    return text;
  }

  // The state HAProxy's checks give replica `i` (UP, DOWN, ...) on both
  // backends, from its stats page.
  std::string State(int i) {
    std::string states;
    for (absl::string_view line : absl::StrSplit(StatsCsv(), '\n')) {
      const std::vector<std::string> fields = absl::StrSplit(line, ',');
      if (fields.size() > 17 && fields[1] == absl::StrCat("seqserve-", i + 1)) {
        absl::StrAppend(&states, states.empty() ? "" : " ", fields[17]);
      }
    }
    return states;
  }
  bool AwaitState(int i, const std::string& state) {
    const std::string both = absl::StrCat(state, " ", state);
    for (absl::Time end = absl::Now() + absl::Seconds(30); absl::Now() < end;) {
      if (State(i) == both) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  std::vector<std::pair<int, int>> ports_;  // each replica's gRPC and HTTP
  int proxy_grpc_ = 0, proxy_http_ = 0, proxy_admin_ = 0;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
  std::unique_ptr<Proxy> proxy_;
};

TEST_F(ProxyDrill, RollingRestartsFailNoCallAndAKillFailsAtMostTheCallsItCut) {
  Callers callers(Loopback(proxy_grpc_), proxy_http_);
  absl::SleepFor(absl::Milliseconds(500));
  for (int i = 0; i < kReplicas; ++i) {
    const int before = callers.answered();
    EXPECT_EQ(replicas_[i]->Stop(SIGTERM), 0) << replicas_[i]->output();
    replicas_[i] = StartReplica(i);
    ASSERT_TRUE(replicas_[i]->ready()) << replicas_[i]->output();
    ASSERT_TRUE(AwaitState(i, "UP")) << proxy_->log();
    EXPECT_GT(callers.answered(), before) << "no call was answered while replica " << i
                                          << " restarted";
  }
  const int failed_by_restarts = callers.failed();
  EXPECT_EQ(failed_by_restarts, 0) << callers.first_failure() << "\n" << proxy_->log();

  const int before_kill = callers.answered();
  replicas_[1]->Stop(SIGKILL);
  ASSERT_TRUE(AwaitState(1, "DOWN")) << proxy_->log();
  absl::SleepFor(absl::Milliseconds(500));
  callers.Stop();
  const int failed_by_kill = callers.failed() - failed_by_restarts;
  std::cout << "answered " << callers.answered() << " calls; the kill failed " << failed_by_kill
            << "\n";
  // Only a call the killed replica held could fail (one per caller at
  // most); the proxy sends the rest, and those it could not deliver, on.
  EXPECT_LE(failed_by_kill, kGrpcCallers + kRestCallers) << callers.first_failure();
  EXPECT_GT(callers.answered(), before_kill);
}

// One id per call across the proxy: the caller's X-Request-Id, else the
// one seqserve makes; seqserve answers with it, and the proxy's log has it.
TEST_F(ProxyDrill, TheProxysLogAndTheAnswerShareTheCallsId) {
  std::vector<std::string> ids;
  for (const std::string& header : {std::string("X-Request-Id: drill-call-1\r\n"), std::string()}) {
    const testing::HttpReply reply =
        testing::HttpCall(proxy_http_, "POST", "/v1/models/species:classify",
                          R"({"features": [4, 0, 1], "rows": 1})", header);
    ASSERT_EQ(reply.status, 200) << reply.body;
    auto it = reply.headers.find("x-request-id");
    ASSERT_NE(it, reply.headers.end());
    ids.push_back(it->second);
  }
  EXPECT_EQ(ids[0], "drill-call-1");
  EXPECT_EQ(ids[1].size(), 32u) << ids[1];  // made by seqserve
  for (absl::Time end = absl::Now() + absl::Seconds(10);
       absl::Now() < end && !absl::StrContains(proxy_->log(), ids[1]);) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  for (const std::string& id : ids) {
    EXPECT_TRUE(absl::StrContains(proxy_->log(), absl::StrCat("request_id=\"", id, "\"")))
        << id << "\n" << proxy_->log();
  }
}

}  // namespace
}  // namespace seqserve
