// GGUF reader. Layout (formats.md §1): magic "GGUF", u32 version, u64 tensor_count,
// u64 kv_count, the metadata records, the tensor-info records, padding to the
// alignment, then the tensor data. Every length, count and offset read from the file is
// checked against the bytes that remain before it is used or allocated for, and every
// size computation is overflow-checked, so a hostile file can only produce an Error.
// Multi-byte values are little-endian; hearth only builds for little-endian hosts.
#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "core/error.h"
#include "io/quote.h"
#include "io/gguf.h"

namespace hearth {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;

// Reads fixed-size values and strings from one file, failing with the file name, the
// current context (set by the caller, e.g. "key 'general.name'") and the offset.
class Reader {
 public:
  explicit Reader(const MappedFile& file) : data_(file.data()), size_(file.size()), file_(file.path()) {}

  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  uint64_t remaining() const { return size_ - pos_; }
  void set_context(std::string context) { context_ = std::move(context); }

  [[noreturn]] void error(const std::string& problem) const {
    fail(file_ + ": " + (context_.empty() ? "" : context_ + ": ") + problem);
  }
  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      error(std::string(what) + " (" + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
            ") runs past end of file (size " + std::to_string(size_) + ")");
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& file_;
  std::string context_;
};

// Bytes of one value of a fixed-size type; 0 for STRING and ARRAY.
uint64_t scalar_bytes(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: case GgufType::ARRAY: return 0;
  }
  return 0;
}

GgufType read_type(Reader& r, const char* what) {
  const uint32_t t = r.read<uint32_t>(what);
  if (t > static_cast<uint32_t>(GgufType::FLOAT64)) r.error("unknown value type " + std::to_string(t));
  return static_cast<GgufType>(t);
}

int64_t read_int(Reader& r, GgufType t) {
  switch (t) {
    case GgufType::UINT8: return r.read<uint8_t>("uint8 value");
    case GgufType::INT8: return r.read<int8_t>("int8 value");
    case GgufType::BOOL: return r.read<uint8_t>("bool value") != 0 ? 1 : 0;
    case GgufType::UINT16: return r.read<uint16_t>("uint16 value");
    case GgufType::INT16: return r.read<int16_t>("int16 value");
    case GgufType::UINT32: return r.read<uint32_t>("uint32 value");
    case GgufType::INT32: return r.read<int32_t>("int32 value");
    case GgufType::INT64: return r.read<int64_t>("int64 value");
    case GgufType::UINT64: {
      const uint64_t v = r.read<uint64_t>("uint64 value");
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        r.error("uint64 value " + std::to_string(v) + " does not fit in int64");
      return static_cast<int64_t>(v);
    }
    default: break;
  }
  HEARTH_ASSERT(false);
}

double read_float(Reader& r, GgufType t) {
  if (t == GgufType::FLOAT32) return r.read<float>("float32 value");
  return r.read<double>("float64 value");
}

GgufValue read_value(Reader& r, GgufType type) {
  GgufValue v;
  v.type = type;
  if (type == GgufType::STRING) {
    v.s = r.read_string("string value");
  } else if (type == GgufType::FLOAT32 || type == GgufType::FLOAT64) {
    v.f = read_float(r, type);
  } else if (type != GgufType::ARRAY) {
    v.i = read_int(r, type);
  } else {
    v.elem_type = read_type(r, "array element type");
    if (v.elem_type == GgufType::ARRAY) r.error("nested arrays are not supported");
    const uint64_t count = r.read<uint64_t>("array count");
    // Bound the count by the bytes left before allocating: a string takes at least its
    // 8-byte length, and count * size is compared by division so it cannot overflow.
    const uint64_t elem = v.elem_type == GgufType::STRING ? 8 : scalar_bytes(v.elem_type);
    if (count > r.remaining() / elem)
      r.error("array of " + std::to_string(count) + " " + gguf_type_name(v.elem_type) +
              " values runs past end of file (size " + std::to_string(r.size()) + ")");
    if (v.elem_type == GgufType::STRING) {
      v.strings.reserve(count);
      for (uint64_t k = 0; k < count; ++k) v.strings.push_back(r.read_string("array string"));
    } else if (v.elem_type == GgufType::FLOAT32 || v.elem_type == GgufType::FLOAT64) {
      v.floats.reserve(count);
      for (uint64_t k = 0; k < count; ++k) v.floats.push_back(read_float(r, v.elem_type));
    } else {
      v.ints.reserve(count);
      for (uint64_t k = 0; k < count; ++k) v.ints.push_back(read_int(r, v.elem_type));
    }
  }
  return v;
}

