// The documents generated from the field descriptions (policy_fields.h):
//
//   policySchemaJson()       `mulligan-agent schema`: a JSON Schema (draft-07,
//                            the draft taplo, tombi and VS Code's JSON tools
//                            all read) of the policy file, with descriptions,
//                            the built-in defaults, enums for retry_on names
//                            and methods, patterns for durations and sizes.
//                            docs/policy.schema.json is its output.
//   policyReferenceMarkdown() `mulligan-agent reference`: docs/policy.md.
//
// Both are deterministic (no dates, no paths), so that a test can compare
// them with the files in docs/ and fail when the code changed without them
// (scripts/gen-docs regenerates). Defaults come from pfc::builtinDefaults()
// through pfc::policyToJson(), the renderer of `mulligan-agent dump`.
//
// Pure functions; thread-safe.
#pragma once

#include <string>

namespace mulligan::agent {

// The JSON Schema pattern of a duration ("500ms", "1m30s", "0s") and of a
// size ("64KiB", "1MiB", or digits: bytes). They check the spelling only.
extern const char* const kDurationPattern;
extern const char* const kSizePattern;

std::string policySchemaJson();
std::string policyReferenceMarkdown();

}  // namespace mulligan::agent
