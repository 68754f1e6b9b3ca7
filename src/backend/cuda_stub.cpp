// The CUDA factory functions in builds without the CUDA toolkit (HEARTH_HAVE_CUDA off):
// cuda_available() is false and make_cuda_backend() explains why it cannot work.
#include "backend/backend.h"
#include "core/error.h"

namespace hearth {

bool cuda_available() { return false; }

std::unique_ptr<Backend> make_cuda_backend(int) {
  fail("this build of hearth has no CUDA backend (configure with -DHEARTH_CUDA=ON and the CUDA toolkit)");
}

}  // namespace hearth
