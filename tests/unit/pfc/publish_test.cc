// Publisher/Subscriber over real POSIX shared memory and tmpfs files, across
// processes: generation resume, single writer, corrupt segments, growth, a
// writer SIGKILLed mid-publish, and a reader hammering a busy writer.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "proto-free-config/layout.h"
#include "proto-free-config/publish.h"
#include "test_tables.h"

namespace mulligan::pfc {
namespace {

using testing::makeModel;

// A unique segment per test, removed afterwards. Param: shm name or tmp file.
class PublishTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    static int counter = 0;
    std::string id = std::to_string(::getpid()) + "-" + std::to_string(counter++);
    if (GetParam()) {
      dir_ = std::filesystem::temp_directory_path() / ("mulligan-pfc-" + id);
      std::filesystem::create_directories(dir_);
      name_ = (dir_ / "policy.shm").string();
    } else {
      name_ = "/mulligan-test-" + id;
    }
  }
  void TearDown() override {
    if (GetParam()) {
      std::filesystem::remove_all(dir_);
    } else {
      ::shm_unlink(name_.c_str());
    }
  }

  std::unique_ptr<Publisher> publisher() {
    std::string err;
    auto p = Publisher::open(name_, &err);
    EXPECT_TRUE(p) << err;
    return p;
  }
  std::unique_ptr<Subscriber> subscriber() {
    std::string err;
    auto s = Subscriber::open(name_, &err);
    EXPECT_TRUE(s) << err;
    return s;
  }
  // Raw writable view of the segment, as a vandal would have.
  std::unique_ptr<Segment> raw() {
    std::string err;
    auto s = Segment::open(name_, Segment::Mode::kReadWrite, &err);
    EXPECT_TRUE(s) << err;
    return s;
  }

  std::filesystem::path dir_;
  std::string name_;
};

// The agent's refusals (ABI 2): recorded without publishing, counted, kept
// as history once a later file is published, read back by any reader.
TEST_P(PublishTest, RefusalRecordedWithCountAndKeptGenerationAndSurvivesLaterPublish) {
  std::string err, why;
  auto pub = publisher();
  ASSERT_TRUE(pub->publish(makeModel(2, 1), &err)) << err;
  auto sub = subscriber();
  Refusal got;
  EXPECT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kNothingYet);

  Refusal r;
  r.file = "/etc/mulligan/policy.toml";
  r.line = 7;
  r.column = 13;
  r.message = "unknown key \"num_retry\"; did you mean \"num_retries\"?";
  r.error_count = 2;
  r.unix_ms = 1764739200123;
  r.source_checksum = 0xabcdef;
  EXPECT_EQ(pub->recordRefusal(r), 1u);
  r.line = 8;
  EXPECT_EQ(pub->recordRefusal(r), 2u);
  EXPECT_EQ(sub->generation(), 1u);  // a refusal publishes nothing

  ASSERT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(got.file, r.file);
  EXPECT_EQ(got.line, 8u);
  EXPECT_EQ(got.column, 13u);
  EXPECT_EQ(got.message, r.message);
  EXPECT_EQ(got.error_count, 2u);
  EXPECT_EQ(got.unix_ms, r.unix_ms);
  EXPECT_EQ(got.source_checksum, 0xabcdefu);
  EXPECT_EQ(got.count, 2u);
  EXPECT_EQ(got.kept_generation, 1u);
  EXPECT_EQ(got.format(), "/etc/mulligan/policy.toml:8:13: " + r.message);

  // A later good file is published; the refusal stays as history.
  ASSERT_EQ(pub->publish(makeModel(1, 0), &err), 2u) << err;
  ASSERT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(got.count, 2u);
  EXPECT_EQ(got.kept_generation, 1u);
  std::shared_ptr<const Table> t;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->generation(), 2u);

  // A restarted agent keeps counting.
  pub.reset();
  pub = publisher();
  r.line = 0;
  r.message = "cannot read: No such file or directory";
  EXPECT_EQ(pub->recordRefusal(r), 3u);
  ASSERT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(got.kept_generation, 2u);
  EXPECT_EQ(got.format(), "/etc/mulligan/policy.toml: cannot read: No such file or directory");
}

