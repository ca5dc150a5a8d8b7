// Dynamic batching: stacking, limits, queue bounds and deadlines, on the
// runner directly so the queue state is under the test's control.
#include "serving/inference_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/onnx_loader.h"
#include "tests/support/reference_data.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const ServedModel> Species(uint32_t config_max_batch_rows = 0) {
  auto model = LoadOnnxModel(testing::ReferenceDir() + "/species.onnx");
  EXPECT_TRUE(model.ok()) << model.status();
  v1::ModelConfig config;
  config.mutable_batching()->set_max_batch_rows(config_max_batch_rows);
  auto served = MakeServedModel("species", 1, std::move(*model), config);
  EXPECT_TRUE(served.ok()) << served.status();
  return *served;
}

// Collects one request's answer.
struct Answer {
  absl::Notification done;
  absl::Status status;
  std::vector<float> logits;

  InferenceRunner::Done Callback() {
    return [this](absl::StatusOr<InferenceRunner::PassOutput> result) {
      status = result.status();
      if (result.ok()) logits.assign(result->logits.begin(), result->logits.end());
      done.Notify();
    };
  }
};

class InferenceRunnerTest : public ::testing::Test {
 protected:
  // One slot, held by a request whose callback waits for Release(), so that
  // later requests queue up behind it. The request runs inline on the idle
  // runner, so it is sent from a thread of its own.
  void StartBlocked(InferenceRunner::Options options) {
    options.threads = 1;
    runner_ = std::make_unique<InferenceRunner>(options);
    HoldTheSlot();
  }
  // A caller's pass on runner_ whose callback waits for Release().
  void HoldTheSlot() {
    blocker_ = std::thread([this] {
      runner_->Run(model_, blocker_row_, 1, absl::InfiniteFuture(),
                   [this](absl::StatusOr<InferenceRunner::PassOutput>) {
                     blocked_.Notify();
                     release_.WaitForNotification();
                   });
    });
    blocked_.WaitForNotification();
  }
  void Release() { release_.Notify(); }
  // A failed test must not leave the slot blocked: the runner joins it.
  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (blocker_.joinable()) blocker_.join();
    runner_.reset();
  }

  std::shared_ptr<const ServedModel> model_ = Species();
  const std::vector<float> blocker_row_ = {4, 0, 1};
  absl::Notification blocked_, release_;
  std::thread blocker_;
  std::unique_ptr<InferenceRunner> runner_;
};

TEST_F(InferenceRunnerTest, QueuedRequestsShareOneForwardPass) {
  StartBlocked({});
  auto reference = testing::LoadReference("species");
  ASSERT_TRUE(reference.ok());
  // Five requests of 3 rows each, from different parts of the reference.
  std::vector<Answer> answers(5);
  for (size_t i = 0; i < answers.size(); ++i) {
    runner_->Run(model_, absl::MakeConstSpan(reference->inputs).subspan(i * 9, 9), 3,
                 absl::InfiniteFuture(), answers[i].Callback());
  }
  const auto before = runner_->stats();
  Release();
  for (size_t i = 0; i < answers.size(); ++i) {
    answers[i].done.WaitForNotification();
    ASSERT_TRUE(answers[i].status.ok()) << answers[i].status;
    // Each request gets exactly its own rows.
    EXPECT_EQ(testing::FirstMismatch(
                  answers[i].logits,
                  absl::MakeConstSpan(reference->logits).subspan(i * 9, 9)),
              -1)
        << "request " << i;
  }
  // Counted before the answers go out, so no wait is needed to read them.
  const auto after = runner_->stats();
  EXPECT_EQ(after.passes - before.passes, 1u);
  EXPECT_EQ(after.requests - before.requests, 5u);
  EXPECT_EQ(after.rows - before.rows, 15u);
}

TEST_F(InferenceRunnerTest, PassesStayWithinMaxBatchRows) {
  InferenceRunner::Options options;
  options.limits.max_batch_rows = 6;
  StartBlocked(options);
  std::vector<Answer> answers(5);
  const std::vector<float> rows(9, 1.0f);
  for (auto& answer : answers) {
    runner_->Run(model_, rows, 3, absl::InfiniteFuture(), answer.Callback());
  }
  const auto before = runner_->stats();
  Release();
  for (auto& answer : answers) answer.done.WaitForNotification();
  // 15 rows at most 6 per pass, whole requests only: 6 + 6 + 3.
  EXPECT_EQ(runner_->stats().passes - before.passes, 3u);
}

