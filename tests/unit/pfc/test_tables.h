// Table models shared by the proto-free-config tests and benchmarks.
#pragma once

#include <string>

#include "proto-free-config/table_model.h"

namespace mulligan::pfc::testing {

// `services` services named "svc-N" with hosts "svc-N" and "svc-N.ns.svc",
// each with `routes` routes: "/api/N/0/", ... and a gRPC service route. Every
// service gets a distinct request_timeout so lookups can be told apart.
inline TableModel makeModel(int services, int routes) {
  TableModel m;
  m.defaults = builtinDefaults();
  m.source_path = "/etc/mulligan/policy.toml";
  m.source_checksum = 0x1234abcd;
  m.created_unix_ns = 1700000000000000000;
  for (int s = 0; s < services; ++s) {
    ServiceModel svc;
    svc.name = "svc-" + std::to_string(s);
    svc.hosts = {svc.name, svc.name + ".ns.svc"};
    svc.policy = builtinDefaults();
    svc.policy.request_timeout_us = 1000000 + s;
    for (int r = 0; r < routes; ++r) {
      RouteModel rm;
      if (r == routes - 1) {
        rm.kind = MatchKind::kGrpcService;
        rm.match = "pkg" + std::to_string(s) + ".Svc";
      } else {
        rm.kind = MatchKind::kPathPrefix;
        rm.match = "/api/" + std::to_string(s) + "/" + std::to_string(r) + "/";
      }
      rm.policy = svc.policy;
      rm.policy.retry.num_retries = static_cast<uint32_t>(r % 5);
      rm.policy.read_timeout_us = r;
      svc.routes.push_back(rm);
    }
    m.services.push_back(std::move(svc));
  }
  return m;
}

}  // namespace mulligan::pfc::testing
