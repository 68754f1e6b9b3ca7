// GGUF reader on broken and hostile files, assembled by hand: each must end in one
// hearth::Error whose single line names the file and the problem, and none may read out
// of bounds or allocate what the file cannot hold (run under ASan by the fuzz target too).
#include <gtest/gtest.h>

#include <limits>

#include "io/gguf.h"
#include "io_test_util.h"

using namespace hearth;
using namespace hearth::test;

namespace {

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

std::string gguf_error(const std::vector<uint8_t>& bytes) {
  return error_of([&] { GgufFile::parse(MappedFile::from_bytes("x.gguf", bytes)); });
}

#define EXPECT_GGUF_ERROR(bytes, text)                                          \
  do {                                                                          \
    const std::string m_ = gguf_error(bytes);                                   \
    EXPECT_EQ(m_.rfind("x.gguf: ", 0), 0u) << m_;                               \
    EXPECT_NE(m_.find(text), std::string::npos) << "message: " << m_;           \
    EXPECT_EQ(m_.find('\n'), std::string::npos) << m_;                          \
  } while (0)

// One metadata record `key` of `type`, the raw value bytes following.
Bytes one_kv(const std::string& key, uint32_t type) { return std::move(Bytes().gguf_header(0, 1).str(key).u32(type)); }

// One tensor named "w" with the given info fields, then `data_bytes` zero bytes of data.
std::vector<uint8_t> one_tensor(std::vector<int64_t> ne, int32_t type, uint64_t offset, size_t data_bytes) {
  Bytes b;
  b.gguf_header(1, 0).tensor_info("w", std::move(ne), type, offset).pad_to(32);
  b.b.resize(b.b.size() + data_bytes, 0);
  return b.b;
}

}  // namespace

TEST(GgufHostile, Header) {
  EXPECT_GGUF_ERROR(std::vector<uint8_t>{}, "file too small to be GGUF (0 bytes)");
  EXPECT_GGUF_ERROR(Bytes().raw("GGU").b, "file too small");
  EXPECT_GGUF_ERROR(Bytes().raw("GGUX").u32(3).u64(0).u64(0).b, "not a GGUF file (bad magic)");
  EXPECT_GGUF_ERROR(Bytes().raw("PK\x03\x04").u32(3).u64(0).u64(0).b, "bad magic");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(0, 0, 1).b, "GGUF version 1 is not supported");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(0, 0, 4).b, "unsupported GGUF version 4");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(0, 0, 0).b, "unsupported GGUF version 0");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(0, 0, 0x03000000).b, "big-endian");
  EXPECT_GGUF_ERROR(Bytes().raw("GGUF").u32(3).u64(0).b, "metadata count (8 bytes at offset 16) runs past end of file (size 16)");
  // An empty but complete file is valid.
  EXPECT_EQ(gguf_error(Bytes().gguf_header(0, 0).b), "(no error)");
}

TEST(GgufHostile, HugeCounts) {
  EXPECT_GGUF_ERROR(Bytes().gguf_header(0, kU64Max).b, "metadata count 18446744073709551615 is impossible");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(kU64Max, 0).b, "tensor count 18446744073709551615 is impossible");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(1u << 20, 0).b, "tensor count 1048576 is impossible for a file of 24 bytes");
  // String lengths that run past the end, including ones where pos + length wraps.
  for (uint64_t len : {uint64_t{100}, kU64Max, kU64Max - 30, uint64_t{1} << 63})
    EXPECT_GGUF_ERROR(Bytes().gguf_header(0, 1).u64(len).raw("abcdef").b, "metadata #0: key (" + std::to_string(len));
  EXPECT_GGUF_ERROR(one_kv("s", 8).u64(kU64Max).raw("xyz").b, "key 's': string value (18446744073709551615 bytes at offset");
  // Array counts whose byte size overflows 64 bits when multiplied by the element size.
  EXPECT_GGUF_ERROR(one_kv("a", 9).u32(10).u64(uint64_t{1} << 61).u64(1).b,
                    "key 'a': array of 2305843009213693952 UINT64 values runs past end of file");
  EXPECT_GGUF_ERROR(one_kv("a", 9).u32(5).u64(uint64_t{1} << 62).u32(1).b, "array of 4611686018427387904 INT32");
  EXPECT_GGUF_ERROR(one_kv("a", 9).u32(0).u64(kU64Max).u8(1).b, "array of 18446744073709551615 UINT8");
  EXPECT_GGUF_ERROR(one_kv("a", 9).u32(8).u64(kU64Max / 8).u64(0).b, "STRING values runs past end of file");
  // A plausible count of strings whose lengths lie.
  EXPECT_GGUF_ERROR(one_kv("a", 9).u32(8).u64(2).u64(1).raw("x").u64(kU64Max).b, "array string");
}

