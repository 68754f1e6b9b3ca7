// A read-only memory mapping of a whole file. Model weights are used straight from the
// mapping (no copy, no conversion), so resident memory follows what is actually touched.
// An empty file is a valid mapping of size 0 (data() is then null). from_bytes() wraps a
// buffer in memory the same way, so parsers can be fed (and fuzzed) without a file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hearth {

class MappedFile {
 public:
  // Maps `path` read-only. Throws hearth::Error "PATH: reason" when it cannot.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // Owns `bytes` and presents them as the contents of a file called `name`.
  static std::shared_ptr<MappedFile> from_bytes(std::string name, std::vector<uint8_t> bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;          // data_ comes from mmap and is unmapped on destruction
  std::vector<uint8_t> owned_;   // the buffer of from_bytes()
};

}  // namespace hearth