// One tensor-info record before its data is located.
struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the contiguous axis
  DType dtype;
  uint64_t offset;          // relative to the data section
  uint64_t nbytes = 0;
};

// ggml type ids that are valid in files but have no hearth DType, for a clearer message.
std::string ggml_type_label(int64_t id) {
  static const std::pair<int64_t, const char*> kNames[] = {
      {16, "iq2_xxs"}, {17, "iq2_xs"}, {18, "iq3_xxs"}, {19, "iq1_s"}, {21, "iq3_s"}, {22, "iq2_s"},
      {29, "iq1_m"},   {34, "tq1_0"},  {35, "tq2_0"},   {39, "mxfp4"}, {40, "nvfp4"}, {41, "q1_0"},
      {42, "q2_0"}};
  for (const auto& [k, name] : kNames)
    if (k == id) return "type " + std::to_string(id) + " (" + name + ") is not supported by hearth";
  return "unknown type id " + std::to_string(id);
}

TensorInfo read_tensor_info(Reader& r, uint64_t index) {
  TensorInfo t;
  r.set_context("tensor #" + std::to_string(index));
  t.name = r.read_string("name");
  if (t.name.empty()) r.error("empty tensor name");
  r.set_context("tensor " + quote_name(t.name));
  const uint32_t n_dims = r.read<uint32_t>("n_dims");
  if (n_dims > kMaxDims) r.error("n_dims " + std::to_string(n_dims) + " is more than " + std::to_string(kMaxDims));
  for (uint32_t d = 0; d < n_dims; ++d) {
    const int64_t ne = r.read<int64_t>("dimension");
    if (ne < 0) r.error("dimension " + std::to_string(d) + " is negative (" + std::to_string(ne) + ")");
    t.ne.push_back(ne);
  }
  const int32_t type = r.read<int32_t>("type");
  const std::optional<DType> dtype = dtype_from_ggml(type);
  if (!dtype) r.error(ggml_type_label(type));
  t.dtype = *dtype;
  t.offset = r.read<uint64_t>("data offset");

  // Element count and byte size, overflow-checked. A 0-dim tensor is a scalar.
  const DTypeInfo& info = dtype_info(t.dtype);
  const int64_t ne0 = t.ne.empty() ? 1 : t.ne[0];
  if (ne0 % info.block_elems != 0)
    r.error("ne[0] = " + std::to_string(ne0) + " is not a multiple of the " + std::string(info.name) +
            " block size " + std::to_string(info.block_elems));
  // The product of the non-zero dimensions must fit too, so that no partial product a
  // consumer forms (rows, a slice) can overflow even when another dimension is 0.
  int64_t numel = 1, nonzero = 1;
  for (int64_t ne : t.ne)
    if (__builtin_mul_overflow(nonzero, ne == 0 ? 1 : ne, &nonzero)) r.error("element count overflows int64");
  for (int64_t ne : t.ne) numel *= ne;
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel / info.block_elems, info.block_bytes, &nbytes))
    r.error("byte size overflows int64");
  t.nbytes = static_cast<uint64_t>(nbytes);
  return t;
}

