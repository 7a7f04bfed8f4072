#include "proto-free-config/layout.h"

#include <cstdio>

namespace mulligan::pfc {

const char* layoutVersion() {
  // Built once; the sizes make two builds with different struct layouts
  // disagree even if someone forgot to bump kAbiVersion.
  static const std::string_view kVersion = [] {
    static char buf[64];
    std::snprintf(buf, sizeof buf, "pfc/%u seg=%zu tbl=%zu pol=%zu svc=%zu rt=%zu", kAbiVersion,
                  sizeof(SegmentHeader), sizeof(TableHeader), sizeof(EffectivePolicy), sizeof(ServiceEntry),
                  sizeof(RouteEntry));
    return std::string_view(buf);
  }();
  return kVersion.data();
}

}  // namespace mulligan::pfc
