#include "agent/policy_docs.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/json.h"
#include "agent/policy_fields.h"
#include "proto-free-config/duration.h"
#include "proto-free-config/policy.h"
#include "proto-free-config/render.h"

namespace mulligan::agent {

// A number with a fraction or not (".5s" too), then a unit; parts repeat
// ("1m30s"). The order of units and overflow are the compiler's to check.
const char* const kDurationPattern = "^(([0-9]+(\\.[0-9]+)?|\\.[0-9]+)(h|m|s|ms|us|\xc2\xb5s))+$";
// Bytes as digits alone, or a number and a unit.
const char* const kSizePattern = "^([0-9]+|([0-9]+(\\.[0-9]+)?|\\.[0-9]+)(B|KiB|MiB|GiB))$";

namespace {

// ------------------------------------------------------------ JSON out --

// An ordered JSON tree, printed with two-space indentation; arrays of
// scalars stay on one line.
struct Node {
  enum class Kind { kRaw, kObject, kArray };
  Kind kind = Kind::kObject;
  std::string raw;  // a scalar's JSON text
  // An object's members, in order: keys[i] names values[i]. (Two vectors,
  // not one of pairs: std::pair needs a complete Node, std::vector does not.)
  std::vector<std::string> keys;
  std::vector<Node> values;
  std::vector<Node> items;

  Node& set(std::string key, Node value) {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) {
        values[i] = std::move(value);
        return values[i];
      }
    }
    keys.push_back(std::move(key));
    values.push_back(std::move(value));
    return values.back();
  }
};

Node object() { return Node{}; }
Node array() { return Node{Node::Kind::kArray, {}, {}, {}, {}}; }
Node rawJson(std::string text) { return Node{Node::Kind::kRaw, std::move(text), {}, {}, {}}; }
Node string(std::string_view s) { return rawJson(pfc::jsonQuote(s)); }
Node integer(int64_t v) { return rawJson(std::to_string(v)); }
Node boolean(bool v) { return rawJson(v ? "true" : "false"); }
Node strings(const std::vector<std::string_view>& v) {
  Node a = array();
  for (std::string_view s : v) a.items.push_back(string(s));
  return a;
}

void print(const Node& n, int indent, std::string* out) {
  std::string pad(static_cast<size_t>(indent), ' ');
  switch (n.kind) {
    case Node::Kind::kRaw:
      *out += n.raw;
      return;
    case Node::Kind::kArray: {
      bool flat = true;
      for (const Node& i : n.items) flat = flat && i.kind == Node::Kind::kRaw;
      *out += "[";
      for (size_t i = 0; i < n.items.size(); ++i) {
        if (i) *out += flat ? ", " : ",";
        if (!flat) *out += "\n" + pad + "  ";
        print(n.items[i], indent + 2, out);
      }
      if (!flat && !n.items.empty()) *out += "\n" + pad;
      *out += "]";
      return;
    }
    case Node::Kind::kObject:
      *out += "{";
      for (size_t i = 0; i < n.keys.size(); ++i) {
        *out += i ? ",\n" : "\n";
        *out += pad + "  " + pfc::jsonQuote(n.keys[i]) + ": ";
        print(n.values[i], indent + 2, out);
      }
      if (!n.keys.empty()) *out += "\n" + pad;
      *out += "}";
      return;
  }
}

Node fromJson(const Json& j) {
  switch (j.type()) {
    case Json::Type::kNull: return rawJson("null");
    case Json::Type::kBool: return boolean(j.boolean());
    case Json::Type::kNumber: return rawJson(j.str());
    case Json::Type::kString: return string(j.str());
    case Json::Type::kArray: {
      Node a = array();
      for (const Json& i : j.items()) a.items.push_back(fromJson(i));
      return a;
    }
    case Json::Type::kObject: {
      Node o = object();
      for (const auto& [k, v] : j.members()) o.set(k, fromJson(v));
      return o;
    }
  }
  return rawJson("null");
}

