// Model::identity(): a 64-bit name for "these weights", so the prefix cache's files from
// one model are never used with another. Hashing every byte of a multi-gigabyte file at
// start-up would cost seconds, so it hashes what tells models apart cheaply: every
// tensor's name, type, shape and size (the layout), plus 4 KiB samples from the start,
// middle and end of each tensor's data (two synthetic models of the same shape differ
// there). A model re-quantized, fine-tuned or converted gets a new identity.
#include <cstring>

#include "model/model.h"

namespace hearth {
namespace {

struct Fnv64 {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void u64(uint64_t v) { bytes(&v, sizeof v); }
  void str(std::string_view s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
};

}  // namespace

uint64_t Model::identity() const {
  const TensorStore& store = gguf_ ? gguf_->tensors() : store_;
  Fnv64 f;
  f.str("hearth model identity v1");
  f.u64(static_cast<uint64_t>(config_.num_hidden_layers));
  f.u64(static_cast<uint64_t>(config_.hidden_size));
  f.u64(static_cast<uint64_t>(config_.num_attention_heads));
  f.u64(static_cast<uint64_t>(config_.num_key_value_heads));
  f.u64(static_cast<uint64_t>(config_.head_dim));
  f.u64(static_cast<uint64_t>(config_.vocab_size));
  const double theta = config_.rope_theta;
  f.bytes(&theta, sizeof theta);
  constexpr uint64_t kSample = 4096;
  for (const auto& [name, t] : store.tensors()) {  // a std::map: a fixed order
    f.str(name);
    f.str(dtype_name(t.dtype));
    for (int64_t d : t.shape) f.u64(static_cast<uint64_t>(d));
    f.u64(t.nbytes);
    if (!t.data || t.nbytes == 0) continue;
    const uint64_t n = std::min(kSample, t.nbytes);
    f.bytes(t.data, n);
    f.bytes(t.data + (t.nbytes - n) / 2, n);
    f.bytes(t.data + t.nbytes - n, n);
  }
  return f.h == 0 ? 1 : f.h;
}

}  // namespace hearth