uint32_t alignment_of(const std::map<std::string, GgufValue, std::less<>>& metadata, const std::string& file) {
  auto it = metadata.find("general.alignment");
  if (it == metadata.end()) return kDefaultAlignment;
  const GgufValue& v = it->second;
  if (!v.is_integer() || v.type == GgufType::BOOL)
    fail(file + ": general.alignment has type " + gguf_type_name(v.type) + ", expected an integer");
  if (v.i <= 0 || v.i > (int64_t{1} << 30) || !std::has_single_bit(static_cast<uint64_t>(v.i)))
    fail(file + ": general.alignment " + std::to_string(v.i) + " is not a power of two");
  return static_cast<uint32_t>(v.i);
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::parse(std::shared_ptr<MappedFile> file) {
  auto gguf = std::make_unique<GgufFile>();
  gguf->path_ = file->path();
  Reader r(*file);

  r.set_context("header");
  if (r.remaining() < 4) r.error("file too small to be GGUF (" + std::to_string(r.size()) + " bytes)");
  const uint32_t magic = r.read<uint32_t>("magic");
  if (magic != kMagic) r.error("not a GGUF file (bad magic)");
  const uint32_t version = r.read<uint32_t>("version");
  if ((version & 0xffff) == 0 && version != 0) r.error("big-endian GGUF files are not supported");
  if (version == 1) r.error("GGUF version 1 is not supported (convert the file again)");
  if (version != 2 && version != 3) r.error("unsupported GGUF version " + std::to_string(version));
  gguf->version_ = version;
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  // Cheap sanity bounds (a record takes at least this many bytes) before any loop.
  if (n_kv > r.remaining() / 13)
    r.error("metadata count " + std::to_string(n_kv) + " is impossible for a file of " + std::to_string(r.size()) + " bytes");
  if (n_tensors > r.remaining() / 24)
    r.error("tensor count " + std::to_string(n_tensors) + " is impossible for a file of " + std::to_string(r.size()) + " bytes");

  for (uint64_t k = 0; k < n_kv; ++k) {
    r.set_context("metadata #" + std::to_string(k));
    std::string key = r.read_string("key");
    if (key.empty()) r.error("empty key");
    r.set_context("key " + quote_name(key));
    if (gguf->metadata_.count(key) != 0) r.error("duplicate key");
    const GgufType type = read_type(r, "value type");
    gguf->metadata_.emplace(std::move(key), read_value(r, type));
  }

  std::vector<TensorInfo> infos;
  std::set<std::string, std::less<>> names;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    infos.push_back(read_tensor_info(r, k));
    if (!names.insert(infos.back().name).second) r.error("duplicate tensor name");
  }
  r.set_context("");

  const uint32_t alignment = alignment_of(gguf->metadata_, gguf->path_);
  const uint64_t data_offset = (r.pos() + alignment - 1) / alignment * alignment;
  if (!infos.empty() && data_offset > r.size())
    r.error("data section (offset " + std::to_string(data_offset) + ") starts past end of file (size " +
            std::to_string(r.size()) + ")");
  const uint64_t data_size = r.size() - std::min<uint64_t>(data_offset, r.size());

  for (const TensorInfo& t : infos) {
    const std::string where = gguf->path_ + ": tensor " + quote_name(t.name) + ": ";
    if (t.offset % alignment != 0)
      fail(where + "offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(alignment));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail(where + "data (offset " + std::to_string(data_offset + t.offset) + ", " + std::to_string(t.nbytes) +
           " bytes) runs past end of file (size " + std::to_string(r.size()) + ")");
  }
  // Tensors must not share bytes: sort by offset and compare neighbours.
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : infos)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k)
    if (by_offset[k - 1]->offset + by_offset[k - 1]->nbytes > by_offset[k]->offset)
      fail(gguf->path_ + ": tensors " + quote_name(by_offset[k - 1]->name) + " and " + quote_name(by_offset[k]->name) + " overlap");

  gguf->store_.set_origin(gguf->path_);
  for (TensorInfo& t : infos) {
    StoredTensor st;
    st.name = std::move(t.name);
    st.dtype = t.dtype;
    st.shape.assign(t.ne.rbegin(), t.ne.rend());  // numpy order
    st.data = t.nbytes > 0 ? file->data() + data_offset + t.offset : nullptr;
    st.nbytes = t.nbytes;
    st.file = gguf->path_;
    gguf->store_.add(std::move(st));
  }
  gguf->store_.keep_alive(std::move(file));
  return gguf;
}