TEST_P(PublishTest, RefusalFieldsAreTruncatedAndReadersNeverReadPastThem) {
  std::string why;
  auto pub = publisher();
  Refusal r;
  r.file = std::string(1000, 'f');
  // 2-byte UTF-8 characters: the cut must not split one.
  std::string longer;
  for (int i = 0; i < 1000; ++i) longer += "\xc3\xa9";
  r.message = longer;
  pub->recordRefusal(r);
  auto sub = subscriber();
  Refusal got;
  ASSERT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(got.file, std::string(255, 'f'));
  EXPECT_EQ(got.message.size(), 1022u);
  EXPECT_EQ(got.message, longer.substr(0, 1022));

  // A vandal fills the fields without terminators: still bounded.
  auto seg = raw();
  auto* h = reinterpret_cast<SegmentHeader*>(seg->data());
  std::memset(h->refusal.record.file, 'x', sizeof h->refusal.record.file);
  std::memset(h->refusal.record.message, 'y', sizeof h->refusal.record.message);
  ASSERT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(got.file.size(), sizeof h->refusal.record.file);
  EXPECT_EQ(got.message.size(), sizeof h->refusal.record.message);

  // A refusal record being rewritten (odd seq) forever: bounded, kTorn.
  h->refusal.seq.store(h->refusal.seq.load() | 1);
  EXPECT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kTorn);
}

// A segment an ABI 1 agent wrote: a sidecar of this build refuses it and says
// the agent is older; an agent of this build takes it over in place, keeps
// counting generations and starts with no refusal.
TEST_P(PublishTest, OlderAbiSegmentIsRefusedClearlyAndTakenOverByNewWriter) {
  std::string err, why;
  {
    auto pub = publisher();
    ASSERT_TRUE(pub->publish(makeModel(2, 1), &err)) << err;
    ASSERT_TRUE(pub->publish(makeModel(2, 1), &err)) << err;
  }
  auto seg = raw();
  auto* h = reinterpret_cast<SegmentHeader*>(seg->data());
  h->abi_version = 1;
  std::memset(&h->refusal.record, 0x5a, sizeof h->refusal.record);  // whatever an old writer left there
  auto sub = subscriber();
  std::shared_ptr<const Table> t;
  Refusal got;
  EXPECT_EQ(sub->read(&t, &why), Subscriber::Status::kBadSegment);
  EXPECT_NE(why.find("segment ABI version 1, this build reads " + std::to_string(kAbiVersion) + " (the segment's writer, mulligan-agent, is older"),
            std::string::npos)
      << why;
  EXPECT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kBadSegment);

  auto pub = publisher();
  EXPECT_EQ(pub->lastGeneration(), 2u);
  EXPECT_EQ(sub->readRefusal(&got, &why), Subscriber::Status::kNothingYet) << why;
  ASSERT_EQ(pub->publish(makeModel(1, 0), &err), 3u) << err;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
}

INSTANTIATE_TEST_SUITE_P(ShmAndFile, PublishTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "TmpfsFile" : "PosixShm"; });

TEST_P(PublishTest, ReaderOfMissingSegmentGetsAClearError) {
  std::string err;
  EXPECT_FALSE(Subscriber::open(name_, &err));
  EXPECT_NE(err.find(name_), std::string::npos) << err;
}

TEST_P(PublishTest, PublishThenReadGivesTheTable) {
  auto pub = publisher();
  auto sub = subscriber();
  std::shared_ptr<const Table> t;
  std::string why;
  EXPECT_EQ(sub->generation(), 0u);
  EXPECT_EQ(sub->read(&t, &why), Subscriber::Status::kNothingYet);
  std::string err;
  ASSERT_EQ(pub->publish(makeModel(10, 2), &err), 1u) << err;
  EXPECT_EQ(sub->generation(), 1u);
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->generation(), 1u);
  EXPECT_EQ(t->services().size(), 10u);
  ASSERT_EQ(pub->publish(makeModel(3, 1), &err), 2u) << err;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->generation(), 2u);
  EXPECT_EQ(t->services().size(), 3u);
}

// The publish time (PublishStamp): each generation's, taken while publishing,
// and only that generation's — asking for another one says "not recorded".
TEST_P(PublishTest, PublishTimeIsRecordedForTheGenerationPublished) {
  auto unixNs = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  auto pub = publisher();
  auto sub = subscriber();
  EXPECT_EQ(sub->publishedUnixNs(1), 0);
  std::string err;
  int64_t before = unixNs();
  ASSERT_EQ(pub->publish(makeModel(2, 1), &err), 1u) << err;
  int64_t after = unixNs();
  int64_t first = sub->publishedUnixNs(1);
  EXPECT_GE(first, before);
  EXPECT_LE(first, after);
  EXPECT_EQ(sub->publishedUnixNs(0), 0);
  EXPECT_EQ(sub->publishedUnixNs(2), 0);
  ASSERT_EQ(pub->publish(makeModel(2, 1), &err), 2u) << err;
  EXPECT_GE(sub->publishedUnixNs(2), first);
  EXPECT_EQ(sub->publishedUnixNs(1), 0);  // overwritten: not another generation's time
}

