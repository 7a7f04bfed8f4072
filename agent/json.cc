#include "agent/json.h"

#include <cstdlib>

namespace mulligan::agent {

class JsonParser {
 public:
  explicit JsonParser(std::string_view t) : t_(t) {}

  bool document(Json* out) {
    ws();
    if (!value(out, 0)) return false;
    ws();
    return pos_ == t_.size() || fail("trailing characters");
  }
  std::string error() const { return "offset " + std::to_string(pos_) + ": " + error_; }

 private:
  bool fail(const char* why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  void ws() {
    while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r')) ++pos_;
  }
  bool literal(std::string_view word) {
    if (t_.substr(pos_, word.size()) != word) return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool value(Json* out, int depth) {
    if (depth > 64) return fail("nested too deeply");
    if (pos_ >= t_.size()) return fail("unexpected end");
    char c = t_[pos_];
    switch (c) {
      case '{': return object(out, depth);
      case '[': return array(out, depth);
      case '"': out->type_ = Json::Type::kString; return string(&out->text_);
      case 't': out->type_ = Json::Type::kBool; out->bool_ = true; return literal("true");
      case 'f': out->type_ = Json::Type::kBool; return literal("false");
      case 'n': return literal("null");
      default: return number(out);
    }
  }

  bool object(Json* out, int depth) {
    out->type_ = Json::Type::kObject;
    ++pos_;
    ws();
    if (pos_ < t_.size() && t_[pos_] == '}') return ++pos_, true;
    for (;;) {
      ws();
      if (pos_ >= t_.size() || t_[pos_] != '"') return fail("expected a member name");
      std::string key;
      if (!string(&key)) return false;
      ws();
      if (pos_ >= t_.size() || t_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      ws();
      Json v;
      if (!value(&v, depth + 1)) return false;
      out->object_.emplace_back(std::move(key), std::move(v));
      ws();
      if (pos_ < t_.size() && t_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < t_.size() && t_[pos_] == '}') return ++pos_, true;
      return fail("expected ',' or '}'");
    }
  }

  bool array(Json* out, int depth) {
    out->type_ = Json::Type::kArray;
    ++pos_;
    ws();
    if (pos_ < t_.size() && t_[pos_] == ']') return ++pos_, true;
    for (;;) {
      ws();
      Json v;
      if (!value(&v, depth + 1)) return false;
      out->array_.push_back(std::move(v));
      ws();
      if (pos_ < t_.size() && t_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < t_.size() && t_[pos_] == ']') return ++pos_, true;
      return fail("expected ',' or ']'");
    }
  }

  bool hex4(uint32_t* out) {
    if (pos_ + 4 > t_.size()) return fail("short \\u escape");
    *out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = t_[pos_++];
      *out <<= 4;
      if (c >= '0' && c <= '9') *out |= c - '0';
      else if (c >= 'a' && c <= 'f') *out |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') *out |= c - 'A' + 10;
      else return fail("bad \\u escape");
    }
    return true;
  }

  static void utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool string(std::string* out) {
    ++pos_;  // the opening quote
    for (;;) {
      if (pos_ >= t_.size()) return fail("unterminated string");
      char c = t_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos_ >= t_.size()) return fail("unterminated escape");
      char e = t_[pos_++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          // RFC 8259 section 7: a character outside the BMP is a surrogate pair.
          if (cp >= 0xD800 && cp < 0xDC00 && t_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            uint32_t lo;
            if (!hex4(&lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD;  // a lone surrogate: the replacement character
          }
          utf8(cp, out);
          break;
        }
        default: return fail("bad escape");
      }
    }
  }

  bool number(Json* out) {
    size_t start = pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (pos_ < t_.size() && t_[pos_] == '-') ++pos_;
    if (!digits()) return fail("expected a value");
    if (pos_ < t_.size() && t_[pos_] == '.') {
      ++pos_;
      if (!digits()) return fail("bad number");
    }
    if (pos_ < t_.size() && (t_[pos_] == 'e' || t_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < t_.size() && (t_[pos_] == '+' || t_[pos_] == '-')) ++pos_;
      if (!digits()) return fail("bad number");
    }
    out->type_ = Json::Type::kNumber;
    out->text_ = std::string(t_.substr(start, pos_ - start));
    return true;
  }

  std::string_view t_;
  size_t pos_ = 0;
  std::string error_;
};

std::optional<Json> Json::parse(std::string_view text, std::string* error) {
  JsonParser p(text);
  Json out;
  if (!p.document(&out)) {
    if (error) *error = p.error();
    return std::nullopt;
  }
  return out;
}

namespace {
const Json& nullJson() {
  static const Json kNull;
  return kNull;
}
const std::string& emptyString() {
  static const std::string kEmpty;
  return kEmpty;
}
}  // namespace

const Json& Json::operator[](std::string_view key) const {
  if (type_ != Type::kObject) return nullJson();
  for (const auto& [k, v] : object_) {
    if (k == key) return v;
  }
  return nullJson();
}

const Json& Json::operator[](size_t index) const {
  return type_ == Type::kArray && index < array_.size() ? array_[index] : nullJson();
}

uint64_t Json::u64() const {
  if (type_ != Type::kNumber || text_.empty() || text_[0] == '-') return 0;
  if (text_.find_first_of(".eE") != std::string::npos) return static_cast<uint64_t>(number());
  return std::strtoull(text_.c_str(), nullptr, 10);
}

double Json::number() const { return type_ == Type::kNumber ? std::strtod(text_.c_str(), nullptr) : 0; }

const std::string& Json::str() const {
  return type_ == Type::kString || type_ == Type::kNumber ? text_ : emptyString();
}

}  // namespace mulligan::agent
