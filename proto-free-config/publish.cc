#include "proto-free-config/publish.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

namespace mulligan::pfc {
namespace {

constexpr size_t kMinSlotCapacity = size_t{1} << 20;  // 1 MiB; tmpfs only backs what is written
constexpr int kMaxReadAttempts = 16;

size_t roundUp(size_t n, size_t align) { return (n + align - 1) / align * align; }

SegmentHeader* headerOf(const Segment& s) { return reinterpret_cast<SegmentHeader*>(s.data()); }

// The generation recorded inside a slot's image, or 0 if the slot does not
// hold a valid table. Used to resume counting after a writer died between
// switching the active slot and storing the generation.
uint64_t slotGeneration(const Segment& seg, uint32_t slot) {
  const SegmentHeader* h = headerOf(seg);
  const SlotDescriptor& d = h->slots[slot & 1];
  uint64_t off = d.offset.load(std::memory_order_relaxed);
  uint64_t size = d.size.load(std::memory_order_relaxed);
  if (size < sizeof(TableHeader) || off > seg.mappedSize() || size > seg.mappedSize() - off) return 0;
  TableHeader th;
  std::memcpy(&th, seg.data() + off, sizeof th);
  return th.magic == kTableMagic ? th.generation : 0;
}

// Copies `s` into a fixed field, NUL-terminated, cut at a UTF-8 character
// boundary when it does not fit.
template <size_t N>
void copyField(char (&dst)[N], const std::string& s) {
  size_t n = std::min(s.size(), N - 1);
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  std::memcpy(dst, s.data(), n);
  std::memset(dst + n, 0, N - n);
}

// A fixed field as a string: up to its first NUL, never past its end
// (the bytes are untrusted).
template <size_t N>
std::string readField(const char (&src)[N]) {
  return std::string(src, strnlen(src, N));
}

}  // namespace

std::string Refusal::format() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

// ----------------------------------------------------------------- writer --

std::unique_ptr<Publisher> Publisher::open(const std::string& shm_name, std::string* error) {
  auto seg = Segment::open(shm_name, Segment::Mode::kReadWrite, error);
  if (!seg) return nullptr;
  if (!seg->lockExclusive(error)) return nullptr;
  std::unique_ptr<Publisher> pub(new Publisher(std::move(seg)));
  if (!pub->initialize(error)) return nullptr;
  return pub;
}

bool Publisher::initialize(std::string* error) {
  Segment& seg = *segment_;
  if (seg.currentSize() < kSegmentHeaderSize && !seg.grow(kSegmentHeaderSize, error)) return false;
  if (seg.mappedSize() < seg.currentSize() && !seg.remap(error)) return false;
  SegmentHeader* h = headerOf(seg);
  bool ours = h->magic == kSegmentMagic && h->header_size == kSegmentHeaderSize;
  if (ours && h->abi_version == kAbiVersion) {
    uint64_t g = h->generation.load(std::memory_order_acquire);
    uint64_t in_slot = slotGeneration(seg, h->active_slot.load(std::memory_order_acquire));
    last_generation_ = std::max(g, in_slot);
    // A writer killed between "active_slot :=" and "generation :=" left the
    // newer table active but unannounced; announce it.
    if (in_slot > g) h->generation.store(in_slot, std::memory_order_release);
    h->writer_pid = static_cast<uint32_t>(::getpid());
    return true;
  }
  // Foreign or older layout: start over in place (readers keep the table they
  // already copied). Keep counting generations if the header was ours.
  uint64_t resume = ours ? h->generation.load(std::memory_order_relaxed) : 0;
  std::memset(seg.data(), 0, kSegmentHeaderSize);
  h->magic = kSegmentMagic;
  h->abi_version = kAbiVersion;
  h->header_size = kSegmentHeaderSize;
  std::strncpy(h->layout_version, layoutVersion(), sizeof(h->layout_version) - 1);
  h->segment_size.store(seg.currentSize(), std::memory_order_relaxed);
  h->writer_pid = static_cast<uint32_t>(::getpid());
  last_generation_ = resume;
  // Generation 0 = "nothing published" until our first publish().
  h->generation.store(0, std::memory_order_release);
  return true;
}

uint64_t Publisher::publish(const TableModel& model, std::string* error) {
  uint64_t g = last_generation_ + 1;
  try {
    return publishImage(builder_.build(model, g), g, error) ? g : 0;
  } catch (const std::exception& e) {
    *error = e.what();
    return 0;
  }
}

bool Publisher::publishImage(const std::vector<uint8_t>& image, uint64_t generation, std::string* error) {
  Segment& seg = *segment_;
  SegmentHeader* h = headerOf(seg);
  uint32_t slot = 1 - (h->active_slot.load(std::memory_order_relaxed) & 1);
  SlotDescriptor& d = h->slots[slot];

  uint64_t seq = d.seq.load(std::memory_order_relaxed);
  if (seq & 1) ++seq;  // a predecessor died mid-write; the slot is garbage anyway
  d.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);