// The same value as TOML writes it (strings, numbers, booleans and arrays
// of them: JSON's spelling is TOML's).
std::string tomlValue(const Json& j) {
  switch (j.type()) {
    case Json::Type::kBool: return j.boolean() ? "true" : "false";
    case Json::Type::kNumber: return j.str();
    case Json::Type::kString: return pfc::jsonQuote(j.str());
    case Json::Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < j.items().size(); ++i) out += (i ? ", " : "") + tomlValue(j.items()[i]);
      return out + "]";
    }
    default: return "";
  }
}

// ------------------------------------------------------- field facts --

// The built-in defaults, as `mulligan-agent dump --format json` shows them.
const Json& builtinJson() {
  static const Json doc = [] {
    std::string error;
    auto j = Json::parse(pfc::policyToJson(pfc::builtinDefaults()), &error);
    if (!j) {
      std::fprintf(stderr, "policyToJson() is not JSON: %s\n", error.c_str());
      std::abort();
    }
    return *j;
  }();
  return doc;
}

// The field's built-in default; null when it has none (tables, service and
// route fields).
const Json& builtinDefault(const FieldSpec& f) {
  static const Json kNull;
  if (f.kind == FieldKind::kTable || f.kind == FieldKind::kTableArray) return kNull;
  switch (f.section) {
    case Section::kPolicy: return builtinJson()[f.name];
    case Section::kRetry:
    case Section::kBudget:
    case Section::kDeadline:
    case Section::kHedge:
    case Section::kOutlier: return builtinJson()[sectionName(f.section)][f.name];
    default: return kNull;
  }
}

std::vector<std::string_view> retryOnConditionNames() {
  std::vector<std::string_view> names;
  for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount); ++c) {
    names.push_back(pfc::conditionName(static_cast<pfc::RetryCondition>(c)));
  }
  for (uint32_t g = 0; g <= static_cast<uint32_t>(pfc::GrpcCode::kUnauthenticated); ++g) {
    if (auto name = pfc::grpcCodeName(static_cast<pfc::GrpcCode>(g)); !name.empty()) names.push_back(name);
  }
  return names;
}

std::string_view retryOnMeaning(std::string_view name) {
  for (const RetryOnHelp& h : retryOnHelp()) {
    if (h.name == name) return h.meaning;
  }
  std::fprintf(stderr, "retry_on name \"%.*s\" has no help in policy_fields.cc\n", static_cast<int>(name.size()),
               name.data());
  std::abort();
}

std::vector<std::string_view> methodNames() {
  std::vector<std::string_view> names;
  for (uint32_t m = 0; m < static_cast<uint32_t>(pfc::Method::kCount); ++m) {
    names.push_back(pfc::methodName(static_cast<pfc::Method>(m)));
  }
  return names;
}

std::string typeName(const FieldSpec& f) {
  switch (f.kind) {
    case FieldKind::kTable: return "table";
    case FieldKind::kTableArray: return "array of tables";
    case FieldKind::kInteger: return "integer";
    case FieldKind::kNumber: return "number";
    case FieldKind::kBoolean: return "boolean";
    case FieldKind::kDuration: return "duration";
    case FieldKind::kSize: return "size";
    case FieldKind::kString: return "string";
    case FieldKind::kStringList: return "array of strings";
    case FieldKind::kRetryOn: return "array of retry_on names";
    case FieldKind::kMethods: return "array of methods";
    case FieldKind::kHedgeDelay: return "duration or quantile";
  }
  return "";
}

