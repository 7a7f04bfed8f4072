// The bytes both processes agree on. Two layers:
//
//  * the SEGMENT: a header at offset 0 (magic, ABI, sizes, the published
//    generation, and for each of two slots a seqlock counter plus where the
//    slot lives), followed by slot regions. One writer (the agent) writes the
//    inactive slot in full and then publishes it; readers (sidecars, `dump`)
//    copy the active slot out and re-check its counter (see publish.h).
//
//  * the TABLE IMAGE stored in a slot: a self-contained, offset-based blob
//    (TableHeader, then arrays of policies, services, routes, hosts and a
//    string pool). It carries its own magic, ABI, size, generation and a
//    checksum, so a copy can be validated with no reference to the segment.
//
// Everything is POD, little-endian, with indices and offsets instead of
// pointers. Readers treat every byte as untrusted (table_reader.h validates).
// Changing anything here means bumping kAbiVersion — except appending a field
// to SegmentHeader inside its page, where 0 means "not recorded": the agent
// zeroes the whole page when it initializes a segment, so an older writer's
// segment reads as "not recorded" and an older reader never looks there
// (PublishStamp was added that way, within ABI 2).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "policy.h"

namespace mulligan::pfc {

// 1: the first layout. 2: the segment header gains `refusal`, the agent's
// last refused policy file (the table image is unchanged). 3: EffectivePolicy
// gains `hedge`, `outlier` and `retry.fresh_connection` (DESIGN.md "Hedging,
// endpoints, overload signals and Connect"); the segment header is unchanged. A reader of one
// version refuses a segment of another and says which side is older.
constexpr uint32_t kAbiVersion = 3;
constexpr uint64_t kSegmentMagic = 0x314753474c4c554dULL;  // "MULLGSG1" little-endian
constexpr uint64_t kTableMagic = 0x314c42544c4c554dULL;    // "MULLTBL1" little-endian
constexpr size_t kSegmentHeaderSize = 4096;  // one page; slots start page-aligned
constexpr size_t kSlotAlign = 4096;

// ---------------------------------------------------------------- segment --

// Where one of the two slots lives and its seqlock counter. `seq` is odd while
// the writer is changing the slot (including `offset`/`capacity`), even when
// the slot is stable. A writer killed mid-write leaves it odd; the next writer
// rounds it up to even before starting again.
struct SlotDescriptor {
  std::atomic<uint64_t> seq;
  std::atomic<uint64_t> offset;    // byte offset of the slot in the segment
  std::atomic<uint64_t> capacity;  // bytes reserved for the slot
  std::atomic<uint64_t> size;      // bytes of table image written
};

// The agent's newest refusal of a policy file (a file that did not compile:
// nothing was published and the previous generation stays). Written by the
// agent, read by sidecars for their admin endpoint; sizes are fixed and
// strings NUL-terminated (truncated when longer), readers still bound them.
struct RefusalRecord {
  uint64_t count;            // policy files refused since the segment was initialized; 0 = none
  int64_t unix_ms;           // when the newest refusal happened
  uint64_t kept_generation;  // the generation published when it happened (0 = none)
  uint64_t source_checksum;  // checksum64 of the refused file's bytes; 0 when unreadable
  uint32_t line;             // of the first error, 1-based; 0 = the file as a whole
  uint32_t column;           // 1-based, in characters
  uint32_t error_count;      // errors in the file (the first one is below)
  uint32_t reserved0;
  char file[256];            // the policy file as the agent names it
  char message[1024];        // the first error's message, without FILE:LINE:COL
};

// The record behind its own seqlock (the same protocol as a slot's: odd while
// the agent rewrites `record`), so that a refusal never touches the slots.
struct RefusalSlot {
  std::atomic<uint64_t> seq;
  RefusalRecord record;
};

static_assert(std::is_trivially_copyable_v<RefusalRecord>);
static_assert(sizeof(RefusalRecord) == 1328);

// When the agent published a generation: taken just before the release store
// of `generation`, so that a sidecar can say how long the first request that
// enforced the table waited for it (mulligan_policy_propagation_seconds).
// Its own seqlock, with `generation` as the counter: 0 while the agent
// rewrites `unix_ns`, then the generation the time belongs to. A reader that
// sees a different generation (an older agent that does not stamp, or a
// publish racing the read) gets "not recorded", never another table's time.
struct PublishStamp {
  std::atomic<uint64_t> generation;  // the generation unix_ns belongs to; 0 = none or being rewritten
  std::atomic<int64_t> unix_ns;      // CLOCK_REALTIME, ns since the epoch
};

struct SegmentHeader {
  uint64_t magic;                  // kSegmentMagic
  uint32_t abi_version;            // kAbiVersion
  uint32_t header_size;            // kSegmentHeaderSize
  char layout_version[48];         // human-readable, shown on the admin endpoint
  std::atomic<uint64_t> segment_size;  // current file size; grows, never shrinks
  std::atomic<uint64_t> generation;    // published generation; 0 = nothing yet
  std::atomic<uint32_t> active_slot;   // 0 or 1: the slot holding `generation`
  uint32_t writer_pid;             // informational
  SlotDescriptor slots[2];
  RefusalSlot refusal;             // since ABI 2
  PublishStamp published;          // appended within ABI 2 (zero in older agents' segments)
};

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == 8);
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(sizeof(SegmentHeader) <= kSegmentHeaderSize);
static_assert(offsetof(SegmentHeader, generation) % 8 == 0);
static_assert(offsetof(SegmentHeader, refusal) % 8 == 0);
static_assert(offsetof(SegmentHeader, published) % 8 == 0);
static_assert(std::atomic<int64_t>::is_always_lock_free);

