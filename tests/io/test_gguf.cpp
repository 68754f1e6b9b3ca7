// GGUF reader on valid files: a file assembled byte by byte from the format description
// (independent of GgufWriter), writer -> reader round trips with random data over every
// tensor type, every metadata type and several alignments, split models, and the getters.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "io/gguf.h"
#include "io_test_util.h"

using namespace hearth;
using namespace hearth::test;

namespace {

std::unique_ptr<GgufFile> parse_bytes(const std::vector<uint8_t>& bytes, std::shared_ptr<MappedFile>* keep = nullptr) {
  auto file = MappedFile::from_bytes("mem.gguf", bytes);
  if (keep != nullptr) *keep = file;
  return GgufFile::parse(file);
}

// Two tensors and three metadata keys, laid out by hand as formats.md §1 describes.
std::vector<uint8_t> hand_made_file(uint32_t version, std::vector<uint8_t>* q8_bytes) {
  std::mt19937_64 rng(7);
  *q8_bytes = random_bytes(rng, 68);  // two Q8_0 blocks
  Bytes b;
  b.gguf_header(2, 3, version)
      .str("general.architecture").u32(8).str("qwen3")
      .str("qwen3.block_count").u32(4).u32(28)
      .str("tokenizer.ggml.scores").u32(9).u32(6).u64(3).f32(0.5f).f32(-1.0f).f32(2.0f)
      .tensor_info("token_embd.weight", {3, 2}, 0, 0)     // F32, numpy shape {2, 3}, 24 bytes
      .tensor_info("blk.0.attn_q.weight", {32, 2}, 8, 32)  // Q8_0, numpy {2, 32}, 68 bytes
      .pad_to(32);
  for (int k = 1; k <= 6; ++k) b.f32(static_cast<float>(k));
  b.pad_to(32).raw(*q8_bytes);
  return b.b;
}

}  // namespace

