// The CUDA kernels' launch geometry and shared-memory needs, in plain C++ so that the
// operator library can export them (msca_fast::cuda_shared_bytes) to the Python side,
// which declines problems a device cannot hold before any launch.
#pragma once

#include <cstdint>

namespace msca_fast {
namespace cuda_limits {

constexpr int kThreads = 256;  // threads (pixels) per block
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
// K x kThreads tiles: rows 16-byte aligned for vector loads, and 4 words apart in the banks,
// so that the 8 threads of a quarter warp reading 16 bytes of 8 different rows do not conflict.
constexpr int kTileStride = kThreads + 4;
// Regions a kernel serves: 32, or 16 in float64, whose per-thread arrays of 32 doubles
// would not fit the 128 registers a thread may use at two blocks a SM.
constexpr int64_t max_regions(int64_t element_size) { return element_size == 8 ? 16 : 32; }

// K padded to the kernels' template parameter (8, 16 or 32).
constexpr int padded_regions(int64_t K) { return K <= 8 ? 8 : K <= 16 ? 16 : 32; }

// Dynamic shared memory of each kernel, in elements of the accumulation type.
constexpr int64_t aggregate_shared(int KP, int64_t N) { return int64_t(KP) * kTileStride + 2 * KP + (N + 1) * KP; }
constexpr int64_t sweep_a_shared(int KP, int64_t N, int64_t M1) {
  return 2 * int64_t(KP) * kTileStride + (N + M1 + 1) * KP;
}
constexpr int64_t sweep_b_shared(int KP, int64_t C2) { return int64_t(KP) * kTileStride + C2 * KP; }

}  // namespace cuda_limits
}  // namespace msca_fast
