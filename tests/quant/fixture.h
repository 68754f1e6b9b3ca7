// Reading fixtures/quant/*.bin (written by scripts/quant_reference.py) in tests: the
// whole file is loaded and consumed front to back by a cursor that fails the test, rather
// than reading out of bounds, when the file is shorter than its header says.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace hearth::test {

inline std::string quant_fixture_path(const std::string& name) {
  return std::string(HEARTH_SOURCE_DIR) + "/fixtures/quant/" + name;
}

class FixtureReader {
 public:
  explicit FixtureReader(const std::string& name) : path_(quant_fixture_path(name)) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) throw std::runtime_error(path_ + ": cannot open (run /usr/bin/python3 scripts/quant_reference.py)");
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  void expect_magic(const char* magic) {
    const std::vector<uint8_t> got = take(4);
    if (std::memcmp(got.data(), magic, 4) != 0) throw std::runtime_error(path_ + ": bad magic");
  }
  uint32_t u32() {
    uint32_t v = 0;
    std::memcpy(&v, take(4).data(), 4);
    return v;
  }
  std::vector<uint8_t> take(size_t n) {
    if (pos_ + n > bytes_.size()) throw std::runtime_error(path_ + ": truncated");
    std::vector<uint8_t> out(bytes_.begin() + static_cast<std::ptrdiff_t>(pos_),
                             bytes_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return out;
  }
  template <typename T>
  std::vector<T> take_array(size_t count) {
    std::vector<T> out(count);
    const std::vector<uint8_t> raw = take(count * sizeof(T));
    if (count > 0) std::memcpy(out.data(), raw.data(), raw.size());
    return out;
  }
  bool at_end() const { return pos_ == bytes_.size(); }

 private:
  std::string path_;
  std::vector<uint8_t> bytes_;
  size_t pos_ = 0;
};

// Counts positions where two float arrays differ in their bits (so -0 != +0), reporting
// the first few through gtest.
inline int count_bit_mismatches(const float* got, const float* want, size_t n, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t a, b;
    std::memcpy(&a, &got[i], 4);
    std::memcpy(&b, &want[i], 4);
    if (a != b && bad++ < 5) ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", want " << want[i];
  }
  return bad;
}

// Standard normal floats from a fixed-seed generator (tests stay reproducible).
inline std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

// sqrt(sum (x - y)^2 / sum x^2): the error measure every round-trip bound uses.
inline double relative_rms_error(const float* x, const float* y, size_t n) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    ref += static_cast<double>(x[i]) * x[i];
  }
  return ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
}

}  // namespace hearth::test