TEST_F(InferenceRunnerTest, AModelsConfigOverridesTheDefaults) {
  auto unbatched = Species(/*config_max_batch_rows=*/1);
  InferenceRunner runner({});
  EXPECT_EQ(runner.LimitsFor(*unbatched).max_batch_rows, 1u);
  EXPECT_EQ(runner.LimitsFor(*model_).max_batch_rows, 256u);
}

TEST_F(InferenceRunnerTest, AFullQueueRefusesWithResourceExhausted) {
  InferenceRunner::Options options;
  options.limits.max_queued_rows = 10;
  StartBlocked(options);
  const std::vector<float> rows(3 * 4, 1.0f);
  Answer first, second, third;
  runner_->Run(model_, rows, 4, absl::InfiniteFuture(), first.Callback());
  runner_->Run(model_, rows, 4, absl::InfiniteFuture(), second.Callback());
  runner_->Run(model_, rows, 4, absl::InfiniteFuture(), third.Callback());  // 12 > 10
  ASSERT_TRUE(third.done.HasBeenNotified());  // refused at once, not queued
  EXPECT_EQ(third.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(third.status.message()),
              HasSubstr("model 'species' has more than 10 rows waiting"));
  Release();
  first.done.WaitForNotification();
  second.done.WaitForNotification();
  EXPECT_TRUE(first.status.ok());
  EXPECT_TRUE(second.status.ok());
}

TEST_F(InferenceRunnerTest, ADeadlinePassedWhileQueuedIsNotRun) {
  StartBlocked({});
  const std::vector<float> row = {4, 0, 1};
  Answer expiring, patient;
  runner_->Run(model_, row, 1, absl::Now() + absl::Milliseconds(20), expiring.Callback());
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), patient.Callback());
  absl::SleepFor(absl::Milliseconds(60));
  Release();
  expiring.done.WaitForNotification();
  patient.done.WaitForNotification();
  EXPECT_EQ(expiring.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(expiring.status.message()), HasSubstr("while waiting"));
  EXPECT_TRUE(patient.status.ok());
  // Only the patient request ran: one row after the blocker's.
  const auto stats = runner_->stats();
  EXPECT_EQ(stats.expired, 1u);
  EXPECT_EQ(stats.requests, 2u);
  EXPECT_EQ(stats.rows, 2u);
}

// A stacked pass copies each request's features: a request whose
// features do not match its rows is refused before it can overflow that.
TEST_F(InferenceRunnerTest, FeaturesThatDoNotMatchTheRowsAreRefusedAtOnce) {
  StartBlocked({});
  const std::vector<float> twelve(12, 1.0f);
  Answer wrong;
  runner_->Run(model_, twelve, 2, absl::InfiniteFuture(), wrong.Callback());
  ASSERT_TRUE(wrong.done.HasBeenNotified());
  EXPECT_EQ(wrong.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wrong.status.message()), HasSubstr("12 feature values for 2 rows"));
}

TEST_F(InferenceRunnerTest, TooFewFeaturesOnAnIdleRunnerAreRefusedAndCountNothing) {
  InferenceRunner runner({});
  Answer answer;
  const std::vector<float> too_few = {4, 0};  // 2 values for one row of 3
  runner.Run(model_, too_few, 1, absl::InfiniteFuture(), answer.Callback());
  ASSERT_TRUE(answer.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(answer.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(answer.status.message()), HasSubstr("got 2 feature values"));
  EXPECT_EQ(runner.stats().passes, 0u);
  EXPECT_EQ(runner.stats().rows, 0u);
}

// The oldest waiting request goes first, whatever its model: a busy model
// cannot starve a quiet one.
TEST_F(InferenceRunnerTest, ModelsAreServedInTheOrderTheirRequestsArrived) {
  InferenceRunner::Options options;
  options.limits.max_batch_rows = 1;  // one request per pass
  StartBlocked(options);
  auto other = Species();
  const std::vector<float> row = {4, 0, 1};
  absl::Mutex mu;
  std::vector<std::string> order;
  auto record = [&](std::string name) {
    return [&, name](absl::StatusOr<InferenceRunner::PassOutput> result) {
      EXPECT_TRUE(result.ok()) << result.status();
      absl::MutexLock lock(&mu);
      order.push_back(name);
    };
  };
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), record("a1"));
  absl::SleepFor(absl::Milliseconds(2));
  runner_->Run(other, row, 1, absl::InfiniteFuture(), record("b1"));
  absl::SleepFor(absl::Milliseconds(2));
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), record("a2"));
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), record("a3"));
  Release();
  blocker_.join();
  runner_.reset();  // drains the queue
  EXPECT_THAT(order, ::testing::ElementsAre("a1", "b1", "a2", "a3"));
}

