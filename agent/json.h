// A small JSON reader for `mulligan-agent status`, which reads the sidecar's
// admin endpoint (/config, /stats). RFC 8259: objects, arrays, strings with
// every escape (\uXXXX and surrogate pairs to UTF-8), numbers, true, false,
// null. Numbers keep their text so that 64-bit counters read back exactly.
// Not for untrusted giants: nesting is limited to 64 levels.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mulligan::agent {

class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  // Parses a whole document; nullopt with *error ("offset N: ...") when it
  // is not JSON.
  static std::optional<Json> parse(std::string_view text, std::string* error);

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::kNull; }
  bool isObject() const { return type_ == Type::kObject; }
  bool isArray() const { return type_ == Type::kArray; }

  // Member or element; a null value when absent or of another type, so that
  // lookups chain: doc["policy"]["agent_refused"]["line"].u64().
  const Json& operator[](std::string_view key) const;
  const Json& operator[](size_t index) const;
  size_t size() const { return type_ == Type::kArray ? array_.size() : type_ == Type::kObject ? object_.size() : 0; }
  const std::vector<Json>& items() const { return array_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return object_; }

  bool boolean() const { return type_ == Type::kBool && bool_; }
  uint64_t u64() const;         // 0 unless a non-negative integer
  double number() const;        // 0 unless a number
  const std::string& str() const;  // "" unless a string; the number's text for numbers

 private:
  friend class JsonParser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  std::string text_;  // string value, or a number's text
  std::vector<Json> array_;
  std::vector<std::pair<std::string, Json>> object_;
};

}  // namespace mulligan::agent