// A segment written by an agent that predates the stamp (the field is zero,
// as initialize() left it): the table reads as before, its time is "not
// recorded". And a stamp caught mid-rewrite (generation 0) is never returned.
TEST_P(PublishTest, SegmentWithoutPublishStampReadsAsNotRecorded) {
  auto pub = publisher();
  std::string err, why;
  ASSERT_EQ(pub->publish(makeModel(2, 1), &err), 1u) << err;
  auto seg = raw();
  auto* h = reinterpret_cast<SegmentHeader*>(seg->data());
  h->published.generation.store(0);
  h->published.unix_ns.store(0);
  auto sub = subscriber();
  std::shared_ptr<const Table> t;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->generation(), 1u);
  EXPECT_EQ(sub->publishedUnixNs(1), 0);
  h->published.unix_ns.store(123);  // the writer between its two stores
  EXPECT_EQ(sub->publishedUnixNs(1), 0);
}

TEST_P(PublishTest, SegmentIsReadableByAllWritableByOwner) {
  auto pub = publisher();
  struct stat st {};
  ASSERT_EQ(::fstat(pub->segment().fd(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_P(PublishTest, RestartedWriterResumesGenerationCount) {
  std::string err;
  {
    auto pub = publisher();
    ASSERT_EQ(pub->publish(makeModel(2, 1), &err), 1u);
    ASSERT_EQ(pub->publish(makeModel(2, 1), &err), 2u);
  }
  auto pub = publisher();
  EXPECT_EQ(pub->lastGeneration(), 2u);
  EXPECT_EQ(pub->publish(makeModel(2, 1), &err), 3u);
}

TEST_P(PublishTest, SecondWriterIsRefused) {
  auto pub = publisher();
  std::string err;
  EXPECT_FALSE(Publisher::open(name_, &err));
  EXPECT_NE(err.find("another writer"), std::string::npos) << err;
}

TEST_P(PublishTest, GrowingTableIsSeenByAnExistingReader) {
  auto pub = publisher();
  auto sub = subscriber();
  std::string err, why;
  ASSERT_TRUE(pub->publish(makeModel(1, 1), &err)) << err;
  std::shared_ptr<const Table> t;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk);
  // ~3 MiB of table: larger than the initial 1 MiB slot.
  ASSERT_TRUE(pub->publish(makeModel(6000, 5), &err)) << err;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->services().size(), 6000u);
  ASSERT_TRUE(pub->publish(makeModel(6000, 6), &err)) << err;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->routes().size(), 36000u);
}

TEST_P(PublishTest, CorruptSegmentHeaderIsRefusedAndRepairedByWriter) {
  std::string err, why;
  {
    auto pub = publisher();
    ASSERT_TRUE(pub->publish(makeModel(2, 1), &err));
  }
  auto seg = raw();
  auto* h = reinterpret_cast<SegmentHeader*>(seg->data());
  auto sub = subscriber();
  std::shared_ptr<const Table> t;

  h->abi_version = 99;
  EXPECT_EQ(sub->read(&t, &why), Subscriber::Status::kBadSegment);
  EXPECT_EQ(why, "segment ABI version 99, this build reads " + std::to_string(kAbiVersion) +
                     " (the segment's writer, mulligan-agent, is newer than this reader: run the agent and the "
                     "sidecar from the same release)");
  h->abi_version = kAbiVersion;

  h->active_slot.store(7);
  EXPECT_EQ(sub->read(&t, &why), Subscriber::Status::kBadSegment);
  h->active_slot.store(h->active_slot.load() & 1 ? 1 : 0);
  h->active_slot.store(1);  // the slot publish #1 wrote (slot 1 = 1 - initial 0)

  uint64_t off = h->slots[1].offset.load();
  h->slots[1].offset.store(uint64_t{1} << 40);
  EXPECT_EQ(sub->read(&t, &why), Subscriber::Status::kBadSegment);
  EXPECT_EQ(why, "slot out of bounds");
  h->slots[1].offset.store(off);

  seg->data()[off + 200] ^= 0xff;
  EXPECT_EQ(sub->read(&t, &why), Subscriber::Status::kBadTable);
  EXPECT_EQ(why, "checksum mismatch");
  seg->data()[off + 200] ^= 0xff;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;

  h->magic = 0;
  EXPECT_EQ(sub->read(&t, &why), Subscriber::Status::kBadSegment);
  EXPECT_EQ(sub->generation(), 1u);
  // A new writer re-initializes a foreign segment and publishes again.
  auto pub = publisher();
  ASSERT_TRUE(pub->publish(makeModel(4, 1), &err)) << err;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->services().size(), 4u);
}

