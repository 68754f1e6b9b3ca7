// TensorStore: a name -> tensor map plus the mappings that keep the tensor data alive.
// Loaders check shapes and byte counts before calling add(); the store only guards
// against the same name coming from two places (two shards, two files of a folder).
#include "io/tensor_store.h"

#include "core/error.h"
#include "io/quote.h"

namespace hearth {

void TensorStore::add(StoredTensor tensor) {
  if (origin_.empty()) origin_ = tensor.file;
  auto it = tensors_.find(tensor.name);
  if (it != tensors_.end())
    fail(tensor.file + ": duplicate tensor " + quote_name(tensor.name) + " (also in " + it->second.file + ")");
  std::string name = tensor.name;
  tensors_.emplace(std::move(name), std::move(tensor));
}

void TensorStore::merge(TensorStore&& other) {
  for (auto& [name, t] : other.tensors_) add(std::move(t));
  for (auto& f : other.files_) keep_alive(std::move(f));
  other.tensors_.clear();
  other.files_.clear();
}

const StoredTensor* TensorStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const StoredTensor& TensorStore::get(const std::string& name) const {
  const StoredTensor* t = find(name);
  if (t == nullptr) fail((origin_.empty() ? std::string("tensor store") : origin_) + ": missing tensor " + name);
  return *t;
}

uint64_t TensorStore::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, t] : tensors_) total += t.nbytes;
  return total;
}

}  // namespace hearth
