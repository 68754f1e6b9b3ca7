// safetensors: a file with a hand-written JSON header (independent of the writer),
// writer -> reader round trips over every dtype with random data and odd shapes, model
// folders (single file, index + shards, plain *.safetensors), and hostile headers.
#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "core/half.h"

#include "io/safetensors.h"
#include "io_test_util.h"

using namespace hearth;
using namespace hearth::test;

namespace {

// A safetensors file from header text and `data_bytes` bytes of data.
std::vector<uint8_t> st_file(const std::string& json, size_t data_bytes, uint8_t fill = 0) {
  Bytes b;
  b.u64(json.size()).raw(json);
  b.b.resize(b.b.size() + data_bytes, fill);
  return b.b;
}

std::string st_error(const std::vector<uint8_t>& bytes) {
  return error_of([&] {
    TensorStore store;
    load_safetensors(MappedFile::from_bytes("x.safetensors", bytes), store);
  });
}

#define EXPECT_ST_ERROR(bytes, text)                                            \
  do {                                                                          \
    const std::string m_ = st_error(bytes);                                     \
    EXPECT_EQ(m_.rfind("x.safetensors: ", 0), 0u) << m_;                        \
    EXPECT_NE(m_.find(text), std::string::npos) << "message: " << m_;           \
    EXPECT_EQ(m_.find('\n'), std::string::npos) << m_;                          \
  } while (0)

std::string entry(const std::string& dtype, const std::string& shape, uint64_t begin, uint64_t end) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":[)" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
}

}  // namespace

TEST(Safetensors, ReadsHandWrittenHeader) {
  // Unpadded header (odd length), tensors not in offset order, metadata first.
  const std::string json = R"({"__metadata__":{"format":"mlx"},"b":)" + entry("BF16", "[3]", 16, 22) +
                           R"(,"a":)" + entry("F32", "[2, 2]", 0, 16) + "}";
  Bytes b;
  b.u64(json.size()).raw(json).f32(1).f32(2).f32(3).f32(4).u16(0x3f80).u16(0xc000).u16(0x4040);
  auto file = MappedFile::from_bytes("hand.safetensors", b.b);
  TensorStore store;
  const auto meta = load_safetensors(file, store);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"format", "mlx"}}));
  const StoredTensor& a = store.get("a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.nbytes, 16u);
  EXPECT_EQ(a.data, file->data() + 8 + json.size());
  float last;
  std::memcpy(&last, a.data + 12, 4);
  EXPECT_EQ(last, 4.0f);
  const StoredTensor& bt = store.get("b");
  EXPECT_EQ(bt.dtype, DType::BF16);
  EXPECT_EQ(bt.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(bt.data, a.data + 16);
  EXPECT_EQ(bt.file, "hand.safetensors");
  EXPECT_EQ(store.origin(), "hand.safetensors");
}

TEST(Safetensors, RoundTripEveryDtype) {
  std::mt19937_64 rng(9);
  TempDir dir;
  std::vector<SafetensorsEntry> entries;
  const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8,
                         DType::I16, DType::I32, DType::I64,  DType::U8,  DType::U32};
  for (DType t : types) {
    const std::vector<int64_t> shape = {1 + static_cast<int64_t>(rng() % 5), 3, 1 + static_cast<int64_t>(rng() % 17)};
    const size_t n = static_cast<size_t>(shape[0] * shape[1] * shape[2] * dtype_info(t).block_bytes);
    entries.push_back({"model.layers.0." + std::string(dtype_name(t)), t, shape, random_bytes(rng, n)});
  }
  entries.push_back({"scalar", DType::F32, {}, random_bytes(rng, 4)});
  entries.push_back({"empty", DType::BF16, {0, 7}, {}});
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode"}};
  write_safetensors(dir.file("m.safetensors"), entries, meta);

  const auto bytes = serialize_safetensors(entries, meta);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // header padded so the data is 8-byte aligned
  EXPECT_EQ(bytes[8], '{');

  TensorStore store;
  EXPECT_EQ(load_safetensors_file(dir.file("m.safetensors"), store), meta);
  ASSERT_EQ(store.tensors().size(), entries.size());
  for (const SafetensorsEntry& e : entries) {
    const StoredTensor& t = store.get(e.name);
    EXPECT_EQ(t.dtype, e.dtype) << e.name;
    EXPECT_EQ(t.shape, e.shape) << e.name;
    ASSERT_EQ(t.nbytes, e.bytes.size()) << e.name;
    if (!e.bytes.empty()) {
      EXPECT_EQ(std::memcmp(t.data, e.bytes.data(), e.bytes.size()), 0) << e.name;
    }
  }
}

