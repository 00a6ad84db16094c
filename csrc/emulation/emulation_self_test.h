// Test-only kernels that break the CUDA execution model's rules, compiled into the
// emulated library only with -DMSCA_EMULATION_SELF_TEST (tests/backends/test_cuda_emulation_bites.py):
// each rule the emulation enforces gets a kernel that violates it; others check a warp
// shuffle's result, show the order of turns a schedule gives, and run msca_math's max_/min_.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "msca_math.h"

namespace msca_emu_self_test {

constexpr int kThreads = 64;  // one block of 64 threads: two warps
// Every kernel gets out: kOut floats, zeros; most write out[threadIdx.x] only.
constexpr int kOut = 2 * kThreads + 1;

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

// Every lane at a shuffle whose mask names half of them.
__global__ void wrong_shuffle_mask(float* out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, static_cast<float>(threadIdx.x), 1);
}

// Reads the slot of the next thread up with no barrier after the writes: poison even when
// the threads take their turns in ascending order.
__global__ void missing_barrier(float* out) {
  MSCA_DYNAMIC_SHARED(smem);
  float* slots = reinterpret_cast<float*>(smem);
  slots[threadIdx.x] = static_cast<float>(threadIdx.x);
  out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// The mirror: reads the slot of the next thread down, which ascending turns have written
// already; only another order shows the race.
__global__ void mirror_race(float* out) {
  MSCA_DYNAMIC_SHARED(smem);
  float* slots = reinterpret_cast<float*>(smem);
  slots[threadIdx.x] = static_cast<float>(threadIdx.x);
  out[threadIdx.x] = slots[threadIdx.x == 0 ? 0 : threadIdx.x - 1];
}

// missing_barrier with the barrier: every thread reads its neighbour's value.
__global__ void with_barrier(float* out) {
  MSCA_DYNAMIC_SHARED(smem);
  float* slots = reinterpret_cast<float*>(smem);
  slots[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// Writes one slot past the end of its kThreads floats of shared memory.
__global__ void shared_overrun(float* out) {
  MSCA_DYNAMIC_SHARED(smem);
  float* slots = reinterpret_cast<float*>(smem);
  slots[threadIdx.x + 1] = 1.0f;
  out[threadIdx.x] = 1.0f;
}

// Thread 0 writes the float before the start of shared memory.
__global__ void shared_underrun(float* out) {
  MSCA_DYNAMIC_SHARED(smem);
  float* slots = reinterpret_cast<float*>(smem);
  if (threadIdx.x == 0) slots[-1] = 1.0f;
  out[threadIdx.x] = 1.0f;
}

// Reads past the end of shared memory, into the guard: poison.
__global__ void guard_read(float* out) {
  MSCA_DYNAMIC_SHARED(smem);
  const float* slots = reinterpret_cast<const float*>(smem);
  out[threadIdx.x] = slots[blockDim.x + threadIdx.x];
}

// The order of turns: the k-th thread to take a turn writes k, in the first barrier
// interval to out[tid], in the second to out[kThreads + tid]; out[2 * kThreads] counts.
__global__ void turn_order(float* out) {
  float& turns = out[2 * kThreads];
  out[threadIdx.x] = turns;
  turns += 1.0f;
  __syncthreads();
  out[kThreads + threadIdx.x] = turns - kThreads;
  turns += 1.0f;
}

// A butterfly sum over each warp: every lane gets the sum of its warp's lane indices.
__global__ void warp_sum(float* out) {
  float v = static_cast<float>(threadIdx.x % 32);
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  out[threadIdx.x] = v;
}

// max_ and min_ of msca_math.h with a NaN first, then second; then of two numbers.
__global__ void nan_max_min(float* out) {
  using msca_fast::math::max_;
  using msca_fast::math::min_;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (threadIdx.x != 0) return;
  const float results[] = {max_(nan, 1.0f), max_(1.0f, nan), min_(nan, 1.0f), min_(1.0f, nan),
                           max_(1.0f, 2.0f), max_(2.0f, 1.0f), min_(1.0f, 2.0f), min_(2.0f, 1.0f)};
  for (int i = 0; i < 8; ++i) out[i] = results[i];
}

// Runs kernel `name` on one block of kThreads threads, kThreads floats of shared memory;
// returns the kOut floats it wrote.
inline at::Tensor run(const std::string& name) {
  using Kernel = void (*)(float*);
  const std::vector<std::pair<std::string, Kernel>> kernels = {
      {"divergent_barriers", divergent_barriers}, {"exit_before_barrier", exit_before_barrier},
      {"partial_warp_shuffle", partial_warp_shuffle}, {"wrong_shuffle_mask", wrong_shuffle_mask},
      {"missing_barrier", missing_barrier},       {"mirror_race", mirror_race},
      {"with_barrier", with_barrier},             {"shared_overrun", shared_overrun},
      {"shared_underrun", shared_underrun},       {"guard_read", guard_read},
      {"turn_order", turn_order},                 {"warp_sum", warp_sum},
      {"nan_max_min", nan_max_min}};
  std::string names;
  for (const auto& [known, kernel] : kernels) {
    if (known == name) {
      auto out = at::zeros({kOut}, at::kFloat);
      msca_emu::launch(kernel, msca_emu::dim3(1), msca_emu::dim3(kThreads), kThreads * sizeof(float),
                       out.data_ptr<float>());
      return out;
    }
    names += (names.empty() ? "" : ", ") + known;
  }
  TORCH_CHECK(false, "kernel: expected one of ", names, ", got '", name, "'");
}

// Marks out[linear block index] = 1 for the blocks below `size`.
__global__ void mark_block(float* out, int64_t size) {
  const int64_t linear = blockIdx.x + int64_t(gridDim.x) * (blockIdx.y + int64_t(gridDim.y) * blockIdx.z);
  if (linear < size && threadIdx.x == 0) out[linear] = 1.0f;
}

// Launches mark_block on `grid` blocks of `block` threads (three sizes each); returns the
// marks of the first 2^20 blocks.
inline at::Tensor launch_grid(at::IntArrayRef grid, at::IntArrayRef block) {
  TORCH_CHECK(grid.size() == 3 && block.size() == 3, "grid, block: expected three sizes each, got ", grid.size(),
              " and ", block.size());
  for (const int64_t size : {grid[0], grid[1], grid[2], block[0], block[1], block[2]}) {
    TORCH_CHECK(size >= 0 && size <= std::numeric_limits<unsigned>::max(),
                "grid, block: expected sizes that fit an unsigned int, got ", size);
  }
  const int64_t marks = static_cast<int64_t>(std::min(double(grid[0]) * double(grid[1]) * double(grid[2]), 1048576.0));
  auto out = at::zeros({marks}, at::kFloat);
  msca_emu::launch(mark_block, msca_emu::dim3(grid[0], grid[1], grid[2]), msca_emu::dim3(block[0], block[1], block[2]),
                   0, out.data_ptr<float>(), marks);
  return out;
}

}  // namespace msca_emu_self_test