// ------------------------------------------------------------ table image --

// A string in the image's string pool: [offset, offset + len).
struct StrRef {
  uint32_t offset;
  uint32_t len;
};

// An array in the image: `count` elements of a fixed type starting `offset`
// bytes from the start of the image.
struct Section {
  uint32_t offset;
  uint32_t count;
};

// How a route matches a request.
enum class MatchKind : uint8_t {
  kPathPrefix = 0,   // path starts with `match`
  kPathExact = 1,    // path (without query) equals `match`
  kGrpcService = 2,  // gRPC request to /<match>/*
  kGrpcMethod = 3,   // gRPC request to /<match>
};

struct RouteEntry {
  StrRef match;
  uint32_t methods;        // Method bits; kAllMethods when unrestricted
  uint32_t policy_index;   // into the policies section
  MatchKind kind;
  uint8_t reserved0[7];
};

// A host name a service answers to. Exact names are stored lower case;
// wildcards "*.example.com" are stored as their suffix ".example.com".
enum class HostKind : uint8_t {
  kExact = 0,
  kSuffix = 1,
};

struct HostEntry {
  StrRef name;
  uint32_t service_index;
  HostKind kind;
  uint8_t reserved0[3];
};

struct ServiceEntry {
  StrRef name;
  StrRef upstream;         // "host:port" or empty
  uint32_t port;           // 0 = any port
  uint32_t policy_index;   // service-level effective policy
  uint32_t route_begin;    // routes [route_begin, route_begin + route_count)
  uint32_t route_count;
};

struct TableHeader {
  uint64_t magic;          // kTableMagic
  uint32_t abi_version;    // kAbiVersion
  uint32_t header_size;    // sizeof(TableHeader)
  uint64_t total_size;     // bytes of the whole image
  uint64_t checksum;       // checksum64 of bytes [kChecksummedFrom, total_size)
  uint64_t generation;
  int64_t created_unix_ns; // when the agent compiled it
  uint64_t source_checksum;  // checksum64 of the policy file's bytes
  StrRef source_path;      // the policy file the agent read
  uint32_t defaults_policy;  // index of [defaults] in the policies section
  uint32_t reserved0;
  Section policies;        // EffectivePolicy[]
  Section services;        // ServiceEntry[]
  Section routes;          // RouteEntry[]
  Section hosts;           // HostEntry[]
  Section strings;         // char[] (count = bytes)
};

// The checksum covers everything after the checksum field itself.
constexpr size_t kChecksummedFrom = offsetof(TableHeader, checksum) + sizeof(uint64_t);

static_assert(std::is_trivially_copyable_v<TableHeader>);
static_assert(std::is_trivially_copyable_v<ServiceEntry>);
static_assert(std::is_trivially_copyable_v<RouteEntry>);
static_assert(std::is_trivially_copyable_v<HostEntry>);
static_assert(sizeof(StrRef) == 8 && sizeof(Section) == 8);
static_assert(sizeof(RouteEntry) == 24);
static_assert(sizeof(HostEntry) == 16);
static_assert(sizeof(ServiceEntry) == 32);
static_assert(sizeof(TableHeader) == 112);
static_assert(alignof(EffectivePolicy) == 8);

// "pfc/1 seg=4096 tbl=104 pol=..." — the layout's identity, like Envoy's
// hot-restart version: two builds can share a segment iff these are equal.
const char* layoutVersion();

}  // namespace mulligan::pfc