TEST(Gguf, ReadsHandMadeFile) {
  for (uint32_t version : {2u, 3u}) {
    std::vector<uint8_t> q8;
    const auto bytes = hand_made_file(version, &q8);
    std::shared_ptr<MappedFile> mf;
    auto g = parse_bytes(bytes, &mf);
    EXPECT_EQ(g->version(), version);
    EXPECT_EQ(g->get_string("general.architecture"), "qwen3");
    EXPECT_EQ(g->get_int("qwen3.block_count"), 28);
    const GgufValue* scores = g->find("tokenizer.ggml.scores");
    ASSERT_NE(scores, nullptr);
    EXPECT_EQ(scores->elem_type, GgufType::FLOAT32);
    EXPECT_EQ(scores->floats, (std::vector<double>{0.5, -1.0, 2.0}));

    // Header 24 + records; the data section starts at the next multiple of 32.
    const size_t data_offset = bytes.size() - 68 - 32;
    const StoredTensor& embd = g->tensors().get("token_embd.weight");
    EXPECT_EQ(embd.dtype, DType::F32);
    EXPECT_EQ(embd.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(embd.nbytes, 24u);
    EXPECT_EQ(embd.data, mf->data() + data_offset);
    float values[6];
    std::memcpy(values, embd.data, sizeof(values));
    EXPECT_EQ(values[5], 6.0f);
    const StoredTensor& q = g->tensors().get("blk.0.attn_q.weight");
    EXPECT_EQ(q.dtype, DType::Q8_0);
    EXPECT_EQ(q.shape, (std::vector<int64_t>{2, 32}));
    EXPECT_EQ(q.nbytes, 68u);
    EXPECT_EQ(q.data, mf->data() + data_offset + 32);
    EXPECT_EQ(std::memcmp(q.data, q8.data(), 68), 0);
    EXPECT_EQ(q.file, "mem.gguf");
  }
}

TEST(Gguf, RoundTripEveryTensorType) {
  std::mt19937_64 rng(42);
  TempDir dir;
  GgufWriter w;
  struct Expected {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Expected> expected;
  for (int id = 0; id < 64; ++id) {
    const auto type = dtype_from_ggml(id);
    if (!type) continue;
    const DTypeInfo& info = dtype_info(*type);
    const int64_t cols = info.block_elems * (1 + static_cast<int64_t>(rng() % 3)) + (info.block_elems == 1 ? 4 : 0);
    std::vector<int64_t> shape;
    switch (id % 4) {
      case 0: shape = {cols}; break;
      case 1: shape = {1 + static_cast<int64_t>(rng() % 7), cols}; break;
      case 2: shape = {3, 5, cols}; break;
      default: shape = {2, 1, 3, cols}; break;
    }
    const int64_t numel = [&] { int64_t n = 1; for (auto d : shape) n *= d; return n; }();
    Expected e{"t." + std::string(info.name), *type, shape,
               random_bytes(rng, static_cast<size_t>(numel / info.block_elems * info.block_bytes))};
    w.add_tensor(e.name, e.dtype, e.shape, e.bytes);
    expected.push_back(std::move(e));
  }
  ASSERT_GE(expected.size(), 20u);
  // A scalar (n_dims 0) and an empty tensor.
  w.add_tensor("scalar", DType::F32, {}, {0, 0, 128, 63});
  w.add_tensor("empty", DType::Q4_K, {0, 256}, {});
  w.write(dir.file("all.gguf"));

  auto g = GgufFile::open(dir.file("all.gguf"));
  EXPECT_EQ(g->tensors().tensors().size(), expected.size() + 2);
  for (const Expected& e : expected) {
    const StoredTensor& t = g->tensors().get(e.name);
    EXPECT_EQ(t.dtype, e.dtype) << e.name;
    EXPECT_EQ(t.shape, e.shape) << e.name;
    ASSERT_EQ(t.nbytes, e.bytes.size()) << e.name;
    EXPECT_EQ(std::memcmp(t.data, e.bytes.data(), e.bytes.size()), 0) << e.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << e.name;  // the mapping is page aligned
  }
  const StoredTensor& scalar = g->tensors().get("scalar");
  EXPECT_TRUE(scalar.shape.empty());
  float one;
  std::memcpy(&one, scalar.data, 4);
  EXPECT_EQ(one, 1.0f);
  EXPECT_EQ(g->tensors().get("empty").nbytes, 0u);
  EXPECT_EQ(g->tensors().get("empty").shape, (std::vector<int64_t>{0, 256}));
}

TEST(Gguf, RoundTripEveryMetadataType) {
  using L = std::numeric_limits<int64_t>;
  GgufWriter w;
  const std::vector<std::pair<GgufType, int64_t>> ints = {
      {GgufType::UINT8, 255},        {GgufType::INT8, -128},       {GgufType::UINT16, 65535},
      {GgufType::INT16, -32768},     {GgufType::UINT32, 4294967295}, {GgufType::INT32, -2147483648LL},
      {GgufType::UINT64, L::max()},  {GgufType::INT64, L::min()},  {GgufType::BOOL, 1}};
  for (const auto& [type, v] : ints) {
    w.add_value("scalar." + gguf_type_name(type), GgufValue{.type = type, .i = v});
    // Arrays of the same type: the extreme, zero, one, and an odd count.
    w.add_value("array." + gguf_type_name(type),
                GgufValue{.type = GgufType::ARRAY, .elem_type = type, .ints = {v, 0, 1, v, 0}});
  }
  w.add_value("scalar.FLOAT32", GgufValue{.type = GgufType::FLOAT32, .f = -1.25e-3f});
  w.add_value("scalar.FLOAT64", GgufValue{.type = GgufType::FLOAT64, .f = 0.1});
  w.add_value("array.FLOAT32", GgufValue{.type = GgufType::ARRAY, .elem_type = GgufType::FLOAT32,
                                         .floats = {1.5, -0.0, 3e38, std::ldexp(1.0, -149)}});
  w.add_value("array.FLOAT64", GgufValue{.type = GgufType::ARRAY, .elem_type = GgufType::FLOAT64,
                                         .floats = {0.1, -1e300, 4.9e-324}});
  const std::string with_nul("a\0b\xc3\xa9", 5);
  w.add_string("scalar.STRING", with_nul);
  w.add_string("empty.STRING", "");
  w.add_array_strings("array.STRING", {"", "hello", with_nul, std::string(1000, 'x')});
  w.add_array_int32("array.empty", {});
  w.add_uint32("typed.u32", 7);
  w.add_int32("typed.i32", -7);
  w.add_uint64("typed.u64", 1ull << 40);
  w.add_float32("typed.f32", 0.75f);
  w.add_bool("typed.bool", false);
  w.add_array_float32("typed.af32", {0.5f, -2.0f});

  auto g = parse_bytes(w.serialize());
  for (const auto& [type, v] : ints) {
    const GgufValue* s = g->find("scalar." + gguf_type_name(type));
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->type, type);
    EXPECT_EQ(s->i, v) << gguf_type_name(type);
    const GgufValue* a = g->find("array." + gguf_type_name(type));
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->type, GgufType::ARRAY);
    EXPECT_EQ(a->elem_type, type);
    EXPECT_EQ(a->ints, (std::vector<int64_t>{v, 0, 1, v, 0}));
    EXPECT_EQ(a->array_size(), 5u);
  }
  EXPECT_EQ(g->find("scalar.FLOAT32")->f, static_cast<double>(-1.25e-3f));
  EXPECT_EQ(g->find("scalar.FLOAT64")->f, 0.1);
  EXPECT_EQ(g->find("array.FLOAT32")->floats, (std::vector<double>{1.5, -0.0, static_cast<double>(3e38f), std::ldexp(1.0, -149)}));
  EXPECT_TRUE(std::signbit(g->find("array.FLOAT32")->floats[1]));
  EXPECT_EQ(g->find("array.FLOAT64")->floats, (std::vector<double>{0.1, -1e300, 4.9e-324}));
  EXPECT_EQ(g->get_string("scalar.STRING"), with_nul);
  EXPECT_EQ(g->get_string("empty.STRING"), "");
  EXPECT_EQ(g->find("array.STRING")->strings, (std::vector<std::string>{"", "hello", with_nul, std::string(1000, 'x')}));
  EXPECT_EQ(g->find("array.empty")->array_size(), 0u);
  EXPECT_EQ(g->find("array.empty")->elem_type, GgufType::INT32);
  EXPECT_EQ(g->get_int("typed.u32"), 7);
  EXPECT_EQ(g->find("typed.u32")->type, GgufType::UINT32);
  EXPECT_EQ(g->get_int("typed.i32"), -7);
  EXPECT_EQ(g->get_int("typed.u64"), int64_t{1} << 40);
  EXPECT_EQ(g->get_float("typed.f32"), 0.75);
  EXPECT_FALSE(g->get_bool_or("typed.bool", true));
  EXPECT_EQ(g->find("typed.af32")->floats, (std::vector<double>{0.5, -2.0}));
  EXPECT_EQ(g->metadata().size(), 2 * ints.size() + 4 + 4 + 6);
  EXPECT_TRUE(g->tensors().tensors().empty());
}

