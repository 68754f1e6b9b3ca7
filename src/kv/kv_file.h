// The on-disk format of one spilled KV block (the disk tier of the prefix cache).
//
// A file holds one full block: a fixed header, the block's token ids, then the payload
// (the backend's bytes of that block, all layers, keys then values; Backend::
// read_kv_block). Everything is little-endian:
//   offset  size  field
//        0     8  magic "HEARTHKV"
//        8     4  format version (kKvFileVersion)
//       12     4  header bytes (kKvFileHeaderBytes), so readers can skip what they don't know
//       16     8  cache identity: the model (tensor layout and data samples) and the KV
//                 geometry (dtype, layers, heads, head_dim, block size)
//       24     4  block size (tokens)
//       28     4  KV element type: its name, ASCII, zero-padded ("f16", "q8_0", "f32");
//                 all zeros in files written before the 8-bit cache (read as "not
//                 recorded": the cache identity, which covers the type too, decides)
//       32     8  payload bytes
//       40     8  chained hash of this block (covers every token before it)
//       48     8  chained hash of the previous block (0 for the first)
//       56     8  checksum of bytes [0, 56) and everything after byte 64
//   64 + 4*bs      token ids (int32), then the payload
// A reader trusts nothing: wrong magic, version, KV type, identity, sizes or checksum make the
// file unusable (read_kv_file says why in one line) and the tier removes it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace hearth::kv {

inline constexpr uint32_t kKvFileVersion = 1;
inline constexpr uint32_t kKvFileHeaderBytes = 64;

// One full block held in host memory: what it is (chain hashes, tokens) and its bytes.
struct HostBlock {
  uint64_t hash = 0;            // chained hash of the block (block_pool.h)
  uint64_t parent = 0;          // chained hash of the block before it; 0 for the first
  std::vector<int32_t> tokens;  // [block_size]
  std::vector<uint8_t> data;    // [block bytes] the backend's layout
};

// What every file of one cache must agree on.
struct KvFileIdentity {
  uint64_t cache_id = 0;     // model + KV geometry
  uint32_t block_size = 0;   // tokens per block
  uint64_t block_bytes = 0;  // payload bytes per block
  DType kv_dtype = DType::F16;  // the cache's element type (KvCacheConfig::dtype)
};

// A fast 64-bit checksum (four multiply-rotate lanes over 8-byte words), for detecting
// corruption, not for security.
uint64_t checksum64(const uint8_t* data, size_t n, uint64_t seed = 0);

// The file's bytes for `block`.
std::vector<uint8_t> encode_kv_file(const KvFileIdentity& id, const HostBlock& block);

// Checks only the header (cheap: used when scanning the cache folder at start-up).
// Returns "" when it matches `id`, else the problem; hash gets the block's hash.
std::string check_kv_header(std::span<const uint8_t> header, uint64_t file_size, const KvFileIdentity& id,
                            uint64_t& hash);

// Decodes a whole file; returns "" on success, else the problem (nothing is trusted).
std::string decode_kv_file(std::span<const uint8_t> bytes, const KvFileIdentity& id, HostBlock& out);

}  // namespace hearth::kv
