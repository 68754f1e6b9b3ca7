// safetensors reader and writer (formats.md §3.1). The header length is bounded before
// the JSON is parsed; duplicate JSON keys are detected during parsing (nlohmann keeps
// only the last one silently); each tensor's byte range must lie inside the data region,
// hold exactly numel * element size bytes, and not overlap another tensor. Holes between
// tensors are allowed. Shapes are used as written: safetensors is already numpy order.
#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/quote.h"

namespace hearth {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // HF's own limit is 100 MB as well

// Parses JSON text, failing on syntax errors and on a key repeated within one object.
json parse_json_strict(const char* begin, const char* end, const std::string& what) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.empty() && duplicate.empty() &&
        !keys.back().insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, on_event);
  } catch (const json::exception& e) {
    std::string reason = e.what();  // drop nlohmann's "[json.exception.parse_error.101] " tag
    if (reason.rfind("[json.exception.", 0) == 0 && reason.find("] ") != std::string::npos)
      reason.erase(0, reason.find("] ") + 2);
    fail(what + " is not valid JSON: " + reason);
  }
  if (!duplicate.empty()) fail(what + ": duplicate key " + quote_name(duplicate));
  return j;
}

std::string dims_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

// A non-negative JSON integer, or nothing (negative, fractional, too large, not a number).
std::optional<uint64_t> as_unsigned(const json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  return v.get<uint64_t>();
}

struct Range {
  const StoredTensor* tensor;
  uint64_t begin, end;
};

std::string safetensors_dtype_name(DType type) {
  switch (type) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I8: return "I8";
    case DType::I16: return "I16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::U32: return "U32";
    default: return "";
  }
}

}  // namespace

std::map<std::string, std::string> load_safetensors(std::shared_ptr<MappedFile> file, TensorStore& store) {
  const std::string path = file->path();
  const uint64_t size = file->size();
  if (size < 8) fail(path + ": file too small for a safetensors header (" + std::to_string(size) + " bytes)");
  uint64_t n = 0;
  std::memcpy(&n, file->data(), 8);
  if (n > kMaxHeaderBytes)
    fail(path + ": header length " + std::to_string(n) + " is over the limit of " + std::to_string(kMaxHeaderBytes) + " bytes");
  if (n > size - 8)
    fail(path + ": header length " + std::to_string(n) + " runs past end of file (size " + std::to_string(size) + ")");
  const char* text = reinterpret_cast<const char*>(file->data() + 8);
  if (n == 0 || text[0] != '{') fail(path + ": header is not a JSON object");
  const json header = parse_json_strict(text, text + n, path + ": header");
  if (!header.is_object()) fail(path + ": header is not a JSON object");

  const uint8_t* data = file->data() + 8 + n;
  const uint64_t data_size = size - 8 - n;
  std::map<std::string, std::string> metadata;
  TensorStore local;  // added to `store` only once the whole file checks out
  local.set_origin(path);
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path + ": __metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail(path + ": __metadata__ entry " + quote_name(k) + " is not a string");
        metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor " + quote_name(name) + ": ";
    if (name.empty()) fail(path + ": empty tensor name");
    if (!entry.is_object()) fail(where + "entry is not an object");
    const auto dtype_it = entry.find("dtype");
    const auto shape_it = entry.find("shape");
    const auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) fail(where + "missing or non-string dtype");
    if (shape_it == entry.end() || !shape_it->is_array()) fail(where + "missing or non-array shape");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2)
      fail(where + "data_offsets is not a [begin, end] pair");

    StoredTensor t;
    t.name = name;
    t.file = path;
    const std::string dtype_text = dtype_it->get<std::string>();
    const std::optional<DType> dtype = dtype_from_safetensors(dtype_text);
    if (!dtype) fail(where + "unknown dtype " + quote_name(dtype_text));
    t.dtype = *dtype;
    int64_t nonzero = 1;  // product of the non-zero dimensions: no partial product may overflow
    for (const json& d : *shape_it) {
      const std::optional<uint64_t> dim = as_unsigned(d);
      if (!dim || *dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where + "shape entries must be non-negative integers");
      t.shape.push_back(static_cast<int64_t>(*dim));
      if (__builtin_mul_overflow(nonzero, *dim == 0 ? 1 : t.shape.back(), &nonzero))
        fail(where + "element count overflows int64");
    }
    const int64_t numel = t.numel();
    const std::optional<uint64_t> begin = as_unsigned((*offsets_it)[0]);
    const std::optional<uint64_t> end = as_unsigned((*offsets_it)[1]);
    if (!begin || !end) fail(where + "data_offsets must be non-negative integers");
    const std::string range = "data_offsets [" + std::to_string(*begin) + ", " + std::to_string(*end) + "]";
    if (*begin > *end) fail(where + range + " are out of order");
    if (*end > data_size)
      fail(where + range + " run past end of data (" + std::to_string(data_size) + " bytes after the header)");
    int64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, dtype_info(t.dtype).block_bytes, &nbytes))
      fail(where + "byte size overflows int64");
    if (*end - *begin != static_cast<uint64_t>(nbytes))
      fail(where + range + " hold " + std::to_string(*end - *begin) + " bytes but shape " + dims_text(t.shape) +
           " of " + dtype_text + " needs " + std::to_string(nbytes));
    t.nbytes = static_cast<uint64_t>(nbytes);
    t.data = t.nbytes > 0 ? data + *begin : nullptr;
    local.add(std::move(t));
    if (*end > *begin) ranges.push_back({local.find(name), *begin, *end});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t k = 1; k < ranges.size(); ++k)
    if (ranges[k].begin < ranges[k - 1].end)
      fail(path + ": tensors " + quote_name(ranges[k - 1].tensor->name) + " and " + quote_name(ranges[k].tensor->name) + " overlap");

  local.keep_alive(std::move(file));
  store.merge(std::move(local));
  return metadata;
}

