// GGUF metadata access: GgufValue helpers and GgufFile's typed getters. Getters are
// lenient about integer widths (converters write u32 or i32 for the same key) and accept
// an integer where a float is asked for, but never a string for a number: a key of the
// wrong kind is an Error naming the file and the key.
#include "core/error.h"
#include "io/quote.h"
#include "io/gguf.h"

namespace hearth {

std::string gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::UINT8: return "UINT8";
    case GgufType::INT8: return "INT8";
    case GgufType::UINT16: return "UINT16";
    case GgufType::INT16: return "INT16";
    case GgufType::UINT32: return "UINT32";
    case GgufType::INT32: return "INT32";
    case GgufType::FLOAT32: return "FLOAT32";
    case GgufType::BOOL: return "BOOL";
    case GgufType::STRING: return "STRING";
    case GgufType::ARRAY: return "ARRAY";
    case GgufType::UINT64: return "UINT64";
    case GgufType::INT64: return "INT64";
    case GgufType::FLOAT64: return "FLOAT64";
  }
  return "type " + std::to_string(static_cast<uint32_t>(type));
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64:
    case GgufType::BOOL:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const { return type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }

size_t GgufValue::array_size() const {
  if (type != GgufType::ARRAY) return 0;
  if (elem_type == GgufType::STRING) return strings.size();
  if (elem_type == GgufType::FLOAT32 || elem_type == GgufType::FLOAT64) return floats.size();
  return ints.size();
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {

[[noreturn]] void wrong_type(const std::string& file, std::string_view key, const GgufValue& v, const char* expected) {
  std::string type = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) type += " of " + gguf_type_name(v.elem_type);
  fail(file + ": key " + quote_name(key) + " has type " + type + ", expected " + expected);
}

[[noreturn]] void missing(const std::string& file, std::string_view key) {
  fail(file + ": missing key " + quote_name(key));
}

}  // namespace

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) missing(path_, key);
  if (!v->is_integer()) wrong_type(path_, key, *v, "an integer");
  return v->i;
}

int64_t GgufFile::get_int_or(std::string_view key, int64_t fallback) const {
  return find(key) == nullptr ? fallback : get_int(key);
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) missing(path_, key);
  if (v->is_float()) return v->f;
  if (v->is_integer() && v->type != GgufType::BOOL) return static_cast<double>(v->i);
  wrong_type(path_, key, *v, "a number");
}

double GgufFile::get_float_or(std::string_view key, double fallback) const {
  return find(key) == nullptr ? fallback : get_float(key);
}

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) missing(path_, key);
  if (v->type != GgufType::STRING) wrong_type(path_, key, *v, "a string");
  return v->s;
}

std::string GgufFile::get_string_or(std::string_view key, std::string fallback) const {
  return find(key) == nullptr ? std::move(fallback) : get_string(key);
}

bool GgufFile::get_bool_or(std::string_view key, bool fallback) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_integer()) wrong_type(path_, key, *v, "a bool");
  return v->i != 0;
}

}  // namespace hearth