// "0s to 24h", "more than 0s, at most 24h", "0 to 25", "1 to 128 characters".
std::string rangeText(const FieldSpec& f) {
  switch (f.kind) {
    case FieldKind::kInteger:
    case FieldKind::kNumber:
      return f.min == f.max ? "only " + std::to_string(f.min) : std::to_string(f.min) + " to " + std::to_string(f.max);
    case FieldKind::kDuration:
      if (f.min == 1) return "more than 0s, at most " + pfc::formatDuration(f.max);
      return pfc::formatDuration(f.min) + " to " + pfc::formatDuration(f.max);
    case FieldKind::kSize:
      return pfc::formatSize(static_cast<uint64_t>(f.min)) + " to " + pfc::formatSize(static_cast<uint64_t>(f.max));
    case FieldKind::kString:
      if (f.max == 0) return "";
      if (f.min == 0) return "at most " + std::to_string(f.max) + " characters";
      return std::to_string(f.min) + " to " + std::to_string(f.max) + " characters";
    case FieldKind::kStringList:
    case FieldKind::kMethods:
      return "at least one, each once";
    case FieldKind::kHedgeDelay: {
      std::string q;
      for (std::string_view n : pfc::kQuantileNames) q += (q.empty() ? "" : ", ") + std::string(n);
      return pfc::formatDuration(f.min) + " to " + pfc::formatDuration(f.max) + ", or " + q;
    }
    default:
      return "";
  }
}

// "[defaults], [[service]], [[service.route]]"
std::string levelsText(uint8_t levels) {
  std::string out;
  auto add = [&](const char* s) { out += (out.empty() ? "" : ", ") + std::string(s); };
  if (levels & kAtDefaults) add("`[defaults]`");
  if (levels & kAtService) add("`[[service]]`");
  if (levels & kAtRoute) add("`[[service.route]]`");
  return out;
}

std::string sentence(std::string_view s) {
  std::string out(s);
  if (!out.empty() && out.back() != '.' && out.back() != ')') out += '.';
  if (!out.empty() && out.back() == ')') out += '.';
  return out;
}

// ----------------------------------------------------------- schema --

std::string description(const FieldSpec& f, LevelBit level) {
  std::string d = sentence(f.summary);
  if (!f.help.empty()) d += " " + sentence(f.help);
  std::string range = rangeText(f);
  if (!range.empty()) d += " Range: " + range + ".";
  const Json& def = builtinDefault(f);
  if (!def.isNull()) {
    d += level == kAtDefaults ? " Built-in default: " + tomlValue(def) + "."
                              : " Left out: inherited (built-in default " + tomlValue(def) + ").";
  }
  return d;
}

