// Recycled<T>: freed blocks serve the next object of the same class, within
// the per-thread bound; other sizes and (under ASan) everything go to the heap.
#include "sidecar/core/recycled.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace mulligan::core {
namespace {

struct Probe : Recycled<Probe, 4> {
  explicit Probe(int v) : value(v) {}
  virtual ~Probe() = default;
  int value;
  char pad[40] = {};
};

// Larger than Probe: must never get (or give) a Probe-sized block.
struct BigProbe : Probe {
  BigProbe() : Probe(7) {}
  char more[200] = {};
};

// Each test runs on a thread of its own: a fresh free list.
template <class F>
void onFreshThread(F f) {
  std::thread t(f);
  t.join();
}

TEST(RecycledTest, AFreedBlockServesTheNextObjectAndItIsConstructedAfresh) {
  onFreshThread([] {
    Probe* a = new Probe(1);
    void* where = a;
    delete a;
    EXPECT_EQ(Probe::keptBlocks(), MULLIGAN_RECYCLE ? 1u : 0u);
    Probe* b = new Probe(2);
    if (MULLIGAN_RECYCLE) {
      EXPECT_EQ(static_cast<void*>(b), where);
    }
    EXPECT_EQ(b->value, 2);
    EXPECT_EQ(Probe::keptBlocks(), 0u);
    delete b;
  });
}

TEST(RecycledTest, AtMostKeepBlocksAreKeptPerThread) {
  onFreshThread([] {
    std::vector<Probe*> live;
    for (int i = 0; i < 10; ++i) live.push_back(new Probe(i));
    for (Probe* p : live) delete p;
    EXPECT_EQ(Probe::keptBlocks(), MULLIGAN_RECYCLE ? 4u : 0u);
  });
}

TEST(RecycledTest, ADerivedClassOfAnotherSizeUsesTheHeap) {
  onFreshThread([] {
    Probe* small = new Probe(1);
    delete small;
    size_t kept = Probe::keptBlocks();
    Probe* big = new BigProbe();  // must not take the small kept block
    EXPECT_EQ(Probe::keptBlocks(), kept);
    EXPECT_EQ(big->value, 7);
    delete big;  // through the base: the sized delete sees BigProbe's size
    EXPECT_EQ(Probe::keptBlocks(), kept);
  });
}

TEST(RecycledTest, EachThreadHasItsOwnList) {
  onFreshThread([] {
    delete new Probe(1);
    size_t here = Probe::keptBlocks();
    size_t there = 99;
    std::thread([&] { there = Probe::keptBlocks(); }).join();
    EXPECT_EQ(there, 0u);
    EXPECT_EQ(here, MULLIGAN_RECYCLE ? 1u : 0u);
  });
}

}  // namespace
}  // namespace mulligan::core
