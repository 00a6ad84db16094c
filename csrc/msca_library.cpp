// The msca_fast operator library: op schemas and the Python module stub.
//
// Kernels register their implementations for these schemas in their own files
// (TORCH_LIBRARY_IMPL per dispatch key). The Python side (msca_fast/backends) adds
// register_fake and register_autograd.

#include <Python.h>
#include <torch/library.h>

#include <vector>

#include "msca_cuda_limits.h"
#include "msca_schemas.h"

extern "C" {
// `import msca_fast._C` only has to load this shared library so that the
// TORCH_LIBRARY blocks below run; the module itself is empty.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "msca_fast operator library", -1, nullptr};
  return PyModule_Create(&module_def);
}
}

namespace msca_fast {

bool built_with_cuda() {
#ifdef MSCA_FAST_WITH_CUDA
  return true;
#else
  return false;
#endif
}

// Dynamic shared memory a block of the CUDA kernels needs at the least, in bytes:
// [forward, backward target sweep, backward exemplar sweep].
std::vector<int64_t> cuda_shared_bytes(int64_t N, int64_t M2, int64_t M1, int64_t K, int64_t element_size) {
  const auto bytes = cuda_limits::shared_bytes_needed(N, M2, M1, K, element_size);
  return {bytes.begin(), bytes.end()};
}

// The CUDA kernels' launches for a problem on a device with `sms` SMs and `optin` bytes of
// shared memory a block: per kernel (cuda_limits::kStageNames order) grid x, grid y, lanes
// per pixel, pixels per thread, pixels per block and dynamic shared bytes.
std::vector<int64_t> cuda_launch_plan(int64_t B, int64_t N, int64_t M2, int64_t M1, int64_t K, int64_t P2,
                                      int64_t P1, int64_t element_size, int64_t sms, int64_t optin) {
  using namespace cuda_limits;
  const auto plan = launch_plan({B, N, M2, M1, K, P2, P1, element_size}, static_cast<int>(sms), optin);
  std::vector<int64_t> flat;
  for (const Launch& l : plan) flat.insert(flat.end(), {l.grid_x, l.grid_y, l.lanes, l.pixels_per_thread, l.chunk, l.shared_bytes});
  return flat;
}

int64_t cuda_max_regions(int64_t element_size) { return cuda_limits::max_regions(element_size); }

TORCH_LIBRARY(msca_fast, m) {
  // Limits of the CUDA kernels (csrc/msca_cuda_limits.h), for every build.
  m.def("cuda_shared_bytes(int N, int M2, int M1, int K, int element_size) -> int[]", &cuda_shared_bytes);
  m.def("cuda_max_regions(int element_size) -> int", &cuda_max_regions);
  m.def("cuda_launch_plan(int B, int N, int M2, int M1, int K, int P2, int P1, int element_size, int sms, int optin) -> int[]",
        &cuda_launch_plan);
  // Whether this build compiled the CUDA kernels (they can only run where a GPU is).
  m.def("built_with_cuda() -> bool", &built_with_cuda);
  m.def(kForwardSchema);
  m.def(kBackwardSchema);
}

}  // namespace msca_fast
