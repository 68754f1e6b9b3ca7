// Tensor: a non-owning view of memory on some device. Shapes are row-major in the
// numpy/PyTorch order (shape[0] is the outermost, slowest axis; the last axis is
// contiguous), which is the reverse of GGUF's `ne` order. Views are plain values: they
// never allocate or free, so passing them around costs nothing and owns nothing.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>

#include "core/dtype.h"
#include "core/error.h"

namespace hearth {

enum class Device : int32_t { CPU = 0, CUDA = 1 };

struct Tensor {
  static constexpr int kMaxDims = 4;

  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};  // only the first ndim entries are meaningful

  Tensor() = default;
  Tensor(void* data_, DType dtype_, std::initializer_list<int64_t> dims, Device device_ = Device::CPU)
      : data(data_), dtype(dtype_), device(device_) {
    HEARTH_ASSERT(dims.size() <= kMaxDims);
    for (int64_t d : dims) shape[ndim++] = d;
  }

  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  // Rows when viewed as a matrix whose last axis is contiguous.
  int64_t rows() const { return ndim == 0 ? 1 : numel() / shape[ndim - 1]; }
  int64_t cols() const { return ndim == 0 ? 1 : shape[ndim - 1]; }

  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }
  float* f32() const {
    HEARTH_ASSERT(dtype == DType::F32);
    return static_cast<float*>(data);
  }
};

}  // namespace hearth