// A `done` that sends another request: that one queues and runs on the
// pool, never nested inside the pass whose buffers are being read.
TEST_F(InferenceRunnerTest, ADoneCallbackMayRunAnotherRequest) {
  InferenceRunner::Options options;
  options.threads = 2;  // a free slot, so only the nesting keeps it off inline
  InferenceRunner runner(options);
  const std::vector<float> row = {4, 0, 1};
  Answer outer, inner;
  std::thread::id outer_thread, inner_thread;
  runner.Run(model_, row, 1, absl::InfiniteFuture(),
             [&](absl::StatusOr<InferenceRunner::PassOutput> result) {
               outer_thread = std::this_thread::get_id();
               runner.Run(model_, row, 1, absl::InfiniteFuture(),
                          [&](absl::StatusOr<InferenceRunner::PassOutput> nested) {
                            inner_thread = std::this_thread::get_id();
                            inner.Callback()(std::move(nested));
                          });
               outer.Callback()(std::move(result));
             });
  ASSERT_TRUE(outer.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(inner.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(outer.status.ok()) << outer.status;
  ASSERT_TRUE(inner.status.ok()) << inner.status;
  EXPECT_EQ(inner.logits, outer.logits);
  EXPECT_NE(inner_thread, outer_thread);
}

// A pool thread that waits for more rows because another pass runs must
// stop waiting when that pass ends: an idle server never delays.
TEST_F(InferenceRunnerTest, TheQueueDelayEndsWhenTheServerGoesIdle) {
  InferenceRunner::Options options;
  options.threads = 2;
  options.inline_max_macs = 0;  // everything on the pool
  options.limits.max_queue_delay = absl::Seconds(60);
  InferenceRunner runner(options);
  const std::vector<float> row = {4, 0, 1};
  absl::Notification running, release;
  Answer blocker, waiting;
  runner.Run(model_, row, 1, absl::InfiniteFuture(),
             [&](absl::StatusOr<InferenceRunner::PassOutput> result) {
               running.Notify();
               release.WaitForNotification();
               blocker.Callback()(std::move(result));
             });
  running.WaitForNotification();
  // The second pool thread takes this and waits for more rows.
  runner.Run(model_, row, 1, absl::InfiniteFuture(), waiting.Callback());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(waiting.done.HasBeenNotified());
  release.Notify();
  // Far below the 60 s delay: the wait ended with the other pass.
  ASSERT_TRUE(waiting.done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(waiting.status.ok()) << waiting.status;
}

TEST_F(InferenceRunnerTest, ALoneRequestDoesNotWaitForTheQueueDelay) {
  InferenceRunner::Options options;
  options.threads = 1;
  options.limits.max_queue_delay = absl::Seconds(30);
  InferenceRunner runner(options);
  Answer answer;
  const std::vector<float> row = {4, 0, 1};
  const auto thread = std::this_thread::get_id();
  std::thread::id ran_on;
  runner.Run(model_, row, 1, absl::InfiniteFuture(),
             [&](absl::StatusOr<InferenceRunner::PassOutput> result) {
               ran_on = std::this_thread::get_id();
               answer.Callback()(std::move(result));
             });
  // Idle runner: the pass ran before Run returned, on the caller's thread.
  ASSERT_TRUE(answer.done.HasBeenNotified());
  EXPECT_TRUE(answer.status.ok());
  EXPECT_EQ(ran_on, thread);
}

TEST_F(InferenceRunnerTest, APassOverTheInlineLimitRunsOnThePool) {
  InferenceRunner::Options options;
  options.threads = 1;
  options.inline_max_macs = 0;
  InferenceRunner runner(options);
  Answer answer;
  const std::vector<float> row = {4, 0, 1};
  std::thread::id ran_on;
  runner.Run(model_, row, 1, absl::InfiniteFuture(),
             [&](absl::StatusOr<InferenceRunner::PassOutput> result) {
               ran_on = std::this_thread::get_id();
               answer.Callback()(std::move(result));
             });
  ASSERT_TRUE(answer.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(answer.status.ok());
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST_F(InferenceRunnerTest, ACancelledQueuedRequestIsNotRun) {
  StartBlocked({});
  const std::vector<float> row = {4, 0, 1};
  std::atomic<bool> gave_up{false};
  Answer cancelled, patient;
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), cancelled.Callback(),
               [&] { return gave_up.load(); });
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), patient.Callback(),
               [] { return false; });
  gave_up = true;
  const auto before = runner_->stats();
  Release();
  cancelled.done.WaitForNotification();
  patient.done.WaitForNotification();
  EXPECT_EQ(cancelled.status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(patient.status.ok());
  const auto after = runner_->stats();
  EXPECT_EQ(after.cancelled - before.cancelled, 1u);
  EXPECT_EQ(after.rows - before.rows, 1u);  // only the patient one ran
}

// The end of a shutdown's grace: a deep queue is answered at once, not run.
TEST_F(InferenceRunnerTest, CancelQueuedAnswersADeepQueueWithoutRunningIt) {
  InferenceRunner::Options options;
  options.limits.max_batch_rows = 1;  // one pass per request, were they run
  StartBlocked(options);
  const std::vector<float> row = {4, 0, 1};
  std::vector<Answer> answers(2000);
  for (auto& answer : answers) {
    runner_->Run(model_, row, 1, absl::InfiniteFuture(), answer.Callback());
  }
  const auto before = runner_->stats();
  runner_->CancelQueued();
  for (auto& answer : answers) {
    ASSERT_TRUE(answer.done.HasBeenNotified());  // answered before CancelQueued returned
    EXPECT_EQ(answer.status.code(), absl::StatusCode::kUnavailable);
  }
  Answer late;
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), late.Callback());
  ASSERT_TRUE(late.done.HasBeenNotified());
  EXPECT_EQ(late.status.code(), absl::StatusCode::kUnavailable);
  Release();
  blocker_.join();
  const auto after = runner_->stats();
  EXPECT_EQ(after.cancelled - before.cancelled, 2000u);
  EXPECT_EQ(after.passes, before.passes);
}