TEST(Gguf, Getters) {
  GgufWriter w;
  w.add_string("s", "text");
  w.add_int32("i", -3);
  w.add_float32("f", 2.5f);
  w.add_bool("b", true);
  w.add_array_int32("a", {1});
  auto g = parse_bytes(w.serialize());
  EXPECT_EQ(g->get_int_or("missing", 9), 9);
  EXPECT_EQ(g->get_float("i"), -3.0);  // integers are accepted as floats
  EXPECT_EQ(g->get_float_or("missing", 1.5), 1.5);
  EXPECT_EQ(g->get_string_or("missing", "x"), "x");
  EXPECT_EQ(g->get_string_or("s", "x"), "text");
  EXPECT_TRUE(g->get_bool_or("b", false));
  EXPECT_ERROR_CONTAINS(g->get_int("s"), "mem.gguf: key 's' has type STRING, expected an integer");
  EXPECT_ERROR_CONTAINS(g->get_int("missing"), "mem.gguf: missing key 'missing'");
  EXPECT_ERROR_CONTAINS(g->get_float("s"), "expected a number");
  EXPECT_ERROR_CONTAINS(g->get_string("f"), "key 'f' has type FLOAT32, expected a string");
  EXPECT_ERROR_CONTAINS(g->get_int_or("a", 0), "key 'a' has type ARRAY of INT32");
}