TEST(Safetensors, WriterRejectsBadInput) {
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"a", DType::F32, {2}, std::vector<uint8_t>(4)}}), "do not match shape [2]");
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"a", DType::Q4_0, {32}, std::vector<uint8_t>(18)}}), "no safetensors dtype");
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"a", DType::U8, {1}, {1}}, {"a", DType::U8, {1}, {2}}}), "duplicate name");
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"__metadata__", DType::U8, {1}, {1}}}), "bad tensor name");
}

TEST(Safetensors, Folders) {
  std::mt19937_64 rng(10);
  auto tensor = [&](const std::string& name) { return SafetensorsEntry{name, DType::F16, {2, 3}, random_bytes(rng, 12)}; };
  {  // model.safetensors wins over anything else in the folder
    TempDir dir;
    write_safetensors(dir.file("model.safetensors"), {tensor("x")}, {{"format", "pt"}});
    write_safetensors(dir.file("other.safetensors"), {tensor("y")});
    TensorStore store;
    EXPECT_EQ(load_safetensors_folder(dir.path().string(), store).at("format"), "pt");
    EXPECT_EQ(store.tensors().size(), 1u);
  }
  {  // index + shards; a stray file not in the index is ignored
    TempDir dir;
    write_safetensors(dir.file("model-00001-of-00002.safetensors"), {tensor("a"), tensor("b")}, {{"format", "mlx"}});
    write_safetensors(dir.file("model-00002-of-00002.safetensors"), {tensor("c")}, {{"format", "pt"}, {"x", "1"}});
    write_safetensors(dir.file("stray.safetensors"), {tensor("a")});
    const std::string index = R"({"metadata":{"total_size":36},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                              R"("b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})";
    write_file(dir.file("model.safetensors.index.json"), std::vector<uint8_t>(index.begin(), index.end()));
    TensorStore store;
    const auto meta = load_safetensors_folder(dir.path().string(), store);
    EXPECT_EQ(meta, (std::map<std::string, std::string>{{"format", "mlx"}, {"x", "1"}}));  // first file wins
    EXPECT_EQ(store.tensors().size(), 3u);
    EXPECT_EQ(store.get("c").file, dir.file("model-00002-of-00002.safetensors"));

    const std::string bad = R"({"weight_map":{"a":"model-00001-of-00002.safetensors","zz":"model-00002-of-00002.safetensors"}})";
    write_file(dir.file("model.safetensors.index.json"), std::vector<uint8_t>(bad.begin(), bad.end()));
    TensorStore s2;
    EXPECT_ERROR_CONTAINS(load_safetensors_folder(dir.path().string(), s2),
                          "model.safetensors.index.json: tensor 'zz' is listed in 'model-00002-of-00002.safetensors' but not found there");
    const std::string evil = R"({"weight_map":{"a":"../model-00001-of-00002.safetensors"}})";
    write_file(dir.file("model.safetensors.index.json"), std::vector<uint8_t>(evil.begin(), evil.end()));
    TensorStore s3;
    EXPECT_ERROR_CONTAINS(load_safetensors_folder(dir.path().string(), s3), "not a file in the folder");
    write_file(dir.file("model.safetensors.index.json"), {'{', '}'});
    TensorStore s4;
    EXPECT_ERROR_CONTAINS(load_safetensors_folder(dir.path().string(), s4), "index.json: no weight_map object");
  }
  {  // no index: every *.safetensors; the same tensor twice is an error naming both files
    TempDir dir;
    write_safetensors(dir.file("b.safetensors"), {tensor("b")});
    write_safetensors(dir.file("a.safetensors"), {tensor("a")});
    TensorStore store;
    load_safetensors_folder(dir.path().string(), store);
    EXPECT_EQ(store.tensors().size(), 2u);
    write_safetensors(dir.file("c.safetensors"), {tensor("a")});
    TensorStore s2;
    EXPECT_ERROR_CONTAINS(load_safetensors_folder(dir.path().string(), s2),
                          dir.file("c.safetensors") + ": duplicate tensor 'a' (also in " + dir.file("a.safetensors") + ")");
  }
  {
    TempDir dir;
    TensorStore store;
    EXPECT_ERROR_CONTAINS(load_safetensors_folder(dir.path().string(), store), "no model.safetensors");
    EXPECT_ERROR_CONTAINS(load_safetensors_folder(dir.file("nope"), store), "nope: not a directory");
  }
}

// The model fixtures were written by Hugging Face transformers (the safetensors library),
// an independent writer. Shapes must match config.json, the tensors must tile the file,
// and since the weights were rounded to float16-representable values before saving,
// every float read must survive an f32 -> f16 -> f32 round trip (a pointer off by a few
// bytes, or into the header, would read values that do not).
TEST(Safetensors, ReadsTransformersFixtures) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(HEARTH_SOURCE_DIR) / "fixtures" / "models";
  if (!fs::is_directory(root)) GTEST_SKIP() << "no " << root;
  int folders = 0;
  for (const auto& dir : fs::directory_iterator(root)) {
    if (!fs::exists(dir.path() / "model.safetensors") || !fs::exists(dir.path() / "config.json")) continue;
    ++folders;
    std::ifstream config_file(dir.path() / "config.json");
    const auto config = nlohmann::json::parse(config_file);
    TensorStore store;
    const auto meta = load_safetensors_folder(dir.path().string(), store);
    EXPECT_EQ(meta.at("format"), "pt");
    const int64_t hidden = config.at("hidden_size"), heads = config.at("num_attention_heads");
    const int64_t head_dim = config.contains("head_dim") && !config["head_dim"].is_null() ? config["head_dim"].get<int64_t>()
                                                                                          : hidden / heads;
    const int64_t layers = config.at("num_hidden_layers");
    EXPECT_EQ(store.get("model.embed_tokens.weight").shape,
              (std::vector<int64_t>{config.at("vocab_size").get<int64_t>(), hidden}));
    EXPECT_EQ(store.get("model.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{heads * head_dim, hidden}));
    EXPECT_EQ(store.get("model.norm.weight").shape, (std::vector<int64_t>{hidden}));
    EXPECT_TRUE(store.contains("model.layers." + std::to_string(layers - 1) + ".mlp.down_proj.weight"));
    EXPECT_FALSE(store.contains("model.layers." + std::to_string(layers) + ".mlp.down_proj.weight"));

    // The tensors tile the data region exactly: 8 + header + data = file size.
    uint64_t header = 0;
    std::ifstream raw(dir.path() / "model.safetensors", std::ios::binary);
    raw.read(reinterpret_cast<char*>(&header), 8);
    EXPECT_EQ(8 + header + store.total_bytes(), fs::file_size(dir.path() / "model.safetensors")) << dir.path();
    for (const auto& [name, t] : store.tensors()) {
      ASSERT_EQ(t.dtype, DType::F32) << name;
      size_t bad = 0;
      for (int64_t k = 0; k < t.numel(); ++k) {
        float f;
        std::memcpy(&f, t.data + 4 * k, 4);
        bad += f16_to_f32(f32_to_f16(f)) != f;
      }
      EXPECT_EQ(bad, 0u) << dir.path() << " " << name;
    }
  }
  EXPECT_GE(folders, 1);
}

TEST(SafetensorsHostile, HeaderLength) {
  EXPECT_ST_ERROR(std::vector<uint8_t>{}, "file too small for a safetensors header (0 bytes)");
  EXPECT_ST_ERROR(std::vector<uint8_t>(7, 0), "file too small");
  EXPECT_ST_ERROR(Bytes().u64(100).raw("{}").b, "header length 100 runs past end of file (size 10)");
  EXPECT_ST_ERROR(Bytes().u64(std::numeric_limits<uint64_t>::max()).raw("{}").b, "is over the limit");
  EXPECT_ST_ERROR(Bytes().u64(200'000'000).raw("{}").b, "header length 200000000 is over the limit of 100000000 bytes");
  EXPECT_ST_ERROR(Bytes().u64(0).b, "header is not a JSON object");
  EXPECT_EQ(st_error(st_file("{}", 0)), "(no error)");
  EXPECT_EQ(st_error(st_file("{}      ", 0)), "(no error)");  // space padding
}

TEST(SafetensorsHostile, HeaderJson) {
  EXPECT_ST_ERROR(st_file("[1, 2]", 0), "header is not a JSON object");
  EXPECT_ST_ERROR(st_file("{\"a\": ", 0), "header is not valid JSON");
  EXPECT_ST_ERROR(st_file("{} trailing", 0), "header is not valid JSON");
  EXPECT_ST_ERROR(st_file("{\"a\":\"\xff\xfe\"}", 0), "header is not valid JSON");  // bad UTF-8
  EXPECT_ST_ERROR(st_file(R"({"a":1})", 0), "tensor 'a': entry is not an object");
  const std::string e = entry("F32", "[1]", 0, 4);
  EXPECT_ST_ERROR(st_file(R"({"a":)" + e + R"(,"a":)" + e + "}", 4), "header: duplicate key 'a'");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4), "duplicate key 'dtype'");
  EXPECT_ST_ERROR(st_file(R"({"__metadata__":{"format":1}})", 0), "__metadata__ entry 'format' is not a string");
  EXPECT_ST_ERROR(st_file(R"({"__metadata__":[]})", 0), "__metadata__ is not an object");
  EXPECT_ST_ERROR(st_file(R"({"":)" + e + "}", 4), "empty tensor name");
  EXPECT_ST_ERROR(st_file(R"({"a\nb'":1})", 0), "tensor 'a\\x0ab\\x27': entry is not an object");  // escaped name
  EXPECT_ST_ERROR(st_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), "tensor 'a': missing or non-string dtype");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "missing or non-array shape");
  EXPECT_ST_ERROR(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), "not a [begin, end] pair");
  EXPECT_ST_ERROR(st_file(std::string(200000, '['), 0), "not a JSON object");
  EXPECT_ST_ERROR(st_file("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", 0), "entry is not an object");
}