TEST_F(InferenceRunnerTest, CancelQueuedStopsARunningPassAtItsNextChunk) {
  // 1024 -> 4096 -> 1: the scratch budget holds 1024 rows, so 16384 rows
  // run in 16 chunks of about 4 GMAC each, seconds in all.
  constexpr int kInput = 1024, kHidden = 4096;
  constexpr size_t kRows = 16384;
  std::vector<Layer> layers;
  layers.push_back(Layer::Linear(kInput, kHidden, std::vector<float>(size_t{kInput} * kHidden,
                                                                     1e-3f),
                                 std::vector<float>(kHidden, 0.0f)));
  layers.push_back(Layer::Linear(kHidden, 1, std::vector<float>(kHidden, 1e-3f), {0.0f}));
  auto model = Sequential::Create(kInput, std::move(layers), Head::kLogits);
  ASSERT_TRUE(model.ok()) << model.status();
  auto served = MakeServedModel("wide", 1, std::move(*model), v1::ModelConfig());
  ASSERT_TRUE(served.ok()) << served.status();
  InferenceRunner::Options options;
  options.threads = 1;
  InferenceRunner runner(options);
  const std::vector<float> rows(kRows * kInput, 1.0f);
  Answer answer;
  runner.Run(*served, rows, kRows, absl::InfiniteFuture(), answer.Callback());
  // The pass has started (an idle pool thread takes it at once) and has
  // chunks left when the grace period ends.
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_FALSE(answer.done.HasBeenNotified()) << "the pass ended before it could be stopped";
  runner.CancelQueued();
  answer.done.WaitForNotification();
  EXPECT_EQ(answer.status.code(), absl::StatusCode::kUnavailable) << answer.status;
  EXPECT_THAT(std::string(answer.status.message()), HasSubstr("before the forward pass ended"));
  EXPECT_EQ(runner.stats().passes, 0u);
}

