// Checks that the tsan build can be trusted, both ways. Built only with
// SEQSERVE_SANITIZE=thread (see tests/CMakeLists.txt), where ctest runs each
// test on its own:
//  - the ...IsReported tests race on purpose and must be reported (ctest
//    passes them on ThreadSanitizer's report, which aborts them): two
//    answers of the InferenceRunner delivered at once on two of its pool
//    threads, each bumping a counter of the test's callback; an async
//    client call whose callback, on a gRPC thread, bumps a counter that the
//    caller bumps too; and a server's RequestObserver test double, called
//    on the server's threads, doing the same. The last two show that the
//    suppressions (tests/tsan.supp) and the gRPC ordering of
//    scripts/tsan-deps.sh hide nothing in seqserve code on gRPC's threads;
//  - MutexGuardedCounterIsClean does the first under an absl::Mutex and
//    must not be reported: with Debian's uninstrumented Abseil it is (TSAN
//    cannot see the mutex), so it fails when the instrumented one is not
//    loaded;
//  - EveryAbseilIsTheInstrumentedOne checks where each libabsl came from,
//    gRPC's included.
#include <link.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/seqserve_client.h"
#include "core/onnx_loader.h"
#include "serving/inference_runner.h"
#include "server/model_server.h"
#include "serving/request_observer.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

std::shared_ptr<const ServedModel> Species() {
  auto model = LoadOnnxModel(testing::ReferenceDir() + "/species.onnx");
  EXPECT_TRUE(model.ok()) << model.status();
  auto served = MakeServedModel("species", 1, std::move(*model), v1::ModelConfig());
  EXPECT_TRUE(served.ok()) << served.status();
  return *served;
}

// Two one-row requests on a two-thread runner that sends every pass to its
// pool, one request per pass. Each answer first waits for the other at a
// barrier, so the two run on different pool threads at the same time, then
// calls `bump`.
template <typename Bump>
void AnswerTwiceAtOnce(Bump bump) {
  InferenceRunner::Options options;
  options.threads = 2;
  options.inline_max_macs = 0;  // every pass on a pool thread
  options.limits.max_batch_rows = 1;  // one request per pass
  InferenceRunner runner(options);
  const auto model = Species();
  const std::vector<float> row = {4, 0, 1};
  absl::Barrier both_answering(2);
  absl::Notification done[2];
  for (absl::Notification& notification : done) {
    runner.Run(model, row, 1, absl::InfiniteFuture(),
               [&](auto result) {  // a StatusOr of the pass's output
                 EXPECT_TRUE(result.ok()) << result.status();
                 both_answering.Block();
                 bump();
                 notification.Notify();
               });
  }
  for (absl::Notification& notification : done) notification.WaitForNotification();
}

// Not guarded on purpose: the canary's race.
int unguarded_answers = 0;

TEST(TsanCanary, UnguardedCounterIsReported) {
  AnswerTwiceAtOnce([] { ++unguarded_answers; });
  // Reached only when ThreadSanitizer missed the race.
  ADD_FAILURE() << "ThreadSanitizer did not report the race on unguarded_answers";
}

TEST(TsanCanary, MutexGuardedCounterIsClean) {
  absl::Mutex mu;
  int answers = 0;
  AnswerTwiceAtOnce([&] {
    absl::MutexLock lock(&mu);
    ++answers;
  });
  absl::MutexLock lock(&mu);
  EXPECT_EQ(answers, 2);
}

// A server on the sample models and a client of it.
struct ServerAndClient {
  explicit ServerAndClient(RequestObserver* observer = nullptr) {
    ModelServer::Options options;
    options.address = "127.0.0.1:0";
    options.model_repository = SEQSERVE_MODELS_DIR;
    options.poll_interval = absl::ZeroDuration();
    options.observer = observer;
    auto started = ModelServer::Start(options);
    EXPECT_TRUE(started.ok()) << started.status();
    server = std::move(*started);
    server->WaitUntilReady();
    auto created = Client::Create(absl::StrCat("127.0.0.1:", server->port()));
    EXPECT_TRUE(created.ok()) << created.status();
    client = std::move(*created);
  }
  std::unique_ptr<ModelServer> server;
  std::unique_ptr<Client> client;
};

// Not guarded on purpose: bumped by the caller and by the call's callback.
int unguarded_callbacks = 0;

TEST(TsanCanary, UnguardedCounterInAnAsyncCallbackIsReported) {
  ServerAndClient both;
  absl::Notification done;
  both.client->HealthAsync([&done](absl::Status status) {
    EXPECT_TRUE(status.ok()) << status;
    ++unguarded_callbacks;  // on a gRPC thread
    done.Notify();
  });
  ++unguarded_callbacks;  // the caller, while the call is in flight
  done.WaitForNotification();
  ADD_FAILURE() << "ThreadSanitizer did not report the race on unguarded_callbacks";
}

// A metrics seam whose author forgot a lock, on purpose.
class UnguardedObserver : public RequestObserver {
 public:
  void OnStart(const CallRecord&) override {}
  void OnEnd(const CallRecord&) override { ++ends; }  // on a server thread
  int ends = 0;
};

TEST(TsanCanary, UnguardedCounterInAServerObserverIsReported) {
  UnguardedObserver observer;
  ServerAndClient both(&observer);
  v1::ClassifyRequest request;
  request.set_model("species");
  request.set_rows(1);
  for (float feature : {4.0f, 0.0f, 1.0f}) request.add_features(feature);
  absl::Notification done;
  both.client->ClassifyAsync(request,
                             [&done](absl::StatusOr<v1::ClassifyResponse> response) {
                               EXPECT_TRUE(response.ok()) << response.status();
                               done.Notify();
                             });
  ++observer.ends;  // the test, while the server answers
  done.WaitForNotification();
  ADD_FAILURE() << "ThreadSanitizer did not report the race on UnguardedObserver::ends";
}

TEST(TsanCanary, EveryAbseilIsTheInstrumentedOne) {
  std::vector<std::string> loaded;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        if (info->dlpi_name != nullptr && absl::StrContains(info->dlpi_name, "libabsl_")) {
          static_cast<std::vector<std::string>*>(data)->push_back(info->dlpi_name);
        }
        return 0;
      },
      &loaded);
  // This program links gRPC, which alone loads a few dozen of them.
  EXPECT_GE(loaded.size(), 30u);
  for (const std::string& path : loaded) {
    EXPECT_TRUE(absl::StartsWith(path, SEQSERVE_TSAN_ABSL_LIBDIR "/"))
        << path << " is not from " << SEQSERVE_TSAN_ABSL_LIBDIR
        << " (the binaries need DT_RPATH: link with -Wl,--disable-new-dtags)";
  }
}

}  // namespace
}  // namespace seqserve
