// Test-only kernels that break the CUDA execution model's rules, compiled into the
// emulated library only with -DMSCA_EMULATION_SELF_TEST (tests/test_cuda_emulation_bites.py):
// each rule the emulation enforces gets a kernel that violates it, and one kernel checks a
// warp shuffle's result.
#pragma once

#include <ATen/ATen.h>

namespace msca_emu_self_test {

// Threads of one block at barriers on two different lines.
__global__ void divergent_barriers(float* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

// Thread 0 exits before a barrier the others wait at.
__global__ void exit_before_barrier(float* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// Half of a warp at a shuffle.
__global__ void partial_warp_shuffle(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// Reads a neighbour's shared memory slot with no barrier after the writes.
__global__ void missing_barrier(float* out) {
  MSCA_DYNAMIC_SHARED(smem);
  float* slots = reinterpret_cast<float*>(smem);
  slots[threadIdx.x] = static_cast<float>(threadIdx.x);
  out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// The same with the barrier: every thread reads its neighbour's value.
__global__ void with_barrier(float* out) {
  MSCA_DYNAMIC_SHARED(smem);
  float* slots = reinterpret_cast<float*>(smem);
  slots[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// A butterfly sum over each warp: every lane gets the sum of its warp's lane indices.
__global__ void warp_sum(float* out) {
  float v = static_cast<float>(threadIdx.x % 32);
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  out[threadIdx.x] = v;
}

// Runs kernel `which` on one block of 64 threads; returns what the threads wrote.
inline at::Tensor run(int64_t which) {
  auto out = at::zeros({64}, at::kFloat);
  using Kernel = void (*)(float*);
  const Kernel kernels[] = {divergent_barriers, exit_before_barrier, partial_warp_shuffle,
                            missing_barrier,    with_barrier,        warp_sum};
  TORCH_CHECK(which >= 0 && which < 6, "which: expected 0..5, got ", which);
  msca_emu::launch(kernels[which], msca_emu::dim3(1), msca_emu::dim3(64), 64 * sizeof(float), out.data_ptr<float>());
  return out;
}

}  // namespace msca_emu_self_test
