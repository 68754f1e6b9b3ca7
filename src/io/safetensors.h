// Hugging Face safetensors: an 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets}, then the raw data. Every offset is checked
// against the file; overlapping or out-of-range tensors are an Error naming the file.
// A model folder holds model.safetensors or shards listed in model.safetensors.index.json.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/tensor_store.h"

namespace hearth {

// Adds every tensor of one .safetensors file to `store`; returns the header's
// "__metadata__" entries (e.g. {"format": "mlx"}).
std::map<std::string, std::string> load_safetensors_file(const std::string& path, TensorStore& store);
// The same for a file already mapped (or bytes in memory); the fuzzer's entry point.
std::map<std::string, std::string> load_safetensors(std::shared_ptr<MappedFile> file, TensorStore& store);

// Loads a model folder: model.safetensors, or the shards named by
// model.safetensors.index.json (each shard once), or failing that every *.safetensors
// file in the folder. Returns the merged "__metadata__".
std::map<std::string, std::string> load_safetensors_folder(const std::string& dir, TensorStore& store);

// Writes tensors (numpy-order shapes, raw little-endian bytes) to one safetensors file.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The bytes write_safetensors writes.
std::vector<uint8_t> serialize_safetensors(const std::vector<SafetensorsEntry>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

}  // namespace hearth