TEST(SafetensorsHostile, Tensors) {
  auto one = [](const std::string& e, size_t data) { return st_file(R"({"w":)" + e + "}", data); };
  EXPECT_ST_ERROR(one(entry("F8_E4M3", "[4]", 0, 4), 4), "tensor 'w': unknown dtype 'F8_E4M3'");
  EXPECT_ST_ERROR(one(entry("f32", "[4]", 0, 16), 16), "unknown dtype 'f32'");
  EXPECT_ST_ERROR(one(entry("F32", "[-1]", 0, 4), 4), "shape entries must be non-negative integers");
  EXPECT_ST_ERROR(one(entry("F32", "[1.5]", 0, 4), 4), "shape entries must be non-negative integers");
  EXPECT_ST_ERROR(one(entry("F32", "[\"2\"]", 0, 8), 8), "shape entries must be non-negative integers");
  EXPECT_ST_ERROR(one(entry("F32", "[18446744073709551615]", 0, 4), 4), "shape entries must be non-negative");
  EXPECT_ST_ERROR(one(entry("F32", "[4294967296, 4294967296]", 0, 4), 4), "element count overflows int64");
  EXPECT_ST_ERROR(one(entry("F32", "[4294967296, 4294967296, 0]", 0, 0), 4), "element count overflows int64");
  EXPECT_ST_ERROR(one(entry("F64", "[4611686018427387904]", 0, 4), 4), "byte size overflows int64");
  EXPECT_ST_ERROR(one(entry("F32", "[1]", 8, 4), 8), "data_offsets [8, 4] are out of order");
  EXPECT_ST_ERROR(one(entry("F32", "[4]", 0, 16), 15), "data_offsets [0, 16] run past end of data (15 bytes after the header)");
  EXPECT_ST_ERROR(one(entry("F32", "[1]", 18446744073709551611ull, 18446744073709551615ull), 4), "run past end of data");
  EXPECT_ST_ERROR(one(entry("F32", "[2, 2]", 0, 12), 16), "data_offsets [0, 12] hold 12 bytes but shape [2, 2] of F32 needs 16");
  EXPECT_ST_ERROR(one(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", 4), "data_offsets must be non-negative integers");
  const std::string two = R"({"a":)" + entry("F32", "[4]", 0, 16) + R"(,"b":)" + entry("F32", "[2]", 8, 16) + "}";
  EXPECT_ST_ERROR(st_file(two, 16), "tensors 'a' and 'b' overlap");
  // Holes between tensors and zero-size tensors anywhere are fine.
  const std::string holes = R"({"a":)" + entry("U8", "[4]", 4, 8) + R"(,"z":)" + entry("U8", "[0]", 6, 6) + "}";
  EXPECT_EQ(st_error(st_file(holes, 12)), "(no error)");
}

TEST(SafetensorsHostile, EveryTruncationIsAnError) {
  std::mt19937_64 rng(12);
  const auto full = serialize_safetensors({{"a", DType::BF16, {3, 5}, random_bytes(rng, 30)},
                                           {"b", DType::I32, {2}, random_bytes(rng, 8)}},
                                          {{"format", "pt"}});
  ASSERT_EQ(st_error(full), "(no error)");
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string m = st_error(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(n)));
    ASSERT_EQ(m.rfind("x.safetensors: ", 0), 0u) << "prefix of " << n << " bytes: " << m;
  }
}