  // Relocating the slot (when it is too small) happens under the odd seq, so
  // a reader that raced us sees the change.
  if (d.capacity.load(std::memory_order_relaxed) < image.size() || d.offset.load(std::memory_order_relaxed) == 0) {
    size_t cap = roundUp(std::max(kMinSlotCapacity, image.size() * 2), kSlotAlign);
    size_t off = roundUp(std::max(seg.currentSize(), kSegmentHeaderSize), kSlotAlign);
    if (!seg.grow(off + cap, error)) {
      d.seq.store(seq + 2, std::memory_order_release);
      return false;
    }
    h = headerOf(seg);  // the mapping moved
    h->segment_size.store(off + cap, std::memory_order_release);
    h->slots[slot].offset.store(off, std::memory_order_relaxed);
    h->slots[slot].capacity.store(cap, std::memory_order_relaxed);
  }
  SlotDescriptor& slot_desc = h->slots[slot];
  std::memcpy(seg.data() + slot_desc.offset.load(std::memory_order_relaxed), image.data(), image.size());
  slot_desc.size.store(image.size(), std::memory_order_relaxed);
  slot_desc.seq.store(seq + 2, std::memory_order_release);

  // The publish time, under its own seqlock (layout.h, PublishStamp): stamped
  // before the generation becomes visible, so a reader that loaded this
  // generation finds its time (or, racing the next publish, "not recorded").
  PublishStamp& stamp = h->published;
  stamp.generation.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  stamp.unix_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count(),
                      std::memory_order_relaxed);
  stamp.generation.store(generation, std::memory_order_release);

  h->active_slot.store(slot, std::memory_order_release);
  h->generation.store(generation, std::memory_order_release);
  last_generation_ = generation;
  return true;
}

uint64_t Publisher::recordRefusal(const Refusal& r) {
  SegmentHeader* h = headerOf(*segment_);
  RefusalSlot& slot = h->refusal;
  // Same writer protocol as a table slot: odd, release fence, payload, even.
  uint64_t seq = slot.seq.load(std::memory_order_relaxed);
  if (seq & 1) ++seq;  // a predecessor died mid-write
  slot.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  RefusalRecord rec;
  std::memcpy(&rec, &slot.record, sizeof rec);  // we are the only writer
  rec.count += 1;
  rec.unix_ms = r.unix_ms;
  rec.kept_generation = last_generation_;
  rec.source_checksum = r.source_checksum;
  rec.line = r.line;
  rec.column = r.column;
  rec.error_count = r.error_count;
  rec.reserved0 = 0;
  copyField(rec.file, r.file);
  copyField(rec.message, r.message);
  std::memcpy(&slot.record, &rec, sizeof rec);
  slot.seq.store(seq + 2, std::memory_order_release);
  return rec.count;
}

// ----------------------------------------------------------------- reader --

std::unique_ptr<Subscriber> Subscriber::open(const std::string& shm_name, std::string* error) {
  auto seg = Segment::open(shm_name, Segment::Mode::kReadOnly, error);
  if (!seg) return nullptr;
  if (seg->mappedSize() < kSegmentHeaderSize) {
    *error = shm_name + ": segment smaller than its header (not initialized yet?)";
    return nullptr;
  }
  return std::unique_ptr<Subscriber>(new Subscriber(std::move(seg)));
}

uint64_t Subscriber::generation() const {
  return headerOf(*segment_)->generation.load(std::memory_order_acquire);
}

int64_t Subscriber::publishedUnixNs(uint64_t generation) const {
  const PublishStamp& stamp = headerOf(*segment_)->published;
  uint64_t before = stamp.generation.load(std::memory_order_acquire);
  int64_t unix_ns = stamp.unix_ns.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  uint64_t after = stamp.generation.load(std::memory_order_relaxed);
  return generation != 0 && before == generation && after == generation ? unix_ns : 0;
}

