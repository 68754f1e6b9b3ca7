// The KV block file format: encoding, header checks and full validation (kv_file.h).
#include "kv/kv_file.h"

#include <cstring>

namespace hearth::kv {
namespace {

constexpr char kMagic[8] = {'H', 'E', 'A', 'R', 'T', 'H', 'K', 'V'};
constexpr size_t kChecksumAt = 56;

void put32(std::vector<uint8_t>& out, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}
void put64(std::vector<uint8_t>& out, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get32(std::span<const uint8_t> b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(b[at + static_cast<size_t>(i)]) << (8 * i);
  return v;
}
uint64_t get64(std::span<const uint8_t> b, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b[at + static_cast<size_t>(i)]) << (8 * i);
  return v;
}
// The type field: the dtype's name in 4 bytes, zero-padded.
uint32_t type_tag(DType t) {
  const std::string_view name = dtype_name(t);
  uint32_t v = 0;
  for (size_t i = 0; i < 4 && i < name.size(); ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(name[i])) << (8 * i);
  return v;
}
std::string tag_name(uint32_t tag) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    const char c = static_cast<char>(tag >> (8 * i));
    if (c == 0) break;
    s += c >= 32 && c < 127 ? c : '?';
  }
  return s;
}

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// The checksum of a whole file image: the header up to the checksum field, then the rest.
uint64_t file_checksum(std::span<const uint8_t> b) {
  const uint64_t h = checksum64(b.data(), kChecksumAt);
  return checksum64(b.data() + kKvFileHeaderBytes, b.size() - kKvFileHeaderBytes, h);
}

}  // namespace

uint64_t checksum64(const uint8_t* data, size_t n, uint64_t seed) {
  constexpr uint64_t p1 = 0x9E3779B185EBCA87ull, p2 = 0xC2B2AE3D27D4EB4Full;
  uint64_t lane[4] = {seed + p1 + p2, seed + p2, seed, seed - p1};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      std::memcpy(&w, data + i + 8 * static_cast<size_t>(k), 8);
      lane[k] = rotl(lane[k] + w * p2, 31) * p1;
    }
  uint64_t h = rotl(lane[0], 1) + rotl(lane[1], 7) + rotl(lane[2], 12) + rotl(lane[3], 18) + n;
  for (; i < n; ++i) h = rotl(h ^ (data[i] * p1), 11) * p2;
  h ^= h >> 33;
  h *= p2;
  h ^= h >> 29;
  return h;
}

std::vector<uint8_t> encode_kv_file(const KvFileIdentity& id, const HostBlock& block) {
  const size_t n_tok = block.tokens.size() * 4;
  std::vector<uint8_t> out(kKvFileHeaderBytes + n_tok + block.data.size(), 0);
  std::memcpy(out.data(), kMagic, 8);
  put32(out, 8, kKvFileVersion);
  put32(out, 12, kKvFileHeaderBytes);
  put64(out, 16, id.cache_id);
  put32(out, 24, id.block_size);
  put32(out, 28, type_tag(id.kv_dtype));
  put64(out, 32, block.data.size());
  put64(out, 40, block.hash);
  put64(out, 48, block.parent);
  for (size_t i = 0; i < block.tokens.size(); ++i) put32(out, kKvFileHeaderBytes + 4 * i, static_cast<uint32_t>(block.tokens[i]));
  if (!block.data.empty()) std::memcpy(out.data() + kKvFileHeaderBytes + n_tok, block.data.data(), block.data.size());
  put64(out, kChecksumAt, file_checksum(out));
  return out;
}

std::string check_kv_header(std::span<const uint8_t> b, uint64_t file_size, const KvFileIdentity& id, uint64_t& hash) {
  if (b.size() < kKvFileHeaderBytes) return "shorter than a header";
  if (std::memcmp(b.data(), kMagic, 8) != 0) return "not a hearth KV block file";
  if (get32(b, 8) != kKvFileVersion)
    return "format version " + std::to_string(get32(b, 8)) + " (this hearth reads " + std::to_string(kKvFileVersion) + ")";
  if (get32(b, 12) != kKvFileHeaderBytes) return "unexpected header size";
  if (const uint32_t tag = get32(b, 28); tag != 0 && tag != type_tag(id.kv_dtype))
    return "written by a " + tag_name(tag) + " KV cache (this cache holds " + std::string(dtype_name(id.kv_dtype)) + ")";
  if (get64(b, 16) != id.cache_id) return "written for another model or KV layout";
  if (get32(b, 24) != id.block_size || get64(b, 32) != id.block_bytes) return "block size or payload size differs";
  const uint64_t want = kKvFileHeaderBytes + 4ull * id.block_size + id.block_bytes;
  if (file_size != want) return "truncated or padded (" + std::to_string(file_size) + " bytes, expected " + std::to_string(want) + ")";
  hash = get64(b, 40);
  if (hash == 0) return "no block hash";
  return "";
}

std::string decode_kv_file(std::span<const uint8_t> b, const KvFileIdentity& id, HostBlock& out) {
  uint64_t hash = 0;
  if (std::string why = check_kv_header(b, b.size(), id, hash); !why.empty()) return why;
  if (get64(b, kChecksumAt) != file_checksum(b)) return "checksum mismatch (corrupt)";
  out.hash = hash;
  out.parent = get64(b, 48);
  out.tokens.resize(id.block_size);
  for (size_t i = 0; i < out.tokens.size(); ++i) out.tokens[i] = static_cast<int32_t>(get32(b, kKvFileHeaderBytes + 4 * i));
  const size_t at = kKvFileHeaderBytes + 4ull * id.block_size;
  out.data.assign(b.begin() + static_cast<std::ptrdiff_t>(at), b.end());
  return "";
}

}  // namespace hearth::kv
