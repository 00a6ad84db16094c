// What csrc/msca_cuda_driver.h needs from the CUDA runtime, for the GPU build. The CPU
// emulation (emulation/msca_cuda_emulated.cpp) provides the same names.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#define MSCA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
// The GPU build compiles each input dtype's launches in its own translation unit
// (csrc/msca_cuda_<dtype>.cu; see MSCA_CUDA_LAUNCHES in msca_cuda_driver.h).
#define MSCA_CUDA_LAUNCHES_PER_DTYPE

namespace msca_fast {
namespace gpu {

using ::dim3;
using DeviceGuard = c10::cuda::CUDAGuard;

// The current device's properties, queried once per device.
inline const cudaDeviceProp& properties() {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<cudaDeviceProp>> cache(c10::cuda::device_count());
  const int device = c10::cuda::current_device();
  const std::lock_guard<std::mutex> lock(mutex);
  if (!cache[device]) {
    cache[device] = std::make_unique<cudaDeviceProp>();
    C10_CUDA_CHECK(cudaGetDeviceProperties(cache[device].get(), device));
  }
  return *cache[device];
}

// Lets `kernel` take up to `bytes` of dynamic shared memory a block on the current device,
// less what the kernel holds statically (their sum may not pass the device's opt-in limit).
template <typename... Params>
void set_max_dynamic_shared(void (*kernel)(Params...), size_t bytes) {
  cudaFuncAttributes attributes;
  C10_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
  const size_t dynamic = bytes - std::min(bytes, attributes.sharedSizeBytes);
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(dynamic)));
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, Args&&... args) {
  kernel<<<grid, block, shared_bytes, c10::cuda::getCurrentCUDAStream()>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace gpu
}  // namespace msca_fast