std::map<std::string, std::string> load_safetensors_file(const std::string& path, TensorStore& store) {
  return load_safetensors(MappedFile::open(path), store);
}

std::map<std::string, std::string> load_safetensors_folder(const std::string& dir, TensorStore& store) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir + ": not a directory");
  const fs::path folder(dir);
  if (fs::exists(folder / "model.safetensors", ec)) return load_safetensors_file((folder / "model.safetensors").string(), store);

  std::vector<std::string> files;
  const fs::path index_path = folder / "model.safetensors.index.json";
  json weight_map;
  if (fs::exists(index_path, ec)) {
    const std::string index_name = index_path.string();
    std::ifstream in(index_path, std::ios::binary);
    if (!in.is_open()) fail(index_name + ": cannot open: " + std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    const std::string s = text.str();
    const json index = parse_json_strict(s.data(), s.data() + s.size(), index_name);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(index_name + ": no weight_map object");
    weight_map = index["weight_map"];
    std::set<std::string> unique;
    for (const auto& [name, shard] : weight_map.items()) {
      if (!shard.is_string()) fail(index_name + ": weight_map entry " + quote_name(name) + " is not a file name");
      const std::string file = shard.get<std::string>();
      // Shards live in the folder itself: no paths that climb out of it.
      if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos || file == "..")
        fail(index_name + ": weight_map entry " + quote_name(name) + " names " + quote_name(file) + ", not a file in the folder");
      if (unique.insert(file).second) files.push_back(file);
    }
  } else {
    for (const auto& e : fs::directory_iterator(folder, ec))
      if (e.path().extension() == ".safetensors") files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
  }
  if (files.empty()) fail(dir + ": no model.safetensors, model.safetensors.index.json or *.safetensors file");

  std::map<std::string, std::string> metadata;
  for (const std::string& file : files)
    for (auto& [k, v] : load_safetensors_file((folder / file).string(), store)) metadata.emplace(k, v);
  for (const auto& [name, shard] : weight_map.items()) {
    const StoredTensor* t = store.find(name);
    if (t == nullptr || fs::path(t->file).filename() != shard.get<std::string>())
      fail(index_path.string() + ": tensor " + quote_name(name) + " is listed in " + quote_name(shard.get<std::string>()) + " but not found there");
  }
  return metadata;
}

std::vector<uint8_t> serialize_safetensors(const std::vector<SafetensorsEntry>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const SafetensorsEntry& t : tensors) {
    const std::string where = "write_safetensors: tensor " + quote_name(t.name) + ": ";
    if (t.name.empty() || t.name == "__metadata__") fail("write_safetensors: bad tensor name " + quote_name(t.name));
    if (header.contains(t.name)) fail(where + "duplicate name");
    const std::string dtype = safetensors_dtype_name(t.dtype);
    if (dtype.empty()) fail(where + "type " + std::string(dtype_name(t.dtype)) + " has no safetensors dtype");
    int64_t numel = 1;
    for (int64_t d : t.shape)
      if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) fail(where + "bad shape");
    if (t.bytes.size() != static_cast<uint64_t>(numel * dtype_info(t.dtype).block_bytes))
      fail(where + std::to_string(t.bytes.size()) + " bytes do not match shape " + dims_text(t.shape));
    header[t.name] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    fail(std::string("write_safetensors: ") + e.what());
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');  // pad so the data starts 8-byte aligned
  // Sized once and filled with memcpy (GCC 12 warns falsely about vector::insert here).
  const uint64_t n = text.size();
  std::vector<uint8_t> out(8 + n + offset);
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, text.data(), n);
  uint8_t* at = out.data() + 8 + n;
  for (const SafetensorsEntry& t : tensors) {
    if (!t.bytes.empty()) std::memcpy(at, t.bytes.data(), t.bytes.size());
    at += t.bytes.size();
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::vector<uint8_t> bytes = serialize_safetensors(tensors, metadata);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) fail(path + ": cannot create: " + std::strerror(errno));
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (written != bytes.size() || !closed) fail(path + ": cannot write: " + std::strerror(err));
}

}  // namespace hearth
