// checksum64: a fast, non-cryptographic 64-bit checksum of a byte range. It
// guards the table image against torn copies and stray writes (not against an
// adversary: the segment is only writable by the agent). Four independent
// multiply-rotate lanes keep it at several bytes per cycle, so checksumming a
// multi-megabyte table stays far below a millisecond.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mulligan::pfc {

uint64_t checksum64(const void* data, size_t size, uint64_t seed = 0);

}  // namespace mulligan::pfc