Node valueSchema(const FieldSpec& f) {
  Node s = object();
  switch (f.kind) {
    case FieldKind::kInteger:
      s.set("type", string("integer"));
      s.set("minimum", integer(f.min));
      s.set("maximum", integer(f.max));
      break;
    case FieldKind::kNumber:
      s.set("type", string("number"));
      s.set("minimum", integer(f.min));
      s.set("maximum", integer(f.max));
      break;
    case FieldKind::kBoolean:
      s.set("type", string("boolean"));
      break;
    case FieldKind::kDuration:
      s.set("type", string("string"));
      s.set("pattern", string(kDurationPattern));
      break;
    case FieldKind::kSize: {
      Node text = object();
      text.set("type", string("string"));
      text.set("pattern", string(kSizePattern));
      Node bytes = object();
      bytes.set("type", string("integer"));
      bytes.set("minimum", integer(f.min));
      bytes.set("maximum", integer(f.max));
      Node any = array();
      any.items.push_back(std::move(text));
      any.items.push_back(std::move(bytes));
      s.set("anyOf", std::move(any));
      break;
    }
    case FieldKind::kString:
      s.set("type", string("string"));
      if (f.min > 0) s.set("minLength", integer(f.min));
      if (f.max > 0) s.set("maxLength", integer(f.max));
      if (!f.pattern.empty()) s.set("pattern", string(f.pattern));
      break;
    case FieldKind::kStringList: {
      s.set("type", string("array"));
      Node item = object();
      item.set("type", string("string"));
      item.set("minLength", integer(1));
      s.set("items", std::move(item));
      s.set("minItems", integer(1));
      s.set("uniqueItems", boolean(true));
      break;
    }
    case FieldKind::kRetryOn: {
      s.set("type", string("array"));
      Node named = object();
      named.set("type", string("string"));
      std::vector<std::string_view> names = retryOnConditionNames();
      named.set("enum", strings(names));
      // taplo shows these beside each completion.
      std::vector<std::string_view> meanings;
      for (std::string_view n : names) meanings.push_back(retryOnMeaning(n));
      Node taplo = object();
      Node docs = object();
      docs.set("enumValues", strings(meanings));
      taplo.set("docs", std::move(docs));
      named.set("x-taplo", std::move(taplo));
      Node status_text = object();
      status_text.set("type", string("string"));
      status_text.set("pattern", string("^[1-5][0-9][0-9]$"));
      status_text.set("description", string("An HTTP status code, 100 to 599."));
      Node status = object();
      status.set("type", string("integer"));
      status.set("minimum", integer(pfc::kMinStatus));
      status.set("maximum", integer(pfc::kMaxStatus));
      status.set("description", string("An HTTP status code, 100 to 599."));
      Node any = array();
      any.items.push_back(std::move(named));
      any.items.push_back(std::move(status_text));
      any.items.push_back(std::move(status));
      Node item = object();
      item.set("anyOf", std::move(any));
      s.set("items", std::move(item));
      break;
    }
    case FieldKind::kMethods: {
      s.set("type", string("array"));
      Node item = object();
      item.set("type", string("string"));
      item.set("enum", strings(methodNames()));
      s.set("items", std::move(item));
      s.set("minItems", integer(1));
      s.set("uniqueItems", boolean(true));
      break;
    }
    case FieldKind::kHedgeDelay: {
      s.set("type", string("string"));
      Node duration = object();
      duration.set("pattern", string(kDurationPattern));
      Node quantile = object();
      quantile.set("enum", strings(std::vector<std::string_view>(std::begin(pfc::kQuantileNames),
                                                                 std::end(pfc::kQuantileNames))));
      Node any = array();
      any.items.push_back(std::move(duration));
      any.items.push_back(std::move(quantile));
      s.set("anyOf", std::move(any));
      break;
    }
    case FieldKind::kTable:
    case FieldKind::kTableArray:
      break;
  }
  return s;
}

Node tableSchema(Section section, LevelBit level, std::string_view desc);

Node fieldSchema(const FieldSpec& f, LevelBit level) {
  std::string desc = description(f, level);
  if (f.kind == FieldKind::kTable) {
    for (Section sub : subTableSections()) {
      if (sectionName(sub) == f.name) return tableSchema(sub, level, desc);
    }
    std::fprintf(stderr, "table field \"%.*s\" has no section\n", static_cast<int>(f.name.size()), f.name.data());
    std::abort();
  }
  Node s = object();
  s.set("description", string(desc));
  Node value = valueSchema(f);
  for (size_t i = 0; i < value.keys.size(); ++i) s.set(std::move(value.keys[i]), std::move(value.values[i]));
  const Json& def = builtinDefault(f);
  if (level == kAtDefaults && !def.isNull()) s.set("default", fromJson(def));
  return s;
}

