// Test-only (-DMSCA_BARRIER_MUTANTS, tests/backends/test_cuda_emulation_bites.py): every numbered
// barrier of csrc/msca_cuda_kernels.cuh, MSCA_BARRIER(id), consults a run-time setting,
// and the one whose id is selected does nothing. One build removes any barrier: the
// mutant sweep checks that each removal makes the op fail.
#pragma once

#include <atomic>
#include <cstdint>

#include "cuda_emulation.h"

namespace msca_emu {

// The id of the barrier to skip; 0 (no kernel barrier has it) skips none.
inline std::atomic<int64_t>& skipped_barrier() {
  static std::atomic<int64_t> id{0};
  return id;
}

// How many times a thread has passed over the skipped barrier since it was selected.
inline std::atomic<int64_t>& barrier_skips() {
  static std::atomic<int64_t> skips{0};
  return skips;
}

inline void skip_barrier(int64_t id) {
  skipped_barrier() = id;
  barrier_skips() = 0;
}

inline void barrier_unless_skipped(int64_t id, int site) {
  if (id == skipped_barrier().load(std::memory_order_relaxed)) {
    barrier_skips().fetch_add(1, std::memory_order_relaxed);
    return;
  }
  syncthreads(site);
}

}  // namespace msca_emu

#define MSCA_BARRIER(id) ::msca_emu::barrier_unless_skipped(id, __LINE__)