// A child writer publishes large tables as fast as it can; we SIGKILL it at
// varying moments, many times. The last published generation must stay
// readable, and a new writer must carry on from it.
TEST_P(PublishTest, WriterKilledMidPublishLeavesLastGenerationReadable) {
  std::string err, why;
  {
    auto pub = publisher();
    ASSERT_TRUE(pub->publish(makeModel(5, 1), &err));
  }
  auto sub = subscriber();
  uint64_t last_seen = 1;
  for (int round = 0; round < 12; ++round) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      std::string e;
      auto p = Publisher::open(name_, &e);
      if (!p) ::_exit(3);
      TableModel m = makeModel(3000, 5);
      for (;;) p->publish(m, &e);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + round * 7));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited early: " << status;
    std::shared_ptr<const Table> t;
    ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
    EXPECT_GE(t->generation(), last_seen);
    last_seen = t->generation();
  }
  auto pub = publisher();
  EXPECT_GE(pub->lastGeneration(), last_seen);
  uint64_t g = pub->publish(makeModel(2, 1), &err);
  ASSERT_GT(g, last_seen) << err;
  std::shared_ptr<const Table> t;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->generation(), g);
}

// What a writer killed inside the copy leaves behind, made deterministic: the
// inactive slot half-written with its seq odd. Readers keep reading the
// active slot; the next writer rounds the seq up and publishes over it.
TEST_P(PublishTest, HalfWrittenInactiveSlotIsHarmless) {
  std::string err, why;
  {
    auto pub = publisher();
    ASSERT_EQ(pub->publish(makeModel(5, 1), &err), 1u);
    ASSERT_EQ(pub->publish(makeModel(6, 1), &err), 2u);
  }
  auto seg = raw();
  auto* h = reinterpret_cast<SegmentHeader*>(seg->data());
  uint32_t inactive = 1 - h->active_slot.load();
  SlotDescriptor& d = h->slots[inactive];
  d.seq.store(d.seq.load() + 1);  // odd: "writer inside"
  std::memset(seg->data() + d.offset.load(), 0xab, 4096);
  auto sub = subscriber();
  std::shared_ptr<const Table> t;
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->generation(), 2u);
  EXPECT_EQ(t->services().size(), 6u);
  auto pub = publisher();
  ASSERT_EQ(pub->publish(makeModel(7, 1), &err), 3u) << err;
  EXPECT_EQ(d.seq.load() % 2, 0u);
  ASSERT_EQ(sub->read(&t, &why), Subscriber::Status::kOk) << why;
  EXPECT_EQ(t->services().size(), 7u);
}

// A writer that died after switching the active slot but before announcing
// the generation: its table is complete, and the next writer announces it.
TEST_P(PublishTest, WriterDeadBeforeAnnouncingGenerationIsResumed) {
  std::string err, why;
  {
    auto pub = publisher();
    ASSERT_EQ(pub->publish(makeModel(5, 1), &err), 1u);
    ASSERT_EQ(pub->publish(makeModel(6, 1), &err), 2u);
  }
  auto seg = raw();
  auto* h = reinterpret_cast<SegmentHeader*>(seg->data());
  h->generation.store(1);  // as if "generation := 2" never happened
  auto pub = publisher();
  EXPECT_EQ(pub->lastGeneration(), 2u);
  EXPECT_EQ(h->generation.load(), 2u);
  EXPECT_EQ(pub->publish(makeModel(2, 1), &err), 3u);
}

// Writer and reader in different processes, no pauses. Every table the reader
// accepts must be internally consistent with its generation (odd generations
// have 40 services, even ones 7); a torn copy must never be accepted.
TEST_P(PublishTest, ReaderAndWriterHammeringNeverYieldATornTable) {
  { auto p = publisher(); }
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string e;
    auto p = Publisher::open(name_, &e);
    if (!p) ::_exit(3);
    TableModel odd = makeModel(40, 4), even = makeModel(7, 2);
    for (int i = 0; i < 20000; ++i) {
      const TableModel& m = (p->lastGeneration() + 1) % 2 ? odd : even;
      if (!p->publish(m, &e)) ::_exit(4);
    }
    ::_exit(0);
  }
  auto sub = subscriber();
  int ok = 0, torn = 0;
  uint64_t last = 0;
  auto stop = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < stop) {
    std::shared_ptr<const Table> t;
    std::string why;
    auto s = sub->read(&t, &why);
    if (s == Subscriber::Status::kNothingYet) continue;
    if (s == Subscriber::Status::kTorn) {
      ++torn;
      continue;
    }
    ASSERT_EQ(s, Subscriber::Status::kOk) << Subscriber::statusName(s) << ": " << why;
    ASSERT_EQ(t->services().size(), t->generation() % 2 ? 40u : 7u);
    ASSERT_GE(t->generation(), last);
    last = t->generation();
    ++ok;
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) {
      child = -1;
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
      break;
    }
  }
  if (child > 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
  }
  EXPECT_GT(ok, 100);
  RecordProperty("torn_reads", torn);
}

}  // namespace
}  // namespace mulligan::pfc