Subscriber::Status Subscriber::checkHeader(std::string* why) {
  const SegmentHeader* h = headerOf(*segment_);
  if (h->magic != kSegmentMagic) {
    *why = "bad segment magic";
    return Status::kBadSegment;
  }
  if (h->abi_version != kAbiVersion) {
    // Say which side to upgrade: agent and sidecar must come from releases
    // that share a layout (the same image, normally).
    *why = "segment ABI version " + std::to_string(h->abi_version) + ", this build reads " +
           std::to_string(kAbiVersion) + " (the segment's writer, mulligan-agent, is " +
           (h->abi_version < kAbiVersion ? "older" : "newer") +
           " than this reader: run the agent and the sidecar from the same release)";
    return Status::kBadSegment;
  }
  if (h->header_size != kSegmentHeaderSize) {
    *why = "segment header size mismatch";
    return Status::kBadSegment;
  }
  return Status::kOk;
}

Subscriber::Status Subscriber::read(std::shared_ptr<const Table>* table, std::string* why) {
  std::string scratch_why;
  if (!why) why = &scratch_why;
  for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    if (attempt > 0) sched_yield();
    if (Status s = checkHeader(why); s != Status::kOk) return s;
    const SegmentHeader* h = headerOf(*segment_);
    if (h->generation.load(std::memory_order_acquire) == 0) return Status::kNothingYet;
    uint32_t slot = h->active_slot.load(std::memory_order_acquire);
    if (slot > 1) {
      *why = "active slot index out of range";
      return Status::kBadSegment;
    }
    const SlotDescriptor& d = h->slots[slot];
    uint64_t seq1 = d.seq.load(std::memory_order_acquire);
    if (seq1 & 1) continue;  // being rewritten: the writer lapped us
    uint64_t off = d.offset.load(std::memory_order_relaxed);
    uint64_t size = d.size.load(std::memory_order_relaxed);
    uint64_t cap = d.capacity.load(std::memory_order_relaxed);
    // Untrusted numbers: check them against the object's real size (the file
    // may have grown since we mapped it; touching past its end would SIGBUS).
    size_t real = segment_->currentSize();
    if (off < kSegmentHeaderSize || size > cap || off > real || cap > real - off) {
      std::atomic_thread_fence(std::memory_order_acquire);
      if (d.seq.load(std::memory_order_relaxed) != seq1) continue;
      *why = "slot out of bounds";
      return Status::kBadSegment;
    }
    if (off + cap > segment_->mappedSize()) {
      if (!segment_->remap(why)) return Status::kBadSegment;
      h = headerOf(*segment_);
      --attempt;  // a remap is not a torn read
      continue;
    }
    scratch_.resize(size);
    std::memcpy(scratch_.data(), segment_->data() + off, size);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (d.seq.load(std::memory_order_relaxed) != seq1) continue;  // torn: retry
    auto t = Table::fromImage(scratch_.data(), scratch_.size(), why);
    if (!t) return Status::kBadTable;
    *table = std::move(t);
    return Status::kOk;
  }
  *why = "table kept changing while being copied";
  return Status::kTorn;
}

Subscriber::Status Subscriber::readRefusal(Refusal* out, std::string* why) {
  std::string scratch_why;
  if (!why) why = &scratch_why;
  for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    if (attempt > 0) sched_yield();
    if (Status s = checkHeader(why); s != Status::kOk) return s;
    const RefusalSlot& slot = headerOf(*segment_)->refusal;
    uint64_t seq1 = slot.seq.load(std::memory_order_acquire);
    if (seq1 & 1) continue;
    RefusalRecord rec;
    std::memcpy(&rec, &slot.record, sizeof rec);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.seq.load(std::memory_order_relaxed) != seq1) continue;  // torn: retry
    if (rec.count == 0) return Status::kNothingYet;
    out->file = readField(rec.file);
    out->message = readField(rec.message);
    out->line = rec.line;
    out->column = rec.column;
    out->error_count = rec.error_count;
    out->unix_ms = rec.unix_ms;
    out->source_checksum = rec.source_checksum;
    out->count = rec.count;
    out->kept_generation = rec.kept_generation;
    return Status::kOk;
  }
  *why = "refusal record kept changing while being copied";
  return Status::kTorn;
}

const char* Subscriber::statusName(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kNothingYet: return "nothing published yet";
    case Status::kBadSegment: return "bad segment";
    case Status::kTorn: return "torn read";
    case Status::kBadTable: return "bad table";
  }
  return "?";
}

}  // namespace mulligan::pfc
