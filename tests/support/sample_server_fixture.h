// A fixture whose tests share one real seqserve process serving models/.
// Needs SEQSERVE_PATH and SEQSERVE_MODELS_DIR defined by the test target.
#pragma once

#include <gtest/gtest.h>

#include "tests/support/server_process.h"

namespace seqserve::testing {

class SampleServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(SEQSERVE_PATH, {"--model_repository=" SEQSERVE_MODELS_DIR,
                                                "--poll_seconds=0"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_->ready()) << server_->output(); }

  static inline ServerProcess* server_ = nullptr;
};

}  // namespace seqserve::testing
