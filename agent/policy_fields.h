// The policy's fields, described once: name, where each may be written,
// its type, its limits and its help text. The compiler takes its key lists
// and its limits from here, and `mulligan-agent schema` (the JSON Schema) and
// `mulligan-agent reference` (docs/policy.md) are generated from here, so a
// field cannot be accepted by the compiler and missing from the documents,
// nor documented with a range the compiler does not enforce.
//
// Defaults are not written here: the generators read them from
// pfc::builtinDefaults() through the same renderer `mulligan-agent dump`
// uses, so a changed built-in value changes the documents.
//
// Pure data; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace mulligan::agent {

// Which table a field sits in.
enum class Section : uint8_t {
  kRoot,      // the top level of the file
  kPolicy,    // a policy level itself: [defaults], a [[service]], a [[service.route]]
  kRetry,     // the retry table of a policy level
  kBudget,    // the budget table of a policy level
  kDeadline,  // the deadline table of a policy level
  kHedge,     // the hedge table of a policy level
  kOutlier,   // the outlier table of a policy level
  kService,   // a [[service]]'s own fields (not inherited)
  kRoute,     // a [[service.route]]'s own fields (not inherited)
};

// The value a field takes, as TOML writes it.
enum class FieldKind : uint8_t {
  kTable,        // a table: [defaults], retry = { ... }
  kTableArray,   // an array of tables: [[service]]
  kInteger,      // min..max
  kNumber,       // integer or float, min..max
  kBoolean,
  kDuration,     // "500ms": min..max microseconds
  kSize,         // "64KiB" or an integer of bytes: min..max bytes
  kString,       // checked by the compiler; `pattern` says what the schema can
  kStringList,   // a non-empty array of distinct strings
  kRetryOn,      // condition names, status codes, gRPC status names
  kMethods,      // a non-empty array of distinct upper-case HTTP methods
  kHedgeDelay,   // a duration (min..max microseconds) or a quantile name ("p99")
};

// Where a policy field may be set (bits). Fields of kService and kRoute
// belong to their table and are not inherited.
enum LevelBit : uint8_t {
  kAtDefaults = 1,
  kAtService = 2,
  kAtRoute = 4,
  kAtAllLevels = kAtDefaults | kAtService | kAtRoute,
};

struct FieldSpec {
  Section section;
  std::string_view name;
  FieldKind kind;
  uint8_t levels = 0;          // LevelBits, for kPolicy and sub-table fields
  int64_t min = 0;             // kInteger, kNumber, kDuration (us), kSize (bytes);
  int64_t max = 0;             //   kString: length limits (0 = none)
  bool required = false;       // kService/kRoute: the table must have it
  std::string_view pattern;    // kString: a JSON Schema (ECMA-262) pattern; the compiler checks more
  std::string_view summary;    // one line, no trailing period
  std::string_view help;       // what it does, in full sentences ("" = summary says it all)
  std::string_view example;    // a TOML line setting it, e.g. connect_timeout = "2s"
};

// Every field, in the order the documents list them.
std::span<const FieldSpec> policyFields();

// The field `name` of `section`. Aborts when there is none: callers name
// fields in code, so a missing one is a bug, not input.
const FieldSpec& policyField(Section section, std::string_view name);

// The names of the fields of `section`, in order: all of them, only the
// tables (kTable, kTableArray) or only the values.
enum class KindFilter : uint8_t { kAll, kTables, kValues };
std::vector<std::string_view> fieldNames(Section section, KindFilter filter = KindFilter::kAll);
// The keys a policy level accepts: kPolicy fields settable there, plus the
// level's own fields (kService for kAtService, kRoute for kAtRoute).
std::vector<std::string_view> levelKeys(LevelBit level);

// The keys of which a route has exactly one.
std::span<const std::string_view> routeMatchKeys();

// What one retry_on name means (every name the compiler accepts has one;
// a unit test checks it).
struct RetryOnHelp {
  std::string_view name;
  std::string_view meaning;
};
std::span<const RetryOnHelp> retryOnHelp();

// A rule the compiler enforces that a JSON Schema cannot express, with a
// policy that breaks it (tests check that `check` refuses each one and the
// schema accepts it, so this list stays honest).
struct CheckOnlyRule {
  std::string_view rule;
  std::string_view example;  // a whole policy file breaking only this rule
};
std::span<const CheckOnlyRule> checkOnlyRules();

// The canonical spelling of a section in documents: "[defaults.retry]" style
// names without brackets: "", "retry", "budget", "deadline", "hedge", "outlier",
// "service", "route".
std::string_view sectionName(Section section);

// The sub-tables of a policy level, in document order: retry, budget,
// deadline, hedge, outlier. True for the sections they hold.
std::span<const Section> subTableSections();
bool isSubTable(Section section);

}  // namespace mulligan::agent