TEST_F(InferenceRunnerTest, APassReportsItsQueueWaitAndBatchSize) {
  StartBlocked({});
  const std::vector<float> rows(3 * 4, 1.0f);
  absl::Notification done;
  InferenceRunner::PassOutput seen;
  runner_->Run(model_, rows, 4, absl::InfiniteFuture(),
               [&](absl::StatusOr<InferenceRunner::PassOutput> output) {
                 ASSERT_TRUE(output.ok());
                 seen = *output;
                 done.Notify();
               });
  Answer other;
  runner_->Run(model_, absl::MakeConstSpan(rows).subspan(0, 6), 2, absl::InfiniteFuture(),
               other.Callback());
  absl::SleepFor(absl::Milliseconds(20));
  Release();
  done.WaitForNotification();
  other.done.WaitForNotification();
  EXPECT_EQ(seen.batch_rows, 6u);  // its 4 rows and the other's 2
  EXPECT_EQ(seen.logits.size(), 4u * 3u);
  EXPECT_GE(seen.queued, absl::Milliseconds(20));
}

// Background work (shadow copies): callers' rows go first, and background
// work runs on a thread of its own, never in a slot of the pool.
constexpr auto kBackground = InferenceRunner::Priority::kBackground;

TEST_F(InferenceRunnerTest, BackgroundWorkWaitsWhileCallersRowsWait) {
  StartBlocked({});
  const std::vector<float> row = {4, 0, 1};
  Answer caller, background;
  // The pool's one slot is held: the caller's rows wait, and so does the
  // background work queued after them, though its own thread is free.
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), caller.Callback());
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), background.Callback(), nullptr,
               kBackground);
  // A runner that let it run would have within this time; this one never does.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(background.done.HasBeenNotified());
  size_t queued = 0;
  for (const auto& waiting : runner_->queued_rows()) queued += waiting.rows;
  EXPECT_EQ(queued, 2u);
  Release();
  caller.done.WaitForNotification();
  background.done.WaitForNotification();
  EXPECT_TRUE(caller.status.ok());
  EXPECT_TRUE(background.status.ok());
  // Never stacked with the caller's rows: a pass each, besides the blocker's.
  EXPECT_EQ(runner_->stats().passes, 3u);
}

TEST_F(InferenceRunnerTest, BackgroundWorkRunsOnAThreadOfItsOwnOnePassAtATime) {
  InferenceRunner::Options options;
  options.threads = 1;
  options.inline_max_macs = 0;  // callers' passes on the pool's one thread
  InferenceRunner runner(options);
  const std::vector<float> row = {4, 0, 1};
  // A background pass whose callback holds its slot until released.
  absl::Notification holding, release;
  std::thread::id held_on;
  runner.Run(model_, row, 1, absl::InfiniteFuture(),
             [&](absl::StatusOr<InferenceRunner::PassOutput>) {
               held_on = std::this_thread::get_id();
               holding.Notify();
               release.WaitForNotification();
             },
             nullptr, kBackground);
  ASSERT_TRUE(holding.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_NE(held_on, std::this_thread::get_id());  // queued, never inline
  // More background work waits for the background thread.
  Answer waiting;
  runner.Run(model_, row, 1, absl::InfiniteFuture(), waiting.Callback(), nullptr, kBackground);
  // A caller's pass runs on the pool's only thread.
  Answer caller;
  std::thread::id caller_ran_on;
  runner.Run(model_, row, 1, absl::InfiniteFuture(),
             [&](absl::StatusOr<InferenceRunner::PassOutput> output) {
               caller_ran_on = std::this_thread::get_id();
               caller.Callback()(std::move(output));
             });
  ASSERT_TRUE(caller.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(caller.status.ok());
  EXPECT_NE(caller_ran_on, held_on);
  EXPECT_FALSE(waiting.done.HasBeenNotified());
  const auto queued = runner.queued_rows();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued.front().rows, 1u);
  release.Notify();
  waiting.done.WaitForNotification();
  EXPECT_TRUE(waiting.status.ok());
}

TEST_F(InferenceRunnerTest, BackgroundWorkAfterTheRunnerBeganToStopIsRefused) {
  StartBlocked({});
  const std::vector<float> row = {4, 0, 1};
  // A caller's pass whose callback queues background work while the
  // runner is being destroyed: answered at once, never left queued.
  Answer caller, background;
  InferenceRunner* runner = runner_.get();  // runner_ is null while it is destroyed
  runner->Run(model_, row, 1, absl::InfiniteFuture(),
              [&](absl::StatusOr<InferenceRunner::PassOutput> output) {
                caller.Callback()(std::move(output));
                runner->Run(model_, row, 1, absl::InfiniteFuture(), background.Callback(),
                            nullptr, kBackground);
              });
  std::thread destroy([this] {
    Release();
    blocker_.join();
    runner_.reset();
  });
  destroy.join();
  ASSERT_TRUE(caller.done.HasBeenNotified());
  ASSERT_TRUE(background.done.HasBeenNotified());
  EXPECT_TRUE(caller.status.ok());
}

TEST_F(InferenceRunnerTest, CancelQueuedAnswersBackgroundWorkToo) {
  StartBlocked({});
  const std::vector<float> row = {4, 0, 1};
  Answer caller, background;
  // Both wait: the caller's rows for the held slot, the background work
  // for them.
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), caller.Callback());
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), background.Callback(), nullptr,
               kBackground);
  runner_->CancelQueued();
  ASSERT_TRUE(background.done.HasBeenNotified());
  EXPECT_EQ(background.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(caller.status.code(), absl::StatusCode::kUnavailable);
}

