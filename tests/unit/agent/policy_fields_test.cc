// The field descriptions (agent/policy_fields.h) against the compiler: what
// the documents and the schema say of each field — where it may be set, its
// limits, its example, its built-in default, the retry_on names — is what
// compilePolicy() does.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "agent/compiler.h"
#include "agent/json.h"
#include "agent/policy_docs.h"
#include "agent/policy_fields.h"
#include "proto-free-config/duration.h"
#include "proto-free-config/policy.h"
#include "proto-free-config/render.h"

namespace mulligan::agent {
namespace {

using ::testing::HasSubstr;

std::string errorsOf(const std::string& text) {
  CompileResult r = compilePolicy(text, "policy.toml");
  std::string all;
  for (const Diagnostic& e : r.errors) all += e.format() + "\n";
  return all;
}

bool compiles(const std::string& text) { return compilePolicy(text, "policy.toml").ok(); }

constexpr const char* kService = "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n";
constexpr const char* kRoute = "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n[[service.route]]\npath_prefix = \"/\"\n";

// `line` (a "key = value" of `section`) written at `level`.
std::string at(LevelBit level, Section section, const std::string& line) {
  std::string key = section == Section::kPolicy ? line : std::string(sectionName(section)) + "." + line;
  switch (level) {
    case kAtDefaults: return "[defaults]\n" + key + "\n";
    case kAtService: return std::string(kService) + key + "\n";
    default: return std::string(kRoute) + key + "\n";
  }
}

bool inherited(const FieldSpec& f) {
  return f.section == Section::kPolicy || isSubTable(f.section);
}

TEST(PolicyFieldsTest, EveryInheritedFieldCompilesExactlyWhereItSaysItMayBeSet) {
  int checked = 0;
  for (const FieldSpec& f : policyFields()) {
    if (!inherited(f)) continue;
    for (LevelBit level : {kAtDefaults, kAtService, kAtRoute}) {
      std::string text = at(level, f.section, std::string(f.example));
      if (f.levels & level) {
        EXPECT_TRUE(compiles(text)) << f.name << " at level " << int(level) << ":\n" << text << errorsOf(text);
      } else {
        EXPECT_FALSE(compiles(text)) << f.name << " is documented as not settable at level " << int(level);
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 3 * 30);
}

TEST(PolicyFieldsTest, ServiceRouteAndTopLevelExamplesCompile) {
  for (const FieldSpec& f : policyFields()) {
    std::string text;
    switch (f.section) {
      case Section::kRoot:
        text = f.name == "service" ? std::string(kService) : std::string(f.example) + "\n";
        break;
      case Section::kService:
        if (f.name == "route") {
          text = kRoute;
        } else {
          text = "[[service]]\n" + std::string(f.name == "name" ? "" : "name = \"s\"\n") +
                 (f.name == "hosts" ? "" : "hosts = [\"s\"]\n") + std::string(f.example) + "\n";
        }
        break;
      case Section::kRoute: {
        bool match = false;
        for (std::string_view k : routeMatchKeys()) match = match || k == f.name;
        text = std::string(kService) + "[[service.route]]\n" + (match ? "" : "path_prefix = \"/\"\n") +
               std::string(f.example) + "\n";
        break;
      }
      default:
        continue;
    }
    EXPECT_TRUE(compiles(text)) << f.name << ":\n" << text << errorsOf(text);
  }
}

TEST(PolicyFieldsTest, RequiredServiceFieldsAreRequired) {
  for (const FieldSpec& f : policyFields()) {
    if (f.section != Section::kService) continue;
    std::string text = "[[service]]\n" + std::string(f.name == "name" ? "" : "name = \"s\"\n") +
                       (f.name == "hosts" ? "" : "hosts = [\"s\"]\n");
    EXPECT_EQ(compiles(text), !f.required) << f.name;
  }
}

// Lines that must come with a value so that only the limit under test can
// fail (backoff_base <= backoff_max is checked on effective values).
std::string companion(const FieldSpec& f) {
  if (f.name == "backoff_base") return "retry.backoff_max = \"1h\"\n";
  if (f.name == "backoff_max") return "retry.backoff_base = \"1us\"\n";
  if (f.name == "ejection") return "outlier.max_ejection = \"24h\"\n";
  if (f.name == "max_ejection") return "outlier.ejection = \"1us\"\n";
  return "";
}

std::string valueText(const FieldSpec& f, int64_t v) {
  switch (f.kind) {
    case FieldKind::kDuration: return "\"" + pfc::formatDuration(v) + "\"";
    default: return std::to_string(v);  // integers, numbers, sizes (as bytes)
  }
}

TEST(PolicyFieldsTest, LimitsAreTheCompilersBoundsExactly) {
  int checked = 0;
  for (const FieldSpec& f : policyFields()) {
    bool numeric = f.kind == FieldKind::kInteger || f.kind == FieldKind::kNumber ||
                   f.kind == FieldKind::kDuration || f.kind == FieldKind::kSize;
    if (!numeric || f.section == Section::kRoot) continue;
    auto text = [&](int64_t v) {
      std::string line = std::string(f.name) + " = " + valueText(f, v);
      if (f.section == Section::kService) return "[[service]]\nname = \"s\"\nhosts = [\"s\"]\n" + line + "\n";
      return "[defaults]\n" + companion(f) + at(kAtDefaults, f.section, line).substr(sizeof("[defaults]"));
    };
    EXPECT_TRUE(compiles(text(f.min))) << text(f.min) << errorsOf(text(f.min));
    EXPECT_TRUE(compiles(text(f.max))) << text(f.max) << errorsOf(text(f.max));
    EXPECT_FALSE(compiles(text(f.max + 1))) << text(f.max + 1);
    // Below the minimum; a negative duration is not even a duration.
    if (f.kind != FieldKind::kDuration || f.min > 0) {
      EXPECT_FALSE(compiles(text(f.min - 1))) << text(f.min - 1);
    }
    ++checked;
  }
  EXPECT_GE(checked, 15);
}

TEST(PolicyFieldsTest, StringLengthLimitsMatchTheLayout) {
  EXPECT_EQ(policyField(Section::kRetry, "idempotency_header").max, static_cast<int64_t>(pfc::kMaxHeaderName));
  const FieldSpec& name = policyField(Section::kService, "name");
  EXPECT_TRUE(compiles("[[service]]\nname = \"" + std::string(name.max, 'a') + "\"\nhosts = [\"s\"]\n"));
  EXPECT_FALSE(compiles("[[service]]\nname = \"" + std::string(name.max + 1, 'a') + "\"\nhosts = [\"s\"]\n"));
}

TEST(PolicyFieldsTest, EveryRetryOnNameTheCompilerTakesIsDescribedAndNoOther) {
  std::set<std::string> accepted;
  for (uint32_t c = 0; c < static_cast<uint32_t>(pfc::RetryCondition::kCount); ++c) {
    accepted.insert(std::string(pfc::conditionName(static_cast<pfc::RetryCondition>(c))));
  }
  for (uint32_t g = 0; g <= static_cast<uint32_t>(pfc::GrpcCode::kUnauthenticated); ++g) {
    if (auto n = pfc::grpcCodeName(static_cast<pfc::GrpcCode>(g)); !n.empty()) accepted.insert(std::string(n));
  }
  std::set<std::string> described;
  for (const RetryOnHelp& h : retryOnHelp()) {
    described.insert(std::string(h.name));
    EXPECT_FALSE(h.meaning.empty()) << h.name;
    std::string text = "[defaults.retry]\nretry_on = [\"" + std::string(h.name) + "\"]\n";
    EXPECT_TRUE(compiles(text)) << errorsOf(text);
  }
  EXPECT_EQ(described, accepted);
}

// The defaults the documents show come from policyToJson(builtinDefaults());
// its keys must be the table's fields, one for one.
TEST(PolicyFieldsTest, BuiltinDefaultsRenderExactlyTheDescribedFields) {
  std::string error;
  auto doc = Json::parse(pfc::policyToJson(pfc::builtinDefaults()), &error);
  ASSERT_TRUE(doc) << error;
  std::set<std::string> rendered, described;
  for (const auto& [k, v] : doc->members()) {
    if (v.isObject()) {
      for (const auto& [sub, ignored] : v.members()) rendered.insert(k + "." + sub);
    }
    rendered.insert(k);
  }
  for (const FieldSpec& f : policyFields()) {
    if (!inherited(f)) continue;
    described.insert(f.section == Section::kPolicy ? std::string(f.name)
                                                   : std::string(sectionName(f.section)) + "." + std::string(f.name));
  }
  EXPECT_EQ(rendered, described);
}

TEST(PolicyFieldsTest, SchemaIsJsonWithEveryFieldAndBuiltinDefaults) {
  std::string error;
  auto schema = Json::parse(policySchemaJson(), &error);
  ASSERT_TRUE(schema) << error;
  EXPECT_EQ((*schema)["$schema"].str(), "http://json-schema.org/draft-07/schema#");
  const Json& defaults = (*schema)["properties"]["defaults"]["properties"];
  const Json& service = (*schema)["properties"]["service"]["items"]["properties"];
  const Json& route = service["route"]["items"]["properties"];
  for (const FieldSpec& f : policyFields()) {
    switch (f.section) {
      case Section::kRoot:
        EXPECT_FALSE((*schema)["properties"][f.name].isNull()) << f.name;
        break;
      case Section::kPolicy:
        EXPECT_EQ(!defaults[f.name].isNull(), (f.levels & kAtDefaults) != 0) << f.name;
        EXPECT_EQ(!service[f.name].isNull(), (f.levels & kAtService) != 0) << f.name;
        EXPECT_EQ(!route[f.name].isNull(), (f.levels & kAtRoute) != 0) << f.name;
        break;
      case Section::kService:
        EXPECT_FALSE(service[f.name].isNull()) << f.name;
        break;
      case Section::kRoute:
        EXPECT_FALSE(route[f.name].isNull()) << f.name;
        break;
      default: {
        const Json& d = defaults[sectionName(f.section)]["properties"][f.name];
        EXPECT_FALSE(d.isNull()) << f.name;
        EXPECT_FALSE(d["description"].str().empty()) << f.name;
        EXPECT_EQ(d["default"].isNull(), false) << f.name;
      }
    }
  }
  EXPECT_EQ(defaults["retry"]["properties"]["num_retries"]["default"].str(), "1");
  EXPECT_EQ(defaults["connect_timeout"]["default"].str(), "1s");
  // Below [defaults] a left-out field is inherited, not the built-in value.
  EXPECT_TRUE(service["connect_timeout"]["default"].isNull());
}

// hedge.delay: the schema's quantile names are the ones the compiler and
// the table accept (pfc::kQuantileNames), and nothing else.
TEST(PolicyFieldsTest, HedgeDelayQuantilesAreTheSameInSchemaCompilerAndTable) {
  std::string error;
  auto schema = Json::parse(policySchemaJson(), &error);
  ASSERT_TRUE(schema) << error;
  const Json& delay = (*schema)["properties"]["defaults"]["properties"]["hedge"]["properties"]["delay"];
  ASSERT_EQ(delay["anyOf"].items().size(), 2u);
  std::vector<std::string> listed;
  for (const Json& q : delay["anyOf"].items()[1]["enum"].items()) listed.push_back(q.str());
  EXPECT_THAT(listed, ::testing::ElementsAre("p90", "p95", "p99", "p99.9"));
  EXPECT_EQ(delay["default"].str(), "0s");
  for (const std::string& q : listed) {
    CompileResult r = compilePolicy("[defaults.hedge]\ndelay = \"" + q + "\"\n", "policy.toml");
    ASSERT_TRUE(r.ok()) << q;
    EXPECT_EQ(pfc::quantileName(r.model->defaults.hedge.delay_quantile_permille), q);
  }
  EXPECT_FALSE(compiles("[defaults.hedge]\ndelay = \"p50\"\n"));
}

TEST(PolicyFieldsTest, ReferenceNamesEveryFieldAndRetryOnName) {
  std::string md = policyReferenceMarkdown();
  for (const FieldSpec& f : policyFields()) EXPECT_THAT(md, HasSubstr(std::string(f.example))) << f.name;
  for (const RetryOnHelp& h : retryOnHelp()) EXPECT_THAT(md, HasSubstr("| `" + std::string(h.name) + "` |"));
  for (const CheckOnlyRule& r : checkOnlyRules()) {
    EXPECT_FALSE(compiles(std::string(r.example))) << r.rule;  // check refuses each (docs_test: the schema does not)
  }
}

}  // namespace
}  // namespace mulligan::agent
