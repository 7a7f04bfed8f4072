// The attempt helpers: which inbound fields the engine's per-attempt
// headers replace.
#include "sidecar/upstream/attempt.h"

#include <gtest/gtest.h>

namespace mulligan::proxy {
namespace {

TEST(AttemptHeaderReplacementTest, InboundFieldsOfTheEngineNamesAreReplacedCaseInsensitively) {
  retry::AttemptHeaders extra;
  extra.addNumber(retry::kAttemptCountHeader, 2);
  extra.add(retry::kGrpcTimeoutHeader, "300000u");
  EXPECT_TRUE(replacedByAttemptHeaders(extra, "Grpc-Timeout"));
  EXPECT_TRUE(replacedByAttemptHeaders(extra, "x-envoy-attempt-count"));
  EXPECT_FALSE(replacedByAttemptHeaders(extra, "x-timeout-budget"));  // not set: passes through
}

}  // namespace
}  // namespace mulligan::proxy
