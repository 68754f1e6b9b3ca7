// Fuzz target for the GGUF and safetensors parsers. Each input is parsed from memory as
// both formats (no temp file); a hearth::Error is the expected outcome for garbage, and
// anything else (a crash, an ASan/UBSan report, another exception type) is a finding.
// When a parse succeeds, every tensor byte is read so ASan checks that the data pointers
// really lie inside the input, and the byte counts are checked against the shapes.
//
// Built two ways: with libFuzzer (clang -fsanitize=fuzzer, see CMakeLists.txt), and with
// the self-contained mutating driver in fuzz_driver.cpp that CTest runs.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"

namespace {

// A parser accepted something it should not have: report and stop like a sanitizer would.
[[noreturn]] void broken(const char* what, const std::string& name) {
  std::fprintf(stderr, "fuzz_parsers: invariant broken: %s (%s)\n", what, name.c_str());
  std::abort();
}

// Reads every byte of every tensor and checks nbytes against shape and dtype.
void touch(const hearth::TensorStore& store) {
  volatile uint8_t sink = 0;
  uint8_t acc = 0;
  for (const auto& [name, t] : store.tensors()) {
    // Every partial product of the dimensions, in any order, must fit in int64.
    int64_t nonzero = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(nonzero, d == 0 ? 1 : d, &nonzero)) broken("shape overflows", t.name);
    }
    const int64_t numel = t.numel();
    const hearth::DTypeInfo& info = hearth::dtype_info(t.dtype);
    const int64_t row = t.shape.empty() ? 1 : t.shape.back();
    if (row % info.block_elems != 0) broken("rows are not whole blocks", t.name);
    if (static_cast<uint64_t>(numel / info.block_elems * info.block_bytes) != t.nbytes) broken("wrong nbytes", t.name);
    if (t.nbytes > 0 && t.data == nullptr) broken("null data", t.name);
    for (uint64_t k = 0; k < t.nbytes; ++k) acc = static_cast<uint8_t>(acc + t.data[k]);
  }
  sink = acc;
  (void)sink;
}

// Calls the typed getters on every key; wrong types must be Errors, nothing worse.
void read_metadata(const hearth::GgufFile& gguf) {
  for (const auto& [key, value] : gguf.metadata()) {
    try { gguf.get_int(key); } catch (const hearth::Error&) {}
    try { gguf.get_float(key); } catch (const hearth::Error&) {}
    try { gguf.get_string(key); } catch (const hearth::Error&) {}
    try { gguf.get_bool_or(key, false); } catch (const hearth::Error&) {}
    if (value.type == hearth::GgufType::ARRAY && value.array_size() > value.ints.size() + value.floats.size() +
                                                                          value.strings.size())
      broken("array_size() disagrees with the array", key);
  }
}

// Every message is one line that starts with the file name.
void check_message(const hearth::Error& e, const char* file) {
  const std::string m = e.what();
  if (m.rfind(std::string(file) + ": ", 0) != 0 || m.find('\n') != std::string::npos) broken("bad error message", m);
}

}  // namespace

// Parses `data` as GGUF and as safetensors; returns a bit mask of the parses that
// succeeded (1 GGUF, 2 safetensors), which the driver uses to grow its corpus.
int hearth_fuzz_parsers(const uint8_t* data, size_t size) {
  int ok = 0;
  try {
    auto gguf = hearth::GgufFile::parse(hearth::MappedFile::from_bytes("fuzz.gguf", std::vector<uint8_t>(data, data + size)));
    read_metadata(*gguf);
    touch(gguf->tensors());
    ok |= 1;
  } catch (const hearth::Error& e) {
    check_message(e, "fuzz.gguf");
  }
  try {
    hearth::TensorStore store;
    hearth::load_safetensors(hearth::MappedFile::from_bytes("fuzz.safetensors", std::vector<uint8_t>(data, data + size)),
                             store);
    touch(store);
    ok |= 2;
  } catch (const hearth::Error& e) {
    check_message(e, "fuzz.safetensors");
  }
  return ok;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hearth_fuzz_parsers(data, size);
  return 0;
}
