// mulligan-bench-table: the costs of the shared-memory policy table.
//   BM_GenerationCheck  the per-request "has the policy changed?" check
//   BM_Lookup           host + port + route lookup in 10,000 services x 5 routes
//   BM_Publish          compile the model to an image and publish it (agent side)
//   BM_ReadSnapshot     copy out, verify and index a published table (sidecar, per generation)
// Targets (issue 2): check <= 5 ns, lookup <= 150 ns, publish <= 20 ms.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <unistd.h>

#include <random>

#include "proto-free-config/publish.h"
#include "tests/unit/pfc/test_tables.h"

namespace mulligan::pfc {
namespace {

constexpr int kServices = 10000;
constexpr int kRoutes = 5;

const TableModel& bigModel() {
  static const TableModel m = testing::makeModel(kServices, kRoutes);
  return m;
}

// A segment for the process, unlinked at exit.
struct BenchSegment {
  std::string name = "/mulligan-bench-" + std::to_string(::getpid());
  std::unique_ptr<Publisher> pub;
  std::unique_ptr<Subscriber> sub;
  BenchSegment() {
    std::string err;
    pub = Publisher::open(name, &err);
    if (!pub || !pub->publish(bigModel(), &err)) std::abort();
    sub = Subscriber::open(name, &err);
    if (!sub) std::abort();
  }
  ~BenchSegment() { ::shm_unlink(name.c_str()); }
};

BenchSegment& segment() {
  static BenchSegment s;
  return s;
}

void BM_GenerationCheck(benchmark::State& state) {
  Subscriber& sub = *segment().sub;
  uint64_t seen = sub.generation();
  int64_t changed = 0;
  for (auto _ : state) {
    uint64_t g = sub.generation();
    changed += g != seen;
    benchmark::DoNotOptimize(changed);
  }
}
BENCHMARK(BM_GenerationCheck);

void BM_Lookup(benchmark::State& state) {
  std::shared_ptr<const Table> t;
  std::string why;
  if (segment().sub->read(&t, &why) != Subscriber::Status::kOk) std::abort();
  // Requests spread over the whole table, mixing route hits, gRPC and misses.
  std::mt19937 rng(7);
  struct Req {
    std::string host, path;
    bool grpc;
  };
  std::vector<Req> reqs;
  for (int i = 0; i < 4096; ++i) {
    int s = static_cast<int>(rng() % kServices);
    int r = static_cast<int>(rng() % (kRoutes + 1));
    Req q;
    q.host = "svc-" + std::to_string(s) + (i % 2 ? ".ns.svc:8080" : "");
    q.grpc = r == kRoutes - 1;
    q.path = q.grpc ? "/pkg" + std::to_string(s) + ".Svc/Get"
                    : "/api/" + std::to_string(s) + "/" + std::to_string(r) + "/items/42?page=1";
    reqs.push_back(std::move(q));
  }
  size_t i = 0;
  for (auto _ : state) {
    const Req& q = reqs[i++ & 4095];
    Match m = t->lookup({q.host, 8080, "GET", q.path, q.grpc});
    benchmark::DoNotOptimize(m.policy);
  }
}
BENCHMARK(BM_Lookup);

void BM_Publish(benchmark::State& state) {
  Publisher& pub = *segment().pub;
  std::string err;
  for (auto _ : state) {
    if (!pub.publish(bigModel(), &err)) state.SkipWithError(err.c_str());
  }
  state.counters["services"] = kServices;
}
BENCHMARK(BM_Publish)->Unit(benchmark::kMillisecond);

void BM_ReadSnapshot(benchmark::State& state) {
  Subscriber& sub = *segment().sub;
  std::string why;
  for (auto _ : state) {
    std::shared_ptr<const Table> t;
    if (sub.read(&t, &why) != Subscriber::Status::kOk) state.SkipWithError(why.c_str());
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_ReadSnapshot)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mulligan::pfc

BENCHMARK_MAIN();
