// GGUF v2/v3 reader and writer. The reader maps the file and validates every count,
// length and offset against the file size before using it, so a truncated or hostile file
// ends in a hearth::Error ("FILE: problem"), never an out-of-bounds read. Split models
// (NAME-00001-of-00003.gguf) are opened from their first shard; the metadata is the
// first shard's, the tensors are the union of all shards. Integers are stored widened
// to int64 whatever their width in the file, since converters disagree on widths.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/tensor_store.h"

namespace hearth {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// One metadata value. Scalars live in the matching field; arrays keep their element
// type and fill exactly one of the vectors (integers and bools in ints, floats in
// floats, strings in strings). Nested arrays are rejected by the reader.
struct GgufValue {
  GgufType type = GgufType::UINT32;
  GgufType elem_type = GgufType::UINT32;  // for ARRAY
  int64_t i = 0;                          // all integer types and BOOL (uint64 above 2^63 is rejected)
  double f = 0;                           // FLOAT32 / FLOAT64
  std::string s;                          // STRING
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;

  bool is_integer() const;  // any integer type or BOOL
  bool is_float() const;
  size_t array_size() const;
};

// "UINT32", "STRING", ... for messages; "type N" for ids outside the enum.
std::string gguf_type_name(GgufType type);

class GgufFile {
 public:
  // Opens a .gguf file, or all shards of a split model when `path` is a shard.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses one already-mapped file (no shard following); the entry point of the fuzzer.
  static std::unique_ptr<GgufFile> parse(std::shared_ptr<MappedFile> file);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters. A key of the wrong type is an Error naming file and key; the
  // *_or forms return the fallback when the key is absent.
  int64_t get_int(std::string_view key) const;
  int64_t get_int_or(std::string_view key, int64_t fallback) const;
  double get_float(std::string_view key) const;
  double get_float_or(std::string_view key, double fallback) const;
  std::string get_string(std::string_view key) const;
  std::string get_string_or(std::string_view key, std::string fallback) const;
  bool get_bool_or(std::string_view key, bool fallback) const;

  // Tensors of every shard, in numpy-order shapes.
  TensorStore& tensors() { return store_; }
  const TensorStore& tensors() const { return store_; }

 private:
  std::string path_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  TensorStore store_;
};

// Builds a GGUF v3 file in memory order: metadata, tensor infos, aligned data.
class GgufWriter {
 public:
  void set_alignment(uint32_t alignment);
  void add_uint32(const std::string& key, uint32_t v);
  void add_int32(const std::string& key, int32_t v);
  void add_uint64(const std::string& key, uint64_t v);
  void add_float32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_array_strings(const std::string& key, const std::vector<std::string>& v);
  void add_array_int32(const std::string& key, const std::vector<int32_t>& v);
  void add_array_float32(const std::string& key, const std::vector<float>& v);
  // Any scalar or (non-nested) array value, with the widths its type names; integers
  // must fit the type. Used for the less common types and by tests.
  void add_value(const std::string& key, const GgufValue& v);
  // A tensor with numpy-order shape; `bytes` must hold exactly its stored size.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape, std::vector<uint8_t> bytes);
  // The whole file as bytes, and the same written to `path` (Error on I/O failure).
  std::vector<uint8_t> serialize() const;
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string key;
    std::vector<uint8_t> encoded;  // type tag + value, already serialised
  };
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  void add_entry(const std::string& key, std::vector<uint8_t> encoded);

  uint32_t alignment_ = 32;
  std::vector<Entry> entries_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace hearth
