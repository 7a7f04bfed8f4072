// The world of one ProxyStream in a test: a FakeStreamContext (fake clock,
// scripted randomness, timers fired by the clock, a policy table, the real
// counters and budgets, FakeAttempts) and a FakeDownstream that records what
// the client got. No socket, no event loop run, no sleep.
#pragma once

#include <event2/event.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proto-free-config/table_model.h"
#include "proto-free-config/table_reader.h"
#include "sidecar/stream/downstream.h"
#include "sidecar/stream/stream_context.h"
#include "sidecar/worker/shared_state.h"
#include "tests/fakes/fake_attempt.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_random.h"

namespace mulligan::proxy {

class FakeStreamContext final : public StreamContext, public AttemptFactory {
 public:
  FakeStreamContext() : attempt_base_(event_base_new()) {}
  ~FakeStreamContext() override {
    deferred_.clear();
    event_base_free(attempt_base_);
  }

  // Publishes `defaults` as the policy for every call (no service).
  void setPolicy(const pfc::EffectivePolicy& defaults) {
    pfc::TableModel m;
    m.defaults = defaults;
    std::string why;
    table_ = pfc::Table::fromImage(pfc::buildImage(m, 1), &why);
  }

  // Moves the clock by `us`, then fires every timer that fell due, in order.
  void advance(int64_t us) {
    fake_clock.advance(us);
    for (;;) {
      auto it = std::min_element(armed_.begin(), armed_.end(),
                                 [](const Armed& a, const Armed& b) { return a.due_us < b.due_us; });
      if (it == armed_.end() || it->due_us > fake_clock.nowUs()) return;
      CallTimer* t = it->timer;
      armed_.erase(it);
      t->fire();
    }
  }
  // Whether a timer is armed to fire exactly `us` from now.
  bool timerDueIn(int64_t us) const {
    for (const Armed& a : armed_) {
      if (a.due_us - fake_clock.nowUs() == us) return true;
    }
    return false;
  }
  size_t timersArmed() const { return armed_.size(); }

  // The attempts made so far, in order (owned by the call, then by us).
  std::vector<FakeAttempt*> attempts_made;
  FakeAttempt& attempt(size_t i) { return *attempts_made.at(i); }

  core::FakeClock fake_clock;
  core::FakeRandom rnd{0};
  stats::RouteCounters route{"", -1};
  retry::BudgetRegistry budgets;
  stats::WorkerCounters worker_counters;
  net::Address listen = *net::Address::parseNumeric("127.0.0.1:15001");

  // --- StreamContext ---
  const core::Clock& clock() override { return fake_clock; }
  core::Random& random() override { return rnd; }
  void armTimer(CallTimer& t, int64_t us, bool) override {
    cancelTimer(t);
    armed_.push_back({&t, fake_clock.nowUs() + std::max<int64_t>(us, 0)});
  }
  void cancelTimer(CallTimer& t) override {
    armed_.erase(std::remove_if(armed_.begin(), armed_.end(), [&](const Armed& a) { return a.timer == &t; }),
                 armed_.end());
  }
  event_base* base() override { return nullptr; }
  event::TimerQueues* timerQueues() override { return nullptr; }
  std::shared_ptr<const pfc::Table> policyTable(int64_t) override { return table_; }
  stats::RouteCounters& routeCounters(const pfc::Table*, const pfc::Match&) override { return route; }
  retry::RetryBudget& budget(std::string_view service) override { return budgets.get(service); }
  stats::WorkerCounters& counters() override { return worker_counters; }
  AccessLogWriter* accessLog() override { return nullptr; }
  int workerIndex() override { return 0; }
  net::Resolver* resolver() override { return nullptr; }
  const net::Address& listenAddress() override { return listen; }
  AttemptFactory& attempts() override { return *this; }
  void deferDelete(std::unique_ptr<event::Deletable> obj) override { deferred_.push_back(std::move(obj)); }

  // --- AttemptFactory ---
  std::unique_ptr<Attempt> newAttempt(Attempt::Owner* owner, const AttemptSpec& spec) override {
    auto a = std::make_unique<FakeAttempt>(attempt_base_, owner, spec);
    a->clock = &fake_clock;
    attempts_made.push_back(a.get());
    return a;
  }

 private:
  struct Armed {
    CallTimer* timer;
    int64_t due_us;
  };
  event_base* attempt_base_;  // the FakeAttempts' lifecycle timers; never run
  std::shared_ptr<const pfc::Table> table_;
  std::vector<Armed> armed_;
  std::vector<std::unique_ptr<event::Deletable>> deferred_;
};

class FakeDownstream final : public Downstream {
 public:
  FakeDownstream(StreamContext& ctx, Protocol p, net::Address dst) : ctx_(ctx), protocol_(p), dst_(dst) {}

  // --- what the client got ---
  std::optional<MessageHead> head;
  bool head_end_stream = false;
  std::string body;
  std::optional<HeaderList> trailers;
  bool completed = false;
  bool aborted = false;
  std::optional<LocalReply> reply;

  // --- Downstream ---
  StreamContext& streamContext() override { return ctx_; }
  Protocol protocol() const override { return protocol_; }
  const std::optional<net::Address>& originalDst() const override { return dst_; }
  void writeHead(const MessageHead& h, bool end_stream) override {
    head = h;
    head_end_stream = end_stream;
  }
  void writeBody(const char* data, size_t len) override { body.append(data, len); }
  void writeTrailers(const HeaderList& t) override { trailers = t; }
  void responseComplete() override { completed = true; }
  void responseAborted() override { aborted = true; }
  void localReply(const LocalReply& r) override { reply = r; }
  void upgradeToTunnel(bufferevent*) override {}
  bool congested() const override { return false; }
  void flush() override {}

 private:
  StreamContext& ctx_;
  Protocol protocol_;
  std::optional<net::Address> dst_;
};

}  // namespace mulligan::proxy