TEST(Gguf, Alignments) {
  std::mt19937_64 rng(3);
  for (uint32_t alignment : {1u, 8u, 64u, 256u, 4096u}) {
    GgufWriter w;
    w.add_string("general.name", "x");
    w.set_alignment(alignment);
    const auto a = random_bytes(rng, 30), b = random_bytes(rng, 7), c = random_bytes(rng, 12);
    w.add_tensor("a", DType::F16, {3, 5}, a);
    w.add_tensor("b", DType::I8, {7}, b);
    w.add_tensor("c", DType::F32, {1, 3}, c);
    std::shared_ptr<MappedFile> mf;
    auto g = parse_bytes(w.serialize(), &mf);
    EXPECT_EQ(g->get_int("general.alignment"), alignment);
    EXPECT_EQ(g->find("general.alignment")->type, GgufType::UINT32);
    for (const auto& [name, bytes] : {std::pair{"a", a}, {"b", b}, {"c", c}}) {
      const StoredTensor& t = g->tensors().get(name);
      EXPECT_EQ(static_cast<size_t>(t.data - mf->data()) % alignment, 0u) << name << " " << alignment;
      EXPECT_EQ(std::memcmp(t.data, bytes.data(), bytes.size()), 0);
    }
  }
}

TEST(Gguf, WriterRejectsBadInput) {
  GgufWriter w;
  w.add_int32("k", 1);
  EXPECT_ERROR_CONTAINS(w.add_int32("k", 2), "duplicate metadata key 'k'");
  EXPECT_ERROR_CONTAINS(w.add_int32("", 2), "empty metadata key");
  EXPECT_ERROR_CONTAINS(w.set_alignment(48), "alignment 48 is not a power of two");
  EXPECT_ERROR_CONTAINS(w.add_value("v", GgufValue{.type = GgufType::UINT8, .i = 256}), "does not fit UINT8");
  EXPECT_ERROR_CONTAINS(w.add_value("n", GgufValue{.type = GgufType::ARRAY, .elem_type = GgufType::ARRAY}), "nested");
  EXPECT_ERROR_CONTAINS(w.add_tensor("t", DType::F32, {2, 3}, std::vector<uint8_t>(20)), "20 bytes given, shape needs 24");
  EXPECT_ERROR_CONTAINS(w.add_tensor("q", DType::Q4_0, {2, 16}, std::vector<uint8_t>(18)), "whole number of blocks");
  EXPECT_ERROR_CONTAINS(w.add_tensor("u", DType::U32, {1}, std::vector<uint8_t>(4)), "has no GGUF id");
  w.add_tensor("t", DType::F32, {1}, std::vector<uint8_t>(4));
  EXPECT_ERROR_CONTAINS(w.add_tensor("t", DType::F32, {1}, std::vector<uint8_t>(4)), "duplicate name");
}

namespace {

// Shard `no` (0-based) of `count`, holding tensors named "s<no>.t<k>".
GgufWriter make_shard(int no, int count, int tensors_total, std::mt19937_64& rng) {
  GgufWriter w;
  if (no == 0) w.add_string("general.architecture", "llama");
  w.add_value("split.no", GgufValue{.type = GgufType::UINT16, .i = no});
  w.add_value("split.count", GgufValue{.type = GgufType::UINT16, .i = count});
  w.add_int32("split.tensors.count", tensors_total);
  for (int k = 0; k <= no; ++k)
    w.add_tensor(std::string("s").append(std::to_string(no)).append(".t").append(std::to_string(k)), DType::F32, {2, 3}, random_bytes(rng, 24));
  return w;
}

std::string shard_name(const TempDir& dir, int no, int count) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05d-of-%05d.gguf", no, count);
  return dir.file(buf);
}

}  // namespace