// The fields of one policy level ([defaults], a service, a route), or of a
// retry/budget/deadline table at that level.
Node tableSchema(Section section, LevelBit level, std::string_view desc) {
  Node s = object();
  if (!desc.empty()) s.set("description", string(desc));
  s.set("type", string("object"));
  Node props = object();
  for (const FieldSpec& f : policyFields()) {
    bool here = section == Section::kPolicy
                    ? (f.section == Section::kPolicy && (f.levels & level)) ||
                          (level == kAtService && f.section == Section::kService) ||
                          (level == kAtRoute && f.section == Section::kRoute)
                    : f.section == section && (f.levels & level);
    if (!here) continue;
    if (f.section == Section::kService && f.name == "route") {
      Node routes = object();
      routes.set("description", string(description(f, kAtService)));
      routes.set("type", string("array"));
      routes.set("items", tableSchema(Section::kPolicy, kAtRoute, "A [[service.route]]."));
      props.set(std::string(f.name), std::move(routes));
      continue;
    }
    props.set(std::string(f.name), fieldSchema(f, level));
  }
  s.set("properties", std::move(props));
  s.set("additionalProperties", boolean(false));
  if (section == Section::kPolicy && level != kAtDefaults) {
    std::vector<std::string_view> required;
    for (const FieldSpec& f : policyFields()) {
      if (f.required && f.section == (level == kAtService ? Section::kService : Section::kRoute)) {
        required.push_back(f.name);
      }
    }
    if (!required.empty()) s.set("required", strings(required));
  }
  if (section == Section::kPolicy && level == kAtRoute) {
    // Exactly one match key: with additionalProperties false, oneOf of
    // "requires this one" holds only when one is present.
    Node one = array();
    for (std::string_view k : routeMatchKeys()) {
      Node r = object();
      r.set("required", strings({k}));
      one.items.push_back(std::move(r));
    }
    s.set("oneOf", std::move(one));
  }
  return s;
}

// ---------------------------------------------------------- markdown --

std::string anchorList(Section section) {
  std::string out;
  for (const FieldSpec& f : policyFields()) {
    if (f.section != section) continue;
    out += (out.empty() ? "" : ", ") + std::string("[`") + std::string(f.name) + "`](#" +
           std::string(sectionName(section).empty() ? "" : std::string(sectionName(section)) + "-") +
           std::string(f.name) + ")";
  }
  return out;
}

// "retry-num_retries" style anchors: GitHub's for a heading "`retry.num_retries`"
// is "retrynum_retries"; an explicit <a id> is stable on every code host.
std::string fieldHeading(const FieldSpec& f) {
  std::string prefix = sectionName(f.section).empty() ? "" : std::string(sectionName(f.section));
  std::string id = prefix.empty() ? std::string(f.name) : prefix + "-" + std::string(f.name);
  std::string shown = isSubTable(f.section) ? prefix + "." + std::string(f.name) : std::string(f.name);
  return "<a id=\"" + id + "\"></a>\n### `" + shown + "`\n\n";
}

std::string fieldMarkdown(const FieldSpec& f) {
  std::string out = fieldHeading(f);
  out += sentence(f.summary);
  if (!f.help.empty()) out += " " + sentence(f.help);
  out += "\n\n";
  out += "| | |\n|---|---|\n";
  out += "| type | " + typeName(f) + " |\n";
  const Json& def = builtinDefault(f);
  if (!def.isNull()) out += "| built-in default | `" + tomlValue(def) + "` |\n";
  std::string range = rangeText(f);
  if (!range.empty()) out += "| range | " + range + " |\n";
  if (f.section == Section::kService || f.section == Section::kRoute) {
    out += std::string("| required | ") + (f.required ? "yes" : "no") + " |\n";
  }
  if (f.levels) {
    out += "| set in | " + levelsText(f.levels) + "; inherited field by field |\n";
  }
  if (f.kind == FieldKind::kString && !f.pattern.empty()) {
    // A "|" inside a table cell ends the cell, code span or not (GFM).
    std::string pattern;
    for (char c : f.pattern) pattern += c == '|' ? std::string("\\|") : std::string(1, c);
    // Double backticks: the header-name pattern has a backtick of its own.
    out += "| schema pattern | `` " + pattern + " `` |\n";
  }
  out += "\n```toml\n" + std::string(f.example) + "\n```\n\n";
  return out;
}

}  // namespace