TEST(GgufHostile, Metadata) {
  EXPECT_GGUF_ERROR(one_kv("a", 9).u32(9).u64(1).b, "key 'a': nested arrays are not supported");
  EXPECT_GGUF_ERROR(one_kv("a", 13).u32(0).b, "key 'a': unknown value type 13");
  EXPECT_GGUF_ERROR(one_kv("a", 0xFFFFFFFF).b, "unknown value type 4294967295");
  EXPECT_GGUF_ERROR(one_kv("a", 9).u32(77).u64(0).b, "key 'a': unknown value type 77");
  EXPECT_GGUF_ERROR(one_kv("", 4).u32(1).b, "metadata #0: empty key");
  EXPECT_GGUF_ERROR(one_kv("big", 10).u64(kU64Max).b, "key 'big': uint64 value 18446744073709551615 does not fit in int64");
  EXPECT_GGUF_ERROR(one_kv("big", 9).u32(10).u64(1).u64(uint64_t{1} << 63).b, "does not fit in int64");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(0, 2).str("k").u32(4).u32(1).str("k").u32(8).str("v").b, "key 'k': duplicate key");
  for (uint32_t type = 0; type <= 12; ++type)  // every type cut off right after its tag
    EXPECT_NE(gguf_error(one_kv("k", type).b).find("x.gguf: key 'k': "), std::string::npos) << type;
}

TEST(GgufHostile, Alignment) {
  auto with_alignment = [](uint32_t type, const std::vector<uint8_t>& value) {
    return Bytes().gguf_header(0, 1).str("general.alignment").u32(type).raw(value).b;
  };
  EXPECT_GGUF_ERROR(with_alignment(4, {48, 0, 0, 0}), "general.alignment 48 is not a power of two");
  EXPECT_GGUF_ERROR(with_alignment(4, {0, 0, 0, 0}), "general.alignment 0 is not a power of two");
  EXPECT_GGUF_ERROR(with_alignment(8, Bytes().str("32").b), "general.alignment has type STRING");
  EXPECT_GGUF_ERROR(with_alignment(5, {0, 0, 0, 0x80}), "general.alignment -2147483648 is not a power of two");
  EXPECT_EQ(gguf_error(with_alignment(4, {64, 0, 0, 0})), "(no error)");
}

TEST(GgufHostile, TensorInfo) {
  EXPECT_GGUF_ERROR(one_tensor({1, 1, 1, 1, 1}, 0, 0, 32), "tensor 'w': n_dims 5 is more than 4");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(1, 0).str("w").u32(0xFFFFFFFF).raw(std::vector<uint8_t>(32)).b, "n_dims 4294967295");
  EXPECT_GGUF_ERROR(one_tensor({4, -1}, 0, 0, 32), "tensor 'w': dimension 1 is negative (-1)");
  EXPECT_GGUF_ERROR(one_tensor({int64_t{1} << 32, int64_t{1} << 32}, 0, 0, 32), "tensor 'w': element count overflows int64");
  EXPECT_GGUF_ERROR(one_tensor({3, int64_t{1} << 62}, 0, 0, 32), "element count overflows");
  // A zero dimension makes the count 0, but the other dimensions' product must still fit.
  EXPECT_GGUF_ERROR(one_tensor({0, int64_t{1} << 32, int64_t{1} << 32}, 0, 0, 32), "element count overflows");
  EXPECT_EQ(gguf_error(one_tensor({0, int64_t{1} << 31, int64_t{1} << 31}, 0, 0, 32)), "(no error)");
  EXPECT_GGUF_ERROR(one_tensor({int64_t{1} << 62}, 0, 0, 32), "tensor 'w': byte size overflows int64");
  EXPECT_GGUF_ERROR(one_tensor({16, 1}, 2, 0, 32), "tensor 'w': ne[0] = 16 is not a multiple of the q4_0 block size 32");
  EXPECT_GGUF_ERROR(one_tensor({}, 12, 0, 256), "ne[0] = 1 is not a multiple of the q4_K block size 256");
  EXPECT_GGUF_ERROR(one_tensor({8}, 99, 0, 32), "tensor 'w': unknown type id 99");
  // Names are escaped so the message stays one printable line.
  EXPECT_GGUF_ERROR(Bytes().gguf_header(0, 1).str(std::string("a\nb\x01\xff", 5)).u32(99).b,
                    "key 'a\\x0ab\\x01\\xff': unknown value type 99");
  EXPECT_GGUF_ERROR(one_tensor({8}, -1, 0, 32), "unknown type id -1");
  EXPECT_GGUF_ERROR(one_tensor({8}, 1003, 0, 32), "unknown type id 1003");  // hearth-only id, not GGUF
  EXPECT_GGUF_ERROR(one_tensor({256}, 16, 0, 256), "type 16 (iq2_xxs) is not supported by hearth");
  EXPECT_GGUF_ERROR(Bytes().gguf_header(1, 0).tensor_info("", {1}, 0, 0).pad_to(32).u32(0).b, "tensor #0: empty tensor name");
  Bytes dup;
  dup.gguf_header(2, 0).tensor_info("w", {1}, 0, 0).tensor_info("w", {1}, 0, 32).pad_to(32).raw(std::vector<uint8_t>(64));
  EXPECT_GGUF_ERROR(dup.b, "tensor 'w': duplicate tensor name");
}

