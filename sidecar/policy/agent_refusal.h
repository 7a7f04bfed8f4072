// The agent's last refused policy file, as the sidecar's admin endpoint
// shows it (/config "last_refused", the / page, /metrics).
//
// The agent records a refusal in the segment's header (pfc::RefusalRecord)
// when a policy file does not compile: nothing is published and the previous
// generation stays enforced, so no PolicyView ever notices. This reader looks
// at the record when the admin endpoint renders a page.
//
// Threading: one instance, used by the admin thread only. Never on the data
// path: reading copies ~1.3 KB under the record's seqlock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "proto-free-config/publish.h"

namespace mulligan::policy {

class AgentRefusalReader {
 public:
  explicit AgentRefusalReader(std::string shm_name) : shm_name_(std::move(shm_name)) {}

  struct Result {
    std::optional<pfc::Refusal> refusal;  // nullopt: none recorded, or unreadable
    uint64_t published_generation = 0;    // the segment's generation when read
  };

  // Reads the record now. A missing segment is looked for again at most once
  // a second (now_us is monotonic); a torn read keeps the previous result.
  Result read(int64_t now_us);

 private:
  std::string shm_name_;
  std::unique_ptr<pfc::Subscriber> subscriber_;
  int64_t next_open_attempt_us_ = 0;
  Result last_;
};

}  // namespace mulligan::policy