std::string policySchemaJson() {
  Node root = object();
  root.set("$schema", string("http://json-schema.org/draft-07/schema#"));
  root.set("title", string("Mulligan policy"));
  root.set("description",
           string("A Mulligan retry and timeout policy (TOML), as mulligan-agent compiles it. Generated by "
                  "`mulligan-agent schema`; reference: docs/policy.md. Rules a schema cannot express (duplicate "
                  "services, unreachable routes, value ranges of durations) are checked by `mulligan-agent "
                  "check`."));
  root.set("type", string("object"));
  Node props = object();
  for (const FieldSpec& f : policyFields()) {
    if (f.section != Section::kRoot) continue;
    if (f.name == "defaults") {
      props.set("defaults", tableSchema(Section::kPolicy, kAtDefaults, description(f, kAtDefaults)));
    } else if (f.name == "service") {
      Node services = object();
      services.set("description", string(description(f, kAtDefaults)));
      services.set("type", string("array"));
      services.set("items", tableSchema(Section::kPolicy, kAtService, "A [[service]]."));
      props.set("service", std::move(services));
    } else {
      props.set(std::string(f.name), fieldSchema(f, kAtDefaults));
    }
  }
  root.set("properties", std::move(props));
  root.set("additionalProperties", boolean(false));
  std::string out;
  print(root, 0, &out);
  return out + "\n";
}