// Split models: NAME-00002-of-00003.gguf, each shard a complete GGUF file whose
// split.no / split.count / split.tensors.count keys must agree with the file names.
namespace {

struct SplitName {
  std::string prefix;  // everything before "-00002-of-00003.gguf"
  size_t width = 5;    // digits of the shard number
  std::string count_text;
  int count = 0;
};

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 5 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<SplitName> parse_split_name(const std::string& path) {
  constexpr std::string_view kExt = ".gguf";
  std::string_view s = path;
  if (s.size() < kExt.size() || s.substr(s.size() - kExt.size()) != kExt) return std::nullopt;
  s.remove_suffix(kExt.size());
  const size_t of = s.rfind("-of-");
  if (of == std::string_view::npos) return std::nullopt;
  const std::string_view count = s.substr(of + 4);
  const size_t dash = s.substr(0, of).rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const std::string_view no = s.substr(dash + 1, of - dash - 1);
  if (!all_digits(count) || !all_digits(no)) return std::nullopt;
  SplitName split;
  split.prefix = std::string(s.substr(0, dash));
  split.width = no.size();
  split.count_text = std::string(count);
  split.count = std::stoi(split.count_text);
  const int index = std::stoi(std::string(no));
  if (split.count < 1 || index < 1 || index > split.count) return std::nullopt;
  return split;
}

std::string shard_path(const SplitName& split, int no) {
  std::string digits = std::to_string(no);
  if (digits.size() < split.width) digits.insert(0, split.width - digits.size(), '0');
  return split.prefix + "-" + digits + "-of-" + split.count_text + ".gguf";
}

// Integer metadata of a shard, or `fallback` when absent.
int64_t split_key(const GgufFile& shard, std::string_view key, int64_t fallback) {
  return shard.get_int_or(key, fallback);
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  const std::optional<SplitName> split = parse_split_name(path);
  if (!split || split->count == 1) {
    auto gguf = parse(MappedFile::open(path));
    const int64_t count = split_key(*gguf, "split.count", 1);
    if (count > 1)
      fail(path + ": split.count is " + std::to_string(count) +
           " but the file name does not follow NAME-0000N-of-0000M.gguf, so the other shards cannot be found");
    return gguf;
  }

  std::unique_ptr<GgufFile> first;
  for (int no = 1; no <= split->count; ++no) {
    const std::string shard_file = shard_path(*split, no);
    std::error_code ec;
    if (!std::filesystem::exists(shard_file, ec))
      fail(shard_file + ": missing shard " + std::to_string(no) + " of " + std::to_string(split->count) +
           " (opened from " + path + ")");
    std::unique_ptr<GgufFile> shard = parse(MappedFile::open(shard_file));
    const int64_t count = split_key(*shard, "split.count", -1);
    if (count != split->count)
      fail(shard_file + ": split.count is " + (count < 0 ? std::string("missing") : std::to_string(count)) +
           " but the file name says " + std::to_string(split->count) + " shards");
    const int64_t shard_no = split_key(*shard, "split.no", no - 1);
    if (shard_no != no - 1)
      fail(shard_file + ": split.no is " + std::to_string(shard_no) + ", expected " + std::to_string(no - 1));
    if (!first) {
      first = std::move(shard);
      continue;
    }
    // Tensors of later shards join the first shard's store, together with their mapping.
    first->store_.merge(std::move(shard->store_));
  }
  const int64_t expected = split_key(*first, "split.tensors.count", -1);
  const auto total = static_cast<int64_t>(first->store_.tensors().size());
  if (expected >= 0 && expected != total)
    fail(first->path_ + ": split.tensors.count is " + std::to_string(expected) + " but the " +
         std::to_string(split->count) + " shards hold " + std::to_string(total) + " tensors");
  return first;
}

}  // namespace hearth
