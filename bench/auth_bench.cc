// What the bearer-token check costs per call: SHA-256 of the presented
// token and a constant-time compare with every configured digest, against
// a file of 20 tokens (the match last), and the same with 1 token.
//   build/release/bench/auth_bench
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "auth/token_authenticator.h"

namespace seqserve {
namespace {

constexpr char kToken[] = "bench-token-0123456789abcdef0123456789abcdef";

std::unique_ptr<TokenAuthenticator> WithTokens(int count) {
  const std::string path = absl::StrCat("/tmp/seqserve-auth-bench-", count, ".txt");
  {
    std::ofstream out(path, std::ios::trunc);
    for (int i = 1; i < count; ++i) out << "caller" << i << ":other-token-" << i << "\n";
    out << "bench:" << kToken << "\n";
  }
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  std::remove(path.c_str());
  return authenticator.ok() ? std::move(*authenticator) : nullptr;
}

void BM_TokenCheck(benchmark::State& state) {
  auto authenticator = WithTokens(static_cast<int>(state.range(0)));
  if (authenticator == nullptr) {
    state.SkipWithError("cannot start the authenticator");
    return;
  }
  CallerCredentials caller;
  caller.peer = "ipv4:127.0.0.1:50000";
  caller.bearer_token = state.range(1) ? kToken : "a-token-nobody-has-0123456789abcdef012345";
  std::string name;
  for (auto _ : state) {
    absl::Status status = authenticator->Identify(caller, &name);
    benchmark::DoNotOptimize(status);
  }
}
// {tokens in the file, whether the presented token is one of them}
BENCHMARK(BM_TokenCheck)->Args({1, 1})->Args({20, 1})->Args({20, 0});

}  // namespace
}  // namespace seqserve

BENCHMARK_MAIN();