TEST(Gguf, SplitModelOpensFromAnyShard) {
  TempDir dir;
  std::mt19937_64 rng(5);
  for (int no = 0; no < 3; ++no) make_shard(no, 3, 6, rng).write(shard_name(dir, no + 1, 3));
  for (int from = 1; from <= 3; ++from) {
    auto g = GgufFile::open(shard_name(dir, from, 3));
    EXPECT_EQ(g->path(), shard_name(dir, 1, 3));
    EXPECT_EQ(g->get_string("general.architecture"), "llama");  // metadata of the first shard
    EXPECT_EQ(g->get_int("split.no"), 0);
    EXPECT_EQ(g->tensors().tensors().size(), 6u);
    EXPECT_EQ(g->tensors().get("s2.t2").file, shard_name(dir, 3, 3));
    EXPECT_EQ(g->tensors().get("s0.t0").file, shard_name(dir, 1, 3));
  }
}

TEST(Gguf, SplitModelErrors) {
  std::mt19937_64 rng(6);
  {  // a missing shard
    TempDir dir;
    make_shard(0, 3, 6, rng).write(shard_name(dir, 1, 3));
    make_shard(1, 3, 6, rng).write(shard_name(dir, 2, 3));
    EXPECT_ERROR_CONTAINS(GgufFile::open(shard_name(dir, 1, 3)), shard_name(dir, 3, 3) + ": missing shard 3 of 3");
  }
  {  // split.count disagrees with the names
    TempDir dir;
    make_shard(0, 2, 3, rng).write(shard_name(dir, 1, 3));
    make_shard(1, 2, 3, rng).write(shard_name(dir, 2, 3));
    make_shard(2, 2, 3, rng).write(shard_name(dir, 3, 3));
    EXPECT_ERROR_CONTAINS(GgufFile::open(shard_name(dir, 2, 3)), "split.count is 2 but the file name says 3 shards");
  }
  {  // split.tensors.count disagrees with the tensors found
    TempDir dir;
    make_shard(0, 2, 4, rng).write(shard_name(dir, 1, 2));
    make_shard(1, 2, 4, rng).write(shard_name(dir, 2, 2));
    EXPECT_ERROR_CONTAINS(GgufFile::open(shard_name(dir, 1, 2)), "split.tensors.count is 4 but the 2 shards hold 3 tensors");
  }
  {  // shards in the wrong order
    TempDir dir;
    make_shard(1, 2, 3, rng).write(shard_name(dir, 1, 2));
    make_shard(0, 2, 3, rng).write(shard_name(dir, 2, 2));
    EXPECT_ERROR_CONTAINS(GgufFile::open(shard_name(dir, 1, 2)), "split.no is 1, expected 0");
  }
  {  // the same tensor in two shards
    TempDir dir;
    GgufWriter a = make_shard(0, 2, 2, rng), b = make_shard(1, 2, 2, rng);
    b = GgufWriter();
    b.add_value("split.no", GgufValue{.type = GgufType::UINT16, .i = 1});
    b.add_value("split.count", GgufValue{.type = GgufType::UINT16, .i = 2});
    b.add_tensor("s0.t0", DType::F32, {1}, random_bytes(rng, 4));
    a.write(shard_name(dir, 1, 2));
    b.write(shard_name(dir, 2, 2));
    EXPECT_ERROR_CONTAINS(GgufFile::open(shard_name(dir, 1, 2)),
                          shard_name(dir, 2, 2) + ": duplicate tensor 's0.t0' (also in " + shard_name(dir, 1, 2) + ")");
  }
  {  // a shard renamed so its siblings cannot be found
    TempDir dir;
    make_shard(0, 2, 3, rng).write(dir.file("renamed.gguf"));
    EXPECT_ERROR_CONTAINS(GgufFile::open(dir.file("renamed.gguf")), "split.count is 2 but the file name does not follow");
  }
}
