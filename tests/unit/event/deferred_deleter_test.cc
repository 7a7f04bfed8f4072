// DeferredDeleter: objects handed to it are destroyed on a later loop
// iteration, never inside the call that deferred them; a burst of deferrals
// is one batch (one activation of its event), and an object deferred while
// a batch is being destroyed still goes, in a later round.
#include "sidecar/event/event_loop.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

namespace mulligan::event {
namespace {

struct Probe : Deletable {
  explicit Probe(std::vector<int>* log, int id, std::function<void()> on_delete = {})
      : log_(log), id_(id), on_delete_(std::move(on_delete)) {}
  ~Probe() override {
    log_->push_back(id_);
    if (on_delete_) on_delete_();
  }
  std::vector<int>* log_;
  int id_;
  std::function<void()> on_delete_;
};

class DeferredDeleterTest : public ::testing::Test {
 protected:
  ~DeferredDeleterTest() override {
    deleter_.reset();
    event_base_free(base_);
  }
  // One loop iteration, without blocking.
  void runOnce() { event_base_loop(base_, EVLOOP_NONBLOCK | EVLOOP_ONCE); }
  event_base* base_ = event_base_new();
  std::unique_ptr<DeferredDeleter> deleter_ = std::make_unique<DeferredDeleter>(base_);
  std::vector<int> destroyed_;
};

TEST_F(DeferredDeleterTest, ABurstIsDestroyedTogetherOnTheNextIterationNeverInline) {
  for (int i = 0; i < 5; ++i) deleter_->defer(std::make_unique<Probe>(&destroyed_, i));
  EXPECT_TRUE(destroyed_.empty());
  runOnce();
  EXPECT_EQ(destroyed_, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST_F(DeferredDeleterTest, DeferredWhileABatchIsDestroyedGoesInALaterRound) {
  deleter_->defer(std::make_unique<Probe>(&destroyed_, 1, [this] {
    deleter_->defer(std::make_unique<Probe>(&destroyed_, 2, [this] {
      deleter_->defer(std::make_unique<Probe>(&destroyed_, 3));
    }));
  }));
  runOnce();
  ASSERT_FALSE(destroyed_.empty());
  EXPECT_EQ(destroyed_.front(), 1);
  for (int i = 0; i < 5 && destroyed_.size() < 3; ++i) runOnce();
  EXPECT_EQ(destroyed_, (std::vector<int>{1, 2, 3}));
}

TEST_F(DeferredDeleterTest, EachLaterBurstIsScheduledAgain) {
  for (int round = 0; round < 3; ++round) {
    deleter_->defer(std::make_unique<Probe>(&destroyed_, round));
    deleter_->defer(std::make_unique<Probe>(&destroyed_, 10 + round));
    runOnce();
    EXPECT_EQ(destroyed_.size(), static_cast<size_t>(2 * (round + 1))) << round;
  }
}

TEST_F(DeferredDeleterTest, WhatIsStillPendingGoesWithTheDeleter) {
  deleter_->defer(std::make_unique<Probe>(&destroyed_, 7));
  deleter_.reset();
  EXPECT_EQ(destroyed_, std::vector<int>{7});
}

}  // namespace
}  // namespace mulligan::event
