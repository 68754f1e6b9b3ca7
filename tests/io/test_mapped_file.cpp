// MappedFile and TensorStore: mapping real files (contents, empty files, errors) and the
// store's duplicate and missing-tensor messages.
#include <gtest/gtest.h>

#include "io/mapped_file.h"
#include "io/tensor_store.h"
#include "io_test_util.h"

using namespace hearth;
using namespace hearth::test;

TEST(MappedFile, MapsContents) {
  TempDir dir;
  std::mt19937_64 rng(1);
  const auto bytes = random_bytes(rng, 12345);  // not a multiple of the page size
  write_file(dir.file("a.bin"), bytes);
  auto f = MappedFile::open(dir.file("a.bin"));
  ASSERT_EQ(f->size(), bytes.size());
  EXPECT_EQ(f->path(), dir.file("a.bin"));
  EXPECT_EQ(std::memcmp(f->data(), bytes.data(), bytes.size()), 0);
}

TEST(MappedFile, EmptyFileHasSizeZero) {
  TempDir dir;
  write_file(dir.file("empty"), {});
  auto f = MappedFile::open(dir.file("empty"));
  EXPECT_EQ(f->size(), 0u);
}

TEST(MappedFile, Errors) {
  TempDir dir;
  const std::string missing = dir.file("missing.gguf");
  EXPECT_ERROR_CONTAINS(MappedFile::open(missing), missing + ": No such file or directory");
  EXPECT_ERROR_CONTAINS(MappedFile::open(dir.path().string()), ": is a directory");
}

TEST(MappedFile, FromBytes) {
  auto f = MappedFile::from_bytes("mem.bin", {1, 2, 3});
  ASSERT_EQ(f->size(), 3u);
  EXPECT_EQ(f->data()[2], 3);
  EXPECT_EQ(f->path(), "mem.bin");
  EXPECT_EQ(MappedFile::from_bytes("none", {})->size(), 0u);
}

TEST(TensorStore, AddFindGetMerge) {
  TensorStore a;
  a.add({.name = "w", .dtype = DType::F32, .shape = {2, 3}, .nbytes = 24, .file = "a.gguf"});
  EXPECT_EQ(a.origin(), "a.gguf");
  EXPECT_EQ(a.get("w").numel(), 6);
  EXPECT_EQ(a.find("x"), nullptr);
  EXPECT_ERROR_CONTAINS(a.get("x"), "a.gguf: missing tensor x");
  EXPECT_ERROR_CONTAINS(a.add({.name = "w", .file = "b.gguf"}), "b.gguf: duplicate tensor 'w' (also in a.gguf)");

  TensorStore b;
  b.add({.name = "v", .dtype = DType::F16, .shape = {5}, .nbytes = 10, .file = "b.gguf"});
  a.merge(std::move(b));
  EXPECT_TRUE(a.contains("v"));
  EXPECT_EQ(a.total_bytes(), 34u);
  TensorStore c;
  c.add({.name = "v", .file = "c.gguf"});
  EXPECT_ERROR_CONTAINS(a.merge(std::move(c)), "c.gguf: duplicate tensor 'v' (also in b.gguf)");
}
