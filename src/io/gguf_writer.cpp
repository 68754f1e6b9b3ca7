// GGUF v3 writer: metadata records in the order they were added, tensor infos in the
// order tensors were added, zero padding to the alignment, then each tensor's bytes
// padded to the alignment so every offset is a multiple of it (as gguf-py lays files
// out). Shapes come in numpy order and are written reversed as GGUF ne. The writer checks
// its inputs (unique non-empty names, byte counts matching shapes) so that what it
// writes always reads back.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/quote.h"
#include "io/gguf.h"

namespace hearth {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint32_t kVersion = 3;

// resize + memcpy rather than insert(): GCC 12 at -O3 warns falsely about the latter.
void put_raw(std::vector<uint8_t>& out, const void* data, size_t n) {
  if (n == 0) return;
  const size_t at = out.size();
  out.resize(at + n);
  std::memcpy(out.data() + at, data, n);
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  put_raw(out, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  put_raw(out, s.data(), s.size());
}

uint64_t align_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

// Writes integer `v` with the width of `type`, checking that it fits.
void put_int(std::vector<uint8_t>& out, GgufType type, int64_t v, const std::string& key) {
  auto fits = [&](int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      fail("GgufWriter: key " + quote_name(key) + ": value " + std::to_string(v) + " does not fit " + gguf_type_name(type));
  };
  switch (type) {
    case GgufType::UINT8: fits(0, 255); put<uint8_t>(out, static_cast<uint8_t>(v)); return;
    case GgufType::INT8: fits(-128, 127); put<int8_t>(out, static_cast<int8_t>(v)); return;
    case GgufType::BOOL: fits(0, 1); put<uint8_t>(out, static_cast<uint8_t>(v)); return;
    case GgufType::UINT16: fits(0, 65535); put<uint16_t>(out, static_cast<uint16_t>(v)); return;
    case GgufType::INT16: fits(-32768, 32767); put<int16_t>(out, static_cast<int16_t>(v)); return;
    case GgufType::UINT32: fits(0, std::numeric_limits<uint32_t>::max()); put<uint32_t>(out, static_cast<uint32_t>(v)); return;
    case GgufType::INT32:
      fits(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
      put<int32_t>(out, static_cast<int32_t>(v));
      return;
    case GgufType::UINT64: fits(0, std::numeric_limits<int64_t>::max()); put<uint64_t>(out, static_cast<uint64_t>(v)); return;
    case GgufType::INT64: put<int64_t>(out, v); return;
    default: break;
  }
  HEARTH_ASSERT(false);
}

void put_scalar(std::vector<uint8_t>& out, const GgufValue& v, const std::string& key) {
  switch (v.type) {
    case GgufType::FLOAT32: put<float>(out, static_cast<float>(v.f)); return;
    case GgufType::FLOAT64: put<double>(out, v.f); return;
    case GgufType::STRING: put_string(out, v.s); return;
    case GgufType::ARRAY: HEARTH_ASSERT(false);
    default: put_int(out, v.type, v.i, key); return;
  }
}

}  // namespace

void GgufWriter::add_entry(const std::string& key, std::vector<uint8_t> encoded) {
  if (key.empty()) fail("GgufWriter: empty metadata key");
  if (key == "general.alignment") fail("GgufWriter: set general.alignment with set_alignment()");
  for (const Entry& e : entries_)
    if (e.key == key) fail("GgufWriter: duplicate metadata key " + quote_name(key));
  entries_.push_back({key, std::move(encoded)});
}

void GgufWriter::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    fail("GgufWriter: alignment " + std::to_string(alignment) + " is not a power of two");
  alignment_ = alignment;
  std::vector<uint8_t> encoded;
  put<uint32_t>(encoded, static_cast<uint32_t>(GgufType::UINT32));
  put<uint32_t>(encoded, alignment);
  for (Entry& e : entries_)
    if (e.key == "general.alignment") {
      e.encoded = std::move(encoded);
      return;
    }
  entries_.push_back({"general.alignment", std::move(encoded)});
}

void GgufWriter::add_value(const std::string& key, const GgufValue& v) {
  std::vector<uint8_t> out;
  put<uint32_t>(out, static_cast<uint32_t>(v.type));
  if (v.type != GgufType::ARRAY) {
    put_scalar(out, v, key);
  } else {
    if (v.elem_type == GgufType::ARRAY) fail("GgufWriter: key " + quote_name(key) + ": nested arrays are not supported");
    put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
    put<uint64_t>(out, v.array_size());
    GgufValue elem;
    elem.type = v.elem_type;
    for (const std::string& s : v.strings) put_string(out, s);
    if (v.elem_type != GgufType::STRING) {
      for (double f : v.floats) {
        elem.f = f;
        put_scalar(out, elem, key);
      }
      if (v.elem_type != GgufType::FLOAT32 && v.elem_type != GgufType::FLOAT64)
        for (int64_t i : v.ints) put_int(out, v.elem_type, i, key);
    }
  }
  add_entry(key, std::move(out));
}

void GgufWriter::add_uint32(const std::string& key, uint32_t v) {
  add_value(key, GgufValue{.type = GgufType::UINT32, .i = v});
}
void GgufWriter::add_int32(const std::string& key, int32_t v) {
  add_value(key, GgufValue{.type = GgufType::INT32, .i = v});
}
void GgufWriter::add_uint64(const std::string& key, uint64_t v) {
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail("GgufWriter: key " + quote_name(key) + ": uint64 values above 2^63 are not supported");
  add_value(key, GgufValue{.type = GgufType::UINT64, .i = static_cast<int64_t>(v)});
}
void GgufWriter::add_float32(const std::string& key, float v) {
  add_value(key, GgufValue{.type = GgufType::FLOAT32, .f = v});
}
void GgufWriter::add_bool(const std::string& key, bool v) {
  add_value(key, GgufValue{.type = GgufType::BOOL, .i = v ? 1 : 0});
}
void GgufWriter::add_string(const std::string& key, const std::string& v) {
  add_value(key, GgufValue{.type = GgufType::STRING, .s = v});
}
void GgufWriter::add_array_strings(const std::string& key, const std::vector<std::string>& v) {
  add_value(key, GgufValue{.type = GgufType::ARRAY, .elem_type = GgufType::STRING, .strings = v});
}
void GgufWriter::add_array_int32(const std::string& key, const std::vector<int32_t>& v) {
  add_value(key, GgufValue{.type = GgufType::ARRAY, .elem_type = GgufType::INT32,
                           .ints = std::vector<int64_t>(v.begin(), v.end())});
}
void GgufWriter::add_array_float32(const std::string& key, const std::vector<float>& v) {
  add_value(key, GgufValue{.type = GgufType::ARRAY, .elem_type = GgufType::FLOAT32,
                           .floats = std::vector<double>(v.begin(), v.end())});
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape,
                            std::vector<uint8_t> bytes) {
  const std::string where = "GgufWriter: tensor " + quote_name(name) + ": ";
  if (name.empty()) fail("GgufWriter: empty tensor name");
  for (const PendingTensor& t : tensors_)
    if (t.name == name) fail(where + "duplicate name");
  if (!dtype_from_ggml(static_cast<int64_t>(type))) fail(where + "type " + std::string(dtype_name(type)) + " has no GGUF id");
  if (shape.size() > 4) fail(where + "more than 4 dimensions");
  int64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) fail(where + "bad shape");
  const DTypeInfo& info = dtype_info(type);
  const int64_t row = shape.empty() ? 1 : shape.back();
  if (row % info.block_elems != 0) fail(where + "last dimension is not a whole number of blocks");
  const uint64_t expected = static_cast<uint64_t>(numel / info.block_elems * info.block_bytes);
  if (bytes.size() != expected)
    fail(where + std::to_string(bytes.size()) + " bytes given, shape needs " + std::to_string(expected));
  tensors_.push_back({name, type, shape, std::move(bytes)});
}

std::vector<uint8_t> GgufWriter::serialize() const {
  std::vector<uint8_t> out;
  put<uint32_t>(out, kMagic);
  put<uint32_t>(out, kVersion);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, entries_.size());
  for (const Entry& e : entries_) {
    put_string(out, e.key);
    put_raw(out, e.encoded.data(), e.encoded.size());
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) put<int64_t>(out, *d);
    put<int32_t>(out, static_cast<int32_t>(t.type));
    put<uint64_t>(out, offset);
    offset += align_up(t.bytes.size(), alignment_);
  }
  if (tensors_.empty()) return out;
  out.resize(align_up(out.size(), alignment_), 0);
  for (const PendingTensor& t : tensors_) {
    put_raw(out, t.bytes.data(), t.bytes.size());
    out.resize(align_up(out.size(), alignment_), 0);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const std::vector<uint8_t> bytes = serialize();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) fail(path + ": cannot create: " + std::strerror(errno));
  const size_t written = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (written != bytes.size() || !closed) fail(path + ": cannot write: " + std::strerror(err));
}

}  // namespace hearth
