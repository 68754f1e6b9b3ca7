// TensorStore: the seam between file formats and models. A loader (GGUF, safetensors)
// fills it with named tensors that point into mapped files; the model loader looks
// tensors up by name and never parses bytes. Shapes are in numpy order (outermost axis
// first), so a GGUF tensor with ne = [in, out] is stored here as shape {out, in}.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/mapped_file.h"

namespace hearth {

struct StoredTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;   // numpy order
  const uint8_t* data = nullptr;  // inside a mapping owned by the store
  uint64_t nbytes = 0;            // checked against shape and dtype by the loader
  std::string file;               // the file it came from, for error messages

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class TensorStore {
 public:
  void keep_alive(std::shared_ptr<MappedFile> file) { files_.push_back(std::move(file)); }
  // Adds a tensor; a second tensor with the same name is an error naming both files.
  void add(StoredTensor tensor);
  // Moves every tensor and mapping of `other` into this store (shards, folder files).
  void merge(TensorStore&& other);

  const StoredTensor* find(const std::string& name) const;
  // Like find, but a missing tensor is an Error: "FILE: missing tensor NAME".
  const StoredTensor& get(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }

  const std::map<std::string, StoredTensor>& tensors() const { return tensors_; }
  // Where the tensors came from (first file), for messages.
  const std::string& origin() const { return origin_; }
  void set_origin(std::string origin) { origin_ = std::move(origin); }
  // Total bytes of tensor data.
  uint64_t total_bytes() const;

 private:
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, StoredTensor> tensors_;
  std::string origin_;
};

}  // namespace hearth