TEST_F(InferenceRunnerTest, BackgroundWorkWaitsWhileACallersPassRuns) {
  StartBlocked({});  // a caller's pass runs; nothing is queued
  const std::vector<float> row = {4, 0, 1};
  Answer background;
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), background.Callback(), nullptr,
               kBackground);
  // Its own thread is free and no caller's rows wait; a runner that let it
  // run beside the caller's pass would have within this time.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(background.done.HasBeenNotified());
  Release();
  ASSERT_TRUE(background.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(background.status.ok()) << background.status;
}

TEST_F(InferenceRunnerTest, BackgroundWorkStartsOnlyAfterCallersWereQuiet) {
  InferenceRunner::Options options;
  options.background_quiet = absl::Milliseconds(300);
  InferenceRunner runner(options);
  const std::vector<float> row = {4, 0, 1};
  const absl::Time before_caller = absl::Now();
  Answer caller, background;
  runner.Run(model_, row, 1, absl::InfiniteFuture(), caller.Callback());
  absl::Time ran_at;
  runner.Run(model_, row, 1, absl::InfiniteFuture(),
             [&](absl::StatusOr<InferenceRunner::PassOutput> output) {
               ran_at = absl::Now();
               background.Callback()(std::move(output));
             },
             nullptr, kBackground);
  ASSERT_TRUE(background.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(caller.status.ok());
  EXPECT_TRUE(background.status.ok());
  // The caller's pass ended after `before_caller`, and the quiet ran from there.
  EXPECT_GE(ran_at - before_caller, options.background_quiet);
}

// A long background pass, chunked one row at a time, that a caller's pass
// interrupts: the caller's pass holds the runner's one slot until released.
class ChunkedBackgroundPassTest : public InferenceRunnerTest {
 protected:
  // About a second alone in a release build, one row per chunk: the
  // caller's pass starts long before it could end, even on a busy machine.
  static constexpr size_t kRows = 1000000;

  void StartAndInterrupt() {
    InferenceRunner::Options options;
    options.threads = 1;
    options.background_chunk_macs = 1;  // one row per chunk
    // Normal priority: on a busy machine an idle-priority thread may get no
    // core for the whole test.
    options.background_idle_priority = false;
    runner_ = std::make_unique<InferenceRunner>(options);
    for (size_t i = 0; i < features_.size(); ++i) features_[i] = static_cast<float>(i % 7);
    runner_->Run(model_, features_, kRows, absl::InfiniteFuture(), background_.Callback(),
                 nullptr, kBackground);
    // Taken off its queue: the pass has begun, and has far to go.
    while (!runner_->queued_rows().empty()) absl::SleepFor(absl::Microseconds(100));
    HoldTheSlot();
  }

  std::vector<float> features_ = std::vector<float>(kRows * 3);
  Answer background_;
};

TEST_F(ChunkedBackgroundPassTest, PausesWhileACallersPassRunsAndAnswersAsOnePass) {
  StartAndInterrupt();
  // The pass reaches its next chunk and stops there.
  for (int i = 0; i < 3000 && runner_->stats().background_pauses == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(runner_->stats().background_pauses, 1u);
  // Paused, it does not end while the caller's pass runs (alone, the whole
  // pass takes a fraction of this).
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(background_.done.HasBeenNotified());
  Release();
  ASSERT_TRUE(background_.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(background_.status.ok()) << background_.status;
  std::vector<float> expected(kRows * 3);
  ASSERT_TRUE(model_->model->Forward(features_, kRows, absl::MakeSpan(expected)).ok());
  EXPECT_EQ(testing::FirstMismatch(background_.logits, expected), -1);
}

TEST_F(ChunkedBackgroundPassTest, CancelQueuedEndsAPausedPass) {
  StartAndInterrupt();
  runner_->CancelQueued();
  // Answered while the caller's pass still holds the slot.
  ASSERT_TRUE(background_.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(background_.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(release_.HasBeenNotified());
}

TEST_F(InferenceRunnerTest, ShutdownRunsWhatIsQueued) {
  StartBlocked({});
  Answer queued;
  const std::vector<float> row = {4, 0, 1};
  runner_->Run(model_, row, 1, absl::InfiniteFuture(), queued.Callback());
  Release();
  blocker_.join();
  runner_.reset();  // joins the pool after draining the queue
  ASSERT_TRUE(queued.done.HasBeenNotified());
  EXPECT_TRUE(queued.status.ok());
}

// Work that is not a forward pass (an explanation): its cost counts
// against the model's queued rows, it runs alone, and it stops when its
// caller's deadline passes or the caller gives up while it runs.
TEST_F(InferenceRunnerTest, AJobCountsItsCostAndRunsAlone) {
  InferenceRunner::Options options;
  options.limits.max_queued_rows = 100;
  StartBlocked(options);
  const std::vector<float> rows(3 * 2, 1.0f);
  Answer before, job, after, over;
  std::atomic<int> job_runs{0};
  runner_->Run(model_, rows, 2, absl::InfiniteFuture(), before.Callback());
  runner_->RunJob(model_, 80, absl::InfiniteFuture(),
                  [&job_runs](const std::function<bool()>&) {
                    ++job_runs;
                    return absl::OkStatus();
                  },
                  job.Callback());
  runner_->Run(model_, rows, 2, absl::InfiniteFuture(), after.Callback());
  runner_->Run(model_, std::vector<float>(3 * 20, 1.0f), 20, absl::InfiniteFuture(),
               over.Callback());  // 2 + 80 + 2 + 20 > 100
  ASSERT_TRUE(over.done.HasBeenNotified());
  EXPECT_EQ(over.status.code(), absl::StatusCode::kResourceExhausted);
  Release();
  for (Answer* answer : {&before, &job, &after}) {
    answer->done.WaitForNotification();
    EXPECT_TRUE(answer->status.ok()) << answer->status;
  }
  EXPECT_EQ(job_runs.load(), 1);
  // Three passes after the blocker's: the job was stacked with neither
  // neighbour's rows.
  EXPECT_EQ(runner_->stats().passes, 4u);
}

TEST_F(InferenceRunnerTest, AJobStopsWhenItsDeadlinePassesOrItsCallerGivesUp) {
  runner_ = std::make_unique<InferenceRunner>(InferenceRunner::Options{});
  auto spin = [](const std::function<bool()>& stop) {
    while (!stop()) std::this_thread::yield();
    return absl::CancelledError("stopped");
  };
  Answer late;
  runner_->RunJob(model_, 1, absl::Now() + absl::Milliseconds(50), spin, late.Callback());
  late.done.WaitForNotification();
  EXPECT_EQ(late.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(late.status.message(), "deadline passed while the work ran");

  std::atomic<bool> gave_up{false};
  Answer cancelled;
  runner_->RunJob(
      model_, 1, absl::InfiniteFuture(),
      [&gave_up, spin](const std::function<bool()>& stop) {
        gave_up = true;  // the caller leaves once the work has started
        return spin(stop);
      },
      cancelled.Callback(), [&gave_up] { return gave_up.load(); });
  cancelled.done.WaitForNotification();
  EXPECT_EQ(cancelled.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(cancelled.status.message(), "the call was cancelled while its work ran");
}

}  // namespace
}  // namespace seqserve
