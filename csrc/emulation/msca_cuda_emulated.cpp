// The CUDA kernels and their host code (csrc/msca_cuda_kernels.cuh, csrc/msca_cuda_driver.h)
// compiled as host C++ over the execution-model emulation of cuda_emulation.h: the ops
// msca_fast_emulated::msca_forward / msca_backward, on CPU tensors, with the schemas of
// msca_fast::msca_forward / msca_backward, each call run under every configured schedule
// (schedule_sweep.h); and the emulation's settings. Built as the module
// msca_fast._C_cuda_emulated.

#include <Python.h>
#include <torch/library.h>

#include <mutex>
#include <string>
#include <vector>

#include "cuda_emulation.h"
#include "msca_schemas.h"
#include "schedule_sweep.h"
#ifdef MSCA_BARRIER_MUTANTS
#include "barrier_mutants.h"
#endif

namespace msca_fast {
namespace gpu {

using msca_emu::dim3;
using msca_emu::launch;

struct DeviceGuard {
  explicit DeviceGuard(const c10::Device&) {}
};

inline msca_emu::DeviceProperties properties() { return msca_emu::device_properties(); }

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
// test-only build (tests/backends/test_cuda_emulation_bites.py) chooses its own, so that it loads
// beside it.
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

// op(args...) under every configured schedule, the results compared (schedule_sweep.h).
template <auto op, const char* name>
struct UnderSchedules;

template <typename Result, typename... Args, Result (*op)(Args...), const char* name>
struct UnderSchedules<op, name> {
  static Result call(Args... args) {
    return msca_emu::run_under_schedules(name, [&] { return op(args...); });
  }
};

constexpr char kForwardName[] = "msca_forward";
constexpr char kBackwardName[] = "msca_backward";

int64_t shared_memory_per_block_optin() { return msca_emu::device_properties().sharedMemPerBlockOptin; }

void set_schedules(const std::string& schedules) { msca_emu::set_schedules(schedules); }

std::string schedules() { return msca_emu::schedule_names(msca_emu::configured_schedules()); }

void set_multiprocessor_count(int64_t count) { msca_emu::set_multiprocessor_count(count); }

int64_t multiprocessor_count() { return msca_emu::multiprocessor_count(); }

std::vector<int64_t> launched_grids() {
  std::vector<int64_t> out;
  for (const msca_emu::dim3& g : msca_emu::launched_grids()) out.insert(out.end(), {g.x, g.y, g.z});
  return out;
}

#ifdef MSCA_EMULATION_SELF_TEST
constexpr char kSelfTestName[] = "self_test";
at::Tensor self_test(const std::string& kernel) { return msca_emu_self_test::run(kernel); }
#endif

MSCA_TORCH_LIBRARY(MSCA_EMULATED_NAMESPACE, m) {
  // The emulated device's limit for one block's dynamic shared memory, in bytes.
  m.def("shared_memory_per_block_optin() -> int", &shared_memory_per_block_optin);
  // The schedules every call runs under, comma-separated: ascending, descending, random:SEED.
  m.def("set_schedules(str schedules) -> ()", &set_schedules);
  m.def("schedules() -> str", &schedules);
  // The emulated device's SM count, from which the driver sizes its grids (default 3).
  m.def("set_multiprocessor_count(int count) -> ()", &set_multiprocessor_count);
  m.def("multiprocessor_count() -> int", &multiprocessor_count);
  // The grids (x, y, z, x, y, z, ...) launched by the calling thread's last call.
  m.def("launched_grids() -> int[]", &launched_grids);
#ifdef MSCA_EMULATION_SELF_TEST
  m.def("self_test(str kernel) -> Tensor", &UnderSchedules<&self_test, kSelfTestName>::call);
  m.def("launch_grid(int[] grid, int[] block) -> Tensor", &msca_emu_self_test::launch_grid);
#endif
#ifdef MSCA_BARRIER_MUTANTS
  // Selects the barrier MSCA_BARRIER(id) to skip (0: none) and counts the skips.
  m.def("skip_barrier(int id) -> ()", &msca_emu::skip_barrier);
  m.def("barrier_skips() -> int", [] { return msca_emu::barrier_skips().load(); });
#endif
  m.def(kForwardSchema);
  m.def(kBackwardSchema);
}

MSCA_TORCH_LIBRARY_IMPL(MSCA_EMULATED_NAMESPACE, CPU, m) {
  m.impl("msca_forward", &UnderSchedules<&cuda_driver::msca_forward, kForwardName>::call);
  m.impl("msca_backward", &UnderSchedules<&cuda_driver::msca_backward, kBackwardName>::call);
}

}  // namespace msca_fast