TEST(GgufHostile, TensorData) {
  const std::vector<uint8_t> ok = one_tensor({8}, 0, 0, 32);
  EXPECT_EQ(gguf_error(ok), "(no error)");
  // Offset past the end: the message gives the absolute offset, size and file size.
  const size_t data_offset = ok.size() - 32;
  EXPECT_GGUF_ERROR(one_tensor({8}, 0, 32, 32), "x.gguf: tensor 'w': data (offset " + std::to_string(data_offset + 32) +
                                                    ", 32 bytes) runs past end of file (size " + std::to_string(ok.size()) + ")");
  EXPECT_GGUF_ERROR(one_tensor({9}, 0, 0, 32), "data (offset " + std::to_string(data_offset) + ", 36 bytes) runs past end");
  EXPECT_GGUF_ERROR(one_tensor({8}, 0, kU64Max - 31, 32), "runs past end of file");  // offset + size wraps
  EXPECT_GGUF_ERROR(one_tensor({int64_t{1} << 40}, 0, 0, 32), "runs past end of file");
  EXPECT_GGUF_ERROR(one_tensor({8}, 0, 4, 64), "tensor 'w': offset 4 is not a multiple of the alignment 32");
  // Tensors may not share bytes.
  Bytes overlap;
  overlap.gguf_header(2, 0).tensor_info("a", {16}, 0, 0).tensor_info("b", {8}, 0, 32).pad_to(32).raw(std::vector<uint8_t>(64));
  EXPECT_GGUF_ERROR(overlap.b, "tensors 'a' and 'b' overlap");
  // The data section itself begins past the end (no padding after the infos).
  EXPECT_GGUF_ERROR(Bytes().gguf_header(1, 0).tensor_info("w", {0}, 0, 0).b, "data section (offset");
}

TEST(GgufHostile, EveryTruncationIsAnError) {
  // A small valid file with every metadata type and three tensors; the last tensor
  // ends exactly at the end of the file, so every proper prefix is incomplete.
  std::mt19937_64 rng(11);
  GgufWriter w;
  for (uint32_t t = 0; t <= 12; ++t) {
    const auto type = static_cast<GgufType>(t);
    if (type == GgufType::ARRAY) continue;
    GgufValue v{.type = type, .i = 1, .f = 0.5, .s = "str"};
    w.add_value(std::string("k").append(std::to_string(t)), v);  // append: GCC 12 -Wrestrict bug
    GgufValue a{.type = GgufType::ARRAY, .elem_type = type};
    if (type == GgufType::STRING) a.strings = {"a", "bc"};
    else if (type == GgufType::FLOAT32 || type == GgufType::FLOAT64) a.floats = {1, 2};
    else a.ints = {0, 1};
    w.add_value(std::string("a").append(std::to_string(t)), a);
  }
  w.add_tensor("q", DType::Q8_0, {2, 32}, random_bytes(rng, 68));
  w.add_tensor("h", DType::F16, {3}, random_bytes(rng, 6));
  w.add_tensor("f", DType::F32, {2, 4}, random_bytes(rng, 32));
  const std::vector<uint8_t> full = w.serialize();
  ASSERT_EQ(gguf_error(full), "(no error)");
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string m = gguf_error(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(n)));
    ASSERT_EQ(m.rfind("x.gguf: ", 0), 0u) << "prefix of " << n << " bytes: " << m;
    ASSERT_EQ(m.find('\n'), std::string::npos) << m;
  }
}