std::string policyReferenceMarkdown() {
  std::string o;
  o += "<!-- Generated by `mulligan-agent reference` from agent/policy_fields.cc: do not edit here.\n"
       "     Change the field descriptions and run scripts/gen-docs; a test fails while this file differs. -->\n\n";
  o += "# Policy reference\n\n";
  o += "A policy is one TOML file. `mulligan-agent` checks it, compiles it into a table in shared memory and "
       "republishes it when the file changes; every sidecar reading that segment applies it to its next request. "
       "This page lists every field the compiler accepts, generated from the compiler's own description of its "
       "fields, so it cannot miss one. An annotated example: [`examples/policy.toml`](../examples/policy.toml). "
       "The same description as a JSON Schema, for editors: [`policy.schema.json`](policy.schema.json) "
       "(see [Editors](#editors)).\n\n";
  o += "```sh\nmulligan-agent check --policy policy.toml   # every error as FILE:LINE:COL: message; exit 1\n"
       "mulligan-agent dump --format toml            # the table in force, every value expanded\n```\n\n";
  o += "Contents: [Syntax](#syntax) · [Inheritance](#inheritance) · [Top level](#top-level) · "
       "[Policy fields](#policy-fields) · [retry](#the-retry-table) · [budget](#the-budget-table) · "
       "[deadline](#the-deadline-table) · [hedge](#the-hedge-table) · [outlier](#the-outlier-table) · "
       "[Services](#services) · [Routes](#routes) · "
       "[retry_on names](#retry_on-names) · [What only `check` finds](#what-only-check-finds) · "
       "[Editors](#editors)\n\n";

  o += "## Syntax\n\n";
  o += "**Durations** are strings of one or more parts, each a number and a unit, the units in decreasing order: "
       "`h`, `m`, `s`, `ms`, `us` (or `µs`). A part may have a fraction as long as the whole is a whole number of "
       "microseconds: `\"250us\"`, `\"500ms\"`, `\"1.5s\"`, `\"1m30s\"`, `\"1h\"`, `\"0s\"`. A number without a "
       "unit (even `0`), a negative value, spaces and repeated units are errors. Where a field says \"`\"0s\"` = "
       "none\", zero turns that timeout off. `mulligan-agent dump` writes durations back in the shortest form "
       "(`\"60s\"` as `\"1m\"`).\n\n";
  o += "**Sizes** are a number and a unit, `B`, `KiB`, `MiB` or `GiB` (powers of 1024): `\"512B\"`, `\"64KiB\"`, "
       "`\"1.5KiB\"`, `\"1MiB\"`; or an integer number of bytes, as a TOML integer (`65536`) or as digits in a "
       "string (`\"65536\"`).\n\n";
  o += "The schema's patterns: duration `" + std::string(kDurationPattern) + "`, size `" + std::string(kSizePattern) +
       "`.\n\n";
  o += "Keys are case-sensitive and written in lower case. Sub-tables may be written as headers "
       "(`[defaults.retry]`), inline (`retry = { num_retries = 3 }`) or as dotted keys "
       "(`retry.num_retries = 3`). An unknown key is an error, with a suggestion for a likely typo "
       "(`num_retry` → `num_retries`) or the place where the key belongs (`budget` on a route).\n\n";

  o += "## Inheritance\n\n";
  o += "Policy fields are inherited one field at a time: built-in default → `[defaults]` → `[[service]]` → "
       "`[[service.route]]`. A service that writes `retry = { num_retries = 3 }` changes `num_retries` and keeps "
       "every other retry field of `[defaults]`; its routes start from the service's values. `retry_on` is one "
       "field: a level that sets it replaces the whole list. A request that matches no service uses "
       "`[defaults]`; a request that matches a service but none of its routes uses the service level. "
       "`idle_timeout` and the `budget` table cannot be set on a route (they are per connection and per "
       "service).\n\n";

  o += "## Top level\n\n";
  for (const FieldSpec& f : policyFields()) {
    if (f.section == Section::kRoot) o += fieldMarkdown(f);
  }

  o += "## Policy fields\n\n";
  o += "Settable in `[defaults]`, on a `[[service]]` and on a `[[service.route]]` as each says: " +
       anchorList(Section::kPolicy) + ".\n\n";
  for (const FieldSpec& f : policyFields()) {
    if (f.section == Section::kPolicy) o += fieldMarkdown(f);
  }
  struct Sub {
    Section section;
    const char* title;
    const char* intro;
  };
  const Sub subs[] = {
      {Section::kRetry, "## The retry table\n\n",
       "`[defaults.retry]`, `retry = { ... }` on a service or route, or `[service.retry]`. What a retry needs "
       "besides these fields: the method must be safe to repeat (GET, HEAD, OPTIONS, PUT, DELETE, TRACE; POST "
       "and PATCH only with the idempotency header, or when the request never reached the upstream), no "
       "response byte may have gone to the client, the deadline must leave time for the backoff and "
       "`min_attempt_budget`, and the service's budget must allow it. A retry the policy allowed but that did "
       "not happen is counted with why (`mulligan_retries_refused_total`, the access log's `retry_refused`). "
       "Fields: "},
      {Section::kBudget, "## The budget table\n\n",
       "`[defaults.budget]` or `budget = { ... }` on a service: not on a route. A service may retry at most "
       "`retry_ratio` × its original requests over `window`, plus `min_retries_per_second`. Retries of requests "
       "that provably never reached the upstream (refused-stream) spend no budget. Fields: "},
      {Section::kDeadline, "## The deadline table\n\n",
       "`[defaults.deadline]`, or `deadline = { ... }` on a service or route. Fields: "},
      {Section::kHedge, "## The hedge table\n\n",
       "`[defaults.hedge]`, or `hedge = { ... }` on a service or route. Hedging sends another attempt of a request "
       "while the first is still out, when the first has no response headers after `delay` (gRPC's A6 hedging, "
       "Finagle's backup requests): it trades extra upstream load for a shorter latency tail. Off by default "
       "(`delay = \"0s\"`). A hedge is an attempt like a retry: it carries `x-envoy-attempt-count` (and, for "
       "gRPC, `grpc-previous-rpc-attempts`), spends retry budget, and follows `retry.fresh_connection`. Fields: "},
      {Section::kOutlier, "## The outlier table\n\n",
       "`[defaults.outlier]`, or `outlier = { ... }` on a service or route. When a destination's name resolves "
       "to several addresses (a headless Service), an address that fails `consecutive_failures` times in a row "
       "is ejected: it gets no attempts until its ejection ends (Envoy's outlier detection, Linkerd's failure "
       "accrual). It trades capacity for avoiding a failing address. A name with IPv4 and IPv6 addresses (a "
       "dual-stack headless Service) counts by one family, one address per pod: IPv4, unless the sidecar's pod "
       "has no IPv4 address. Each worker keeps the state of a name "
       "(per service) for as long as it keeps the name's endpoint set: a set no call used for 10 minutes (with no "
       "address ejected), or the least recently used past 1,024 sets per worker, is forgotten with its ejections; "
       "the name's next call starts with every address healthy and its counts at 0. Fields: "},
  };
  for (const Sub& sub : subs) {
    o += sub.title;
    o += sub.intro + anchorList(sub.section) + ".\n\n";
    for (const FieldSpec& f : policyFields()) {
      if (f.section == sub.section) o += fieldMarkdown(f);
    }
  }

  o += "## Services\n\n";
  o += "Each `[[service]]` names an upstream service and how to recognise its requests; it may also set any "
       "policy field. Fields of its own: " +
       anchorList(Section::kService) + ".\n\n";
  for (const FieldSpec& f : policyFields()) {
    if (f.section == Section::kService) o += fieldMarkdown(f);
  }
  o += "## Routes\n\n";
  o += "Each `[[service.route]]` has exactly one of `path_prefix`, `path_exact` and `grpc`, optionally "
       "`methods`, and any policy field but `idle_timeout` and `budget`. The first route of the service that "
       "matches wins. Fields of its own: " +
       anchorList(Section::kRoute) + ".\n\n";
  for (const FieldSpec& f : policyFields()) {
    if (f.section == Section::kRoute) o += fieldMarkdown(f);
  }

  o += "## retry_on names\n\n";
  o += "`retry_on` lists the outcomes that are retried. Besides the names below it takes any HTTP status code, "
       "as a string (`\"429\"`) or an integer (`429`), 100 to 599. gRPC names match the `grpc-status` of a "
       "trailers-only response, of response headers, or of the trailers of a response that sent no message "
       "; naming a gRPC code is what opts gRPC calls into retries. gRPC "
       "codes that a retry does not fix (`invalid-argument`, `not-found`, ...) are refused with an "
       "explanation.\n\n";
  o += "| name | meaning |\n|---|---|\n";
  for (std::string_view n : retryOnConditionNames()) {
    o += "| `" + std::string(n) + "` | " + std::string(retryOnMeaning(n)) + " |\n";
  }
  o += "| `\"100\"` … `\"599\"`, `100` … `599` | A response with that status code. |\n\n";

  o += "## What only `check` finds\n\n";
  o += "The JSON Schema checks keys, types, integer ranges, enumerations and spellings. These rules need the "
       "whole file or more than a pattern, so only `mulligan-agent check` (and the agent before every publish) "
       "enforces them; each example below passes the schema and is refused by `check`:\n\n";
  for (const CheckOnlyRule& r : checkOnlyRules()) {
    o += "- " + std::string(r.rule) + "\n\n  ```toml\n";
    std::string_view ex = r.example;
    size_t start = 0;
    while (start < ex.size()) {
      size_t nl = ex.find('\n', start);
      if (nl == std::string_view::npos) nl = ex.size();
      std::string_view line = ex.substr(start, nl - start);
      o += line.empty() ? "\n" : "  " + std::string(line) + "\n";
      start = nl + 1;
    }
    o += "  ```\n\n";
  }

  o += "## Editors\n\n";
  o += "`mulligan-agent schema` prints the JSON Schema (draft-07) that [`policy.schema.json`](policy.schema.json) "
       "holds. Editors that speak TOML through taplo (VS Code's Even Better TOML, Helix, Neovim, Zed) or tombi "
       "read a schema named in the file's first lines:\n\n";
  o += "```toml\n#:schema ../docs/policy.schema.json\nversion = 1\n```\n\n";
  o += "The path is relative to the policy file (a URL works too). Then the editor completes keys and "
       "`retry_on` names, shows these descriptions on hover and marks unknown keys, wrong types and badly "
       "spelled durations as you type. From a shell: `taplo lint --schema file://$PWD/docs/policy.schema.json "
       "policy.toml` (taplo is the npm package `@taplo/cli`).\n";
  return o;
}

}  // namespace mulligan::agent
