// The publish/snapshot protocol over a Segment (see layout.h for the bytes).
//
// Writer (one process, the agent):
//   1. pick the inactive slot; grow the segment if the image does not fit;
//   2. slot.seq := odd (relaxed store), release fence;
//   3. copy the image into the slot, record its size;
//   4. slot.seq := even (release store);
//   5. the publish time stamp (published.generation := 0, unix_ns := now,
//      published.generation := g), then active_slot := slot, then
//      generation := g (release stores).
// Reader (sidecars, dump):
//   - "has it changed?" is one acquire load of `generation` (generation());
//   - read(): acquire-load active slot and its seq; copy the slot out; acquire
//     fence; re-load seq. Equal and even = a consistent copy; otherwise the
//     writer lapped us and we retry, a bounded number of times (never spinning
//     on a dead writer). The copy is then validated (table_reader.h).
// Seqlock fences follow the Linux vDSO's (include/vdso/helpers.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proto-free-config/segment.h"
#include "proto-free-config/table_model.h"
#include "proto-free-config/table_reader.h"

namespace mulligan::pfc {

// A policy file the agent refused, as the agent reports it and as readers
// get it back (RefusalRecord in layout.h is its shared-memory form).
struct Refusal {
  std::string file;
  uint32_t line = 0;       // 0 = the file as a whole (e.g. unreadable)
  uint32_t column = 0;
  std::string message;     // the first error, without FILE:LINE:COL
  uint32_t error_count = 1;
  int64_t unix_ms = 0;
  uint64_t source_checksum = 0;
  // Filled by the publisher when recorded:
  uint64_t count = 0;            // refusals recorded in this segment, this one included
  uint64_t kept_generation = 0;  // the generation left published

  // "FILE:LINE:COL: message", or "FILE: message" when line is 0 (the
  // agent's own diagnostic format).
  std::string format() const;
};

class Publisher {
 public:
  // Opens or creates the segment, takes the single-writer lock, and resumes
  // the generation count of whatever was published there before. A segment
  // with a foreign magic or too small is re-initialized in place.
  static std::unique_ptr<Publisher> open(const std::string& shm_name, std::string* error);

  // The generation most recently published (by us or a predecessor); 0 if none.
  uint64_t lastGeneration() const { return last_generation_; }

  // Serializes `model` as generation lastGeneration() + 1 and publishes it.
  // Returns the new generation, or 0 with *error set.
  uint64_t publish(const TableModel& model, std::string* error);

  // Publishes a ready image (its header's generation must be lastGeneration()+1).
  // Exposed for tests that need to publish hand-made or corrupt images.
  bool publishImage(const std::vector<uint8_t>& image, uint64_t generation, std::string* error);

  // Records that a policy file was refused (nothing published): bumps the
  // segment's refusal count and overwrites the last refusal, under the
  // record's own seqlock. Strings longer than the record's fields are
  // truncated. Returns the count now recorded.
  uint64_t recordRefusal(const Refusal& r);

  const Segment& segment() const { return *segment_; }

 private:
  explicit Publisher(std::unique_ptr<Segment> seg) : segment_(std::move(seg)) {}
  bool initialize(std::string* error);

  std::unique_ptr<Segment> segment_;
  uint64_t last_generation_ = 0;
  ImageBuilder builder_;  // reused: its buffers stay warm between publishes
};

class Subscriber {
 public:
  enum class Status {
    kOk,            // *table holds a validated snapshot
    kNothingYet,    // no generation published yet
    kBadSegment,    // segment header cannot be trusted (magic, ABI, sizes)
    kTorn,          // the writer kept lapping us; try again later
    kBadTable,      // the copied table failed validation (*why says how)
  };

  // Opens an existing segment read-only. Null with *error when it does not
  // exist (yet) or cannot be mapped; callers retry later.
  static std::unique_ptr<Subscriber> open(const std::string& shm_name, std::string* error);

  // The published generation: one acquire load, no syscall. 0 = none; also 0
  // when the header itself is not a segment we understand.
  uint64_t generation() const;

  // When the agent published `generation` (CLOCK_REALTIME, ns since the
  // epoch), or 0 when the segment does not say: an agent that predates the
  // stamp, or a newer publish rewriting it right now. Three loads, no syscall.
  int64_t publishedUnixNs(uint64_t generation) const;

  // Copies out, verifies and indexes the active table.
  Status read(std::shared_ptr<const Table>* table, std::string* why);

  // Copies out the agent's last refusal: kOk with *out filled, kNothingYet
  // when the agent never refused a file in this segment, kBadSegment (with
  // *why) when the header is not one this build reads, kTorn when the agent
  // kept rewriting it. Independent of read(): a refusal publishes nothing.
  Status readRefusal(Refusal* out, std::string* why);

  const Segment& segment() const { return *segment_; }
  static const char* statusName(Status s);

 private:
  explicit Subscriber(std::unique_ptr<Segment> seg) : segment_(std::move(seg)) {}
  Status checkHeader(std::string* why);

  std::unique_ptr<Segment> segment_;
  std::vector<uint8_t> scratch_;  // reused copy buffer
};

}  // namespace mulligan::pfc
