// The CUDA kernels and their host code (csrc/msca_cuda_kernels.cuh, csrc/msca_cuda_driver.h)
// compiled as host C++ over the execution-model emulation of cuda_emulation.h: the ops
// msca_fast_emulated::msca_forward / msca_backward, on CPU tensors, with the schemas of
// msca_fast::msca_forward / msca_backward. Built as the module msca_fast._C_cuda_emulated.

#include <Python.h>
#include <torch/library.h>

#include <mutex>

#include "cuda_emulation.h"
#include "msca_schemas.h"

namespace msca_fast {
namespace gpu {

using msca_emu::dim3;
using msca_emu::launch;

struct DeviceGuard {
  explicit DeviceGuard(const c10::Device&) {}
};

inline const msca_emu::DeviceProperties& properties() { return msca_emu::device_properties(); }

template <typename Kernel>
void set_max_dynamic_shared(Kernel kernel, size_t bytes) {
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  msca_emu::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), bytes);
}

}  // namespace gpu
}  // namespace msca_fast

#include "msca_cuda_driver.h"
#ifdef MSCA_EMULATION_SELF_TEST
#include "emulation_self_test.h"
#endif

// The op namespace and module name: msca_fast_emulated in msca_fast._C_cuda_emulated; the
// test-only builds of deliberately broken kernels (tests/test_cuda_emulation_bites.py)
// choose their own, so that they load beside it.
#ifndef MSCA_EMULATED_NAMESPACE
#define MSCA_EMULATED_NAMESPACE msca_fast_emulated
#endif
#define MSCA_CONCAT_(a, b) a##b
#define MSCA_CONCAT(a, b) MSCA_CONCAT_(a, b)
#define MSCA_STRING_(a) #a
#define MSCA_STRING(a) MSCA_STRING_(a)
#define MSCA_TORCH_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define MSCA_TORCH_LIBRARY_IMPL(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)

extern "C" {
PyObject* MSCA_CONCAT(PyInit_, TORCH_EXTENSION_NAME)(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, MSCA_STRING(TORCH_EXTENSION_NAME),
                                          "msca_fast CUDA kernels run on the CPU by emulation", -1, nullptr};
  return PyModule_Create(&module_def);
}
}

namespace msca_fast {

int64_t shared_memory_per_block_optin() { return msca_emu::device_properties().sharedMemPerBlockOptin; }

MSCA_TORCH_LIBRARY(MSCA_EMULATED_NAMESPACE, m) {
  // The emulated device's limit for one block's dynamic shared memory, in bytes.
  m.def("shared_memory_per_block_optin() -> int", &shared_memory_per_block_optin);
#ifdef MSCA_EMULATION_SELF_TEST
  m.def("self_test(int which) -> Tensor", &msca_emu_self_test::run);
#endif
  m.def(kForwardSchema);
  m.def(kBackwardSchema);
}

MSCA_TORCH_LIBRARY_IMPL(MSCA_EMULATED_NAMESPACE, CPU, m) {
  m.impl("msca_forward", &cuda_driver::msca_forward);
  m.impl("msca_backward", &cuda_driver::msca_backward);
}

}  // namespace msca_fast
