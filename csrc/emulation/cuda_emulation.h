// The CUDA execution model on the CPU, so that csrc/msca_cuda_kernels.cuh and the launch
// code in csrc/msca_cuda_driver.h run verbatim in host C++ (the "cuda_emulated" backend).
//
// Every thread of a block is a fiber (ucontext), run one at a time on the calling OS
// thread; blocks of a grid run in parallel over ATen's intra-op threads. Each fiber runs
// until it reaches a synchronisation point, so the emulation is deterministic and a
// missing barrier shows as a read of memory nobody has written yet:
//   - threadIdx/blockIdx/blockDim/gridDim are the running fiber's and block's own;
//   - __syncthreads() waits until every thread of the block is at a barrier and fails
//     unless all of them are at the same call site and none has exited;
//   - dynamic shared memory is one buffer per block, filled with NaN bytes (0xff) before
//     the block starts, so a read before the matching write poisons the result;
//   - __shfl_xor_sync/__shfl_down_sync exchange values between the 32 lanes of a warp
//     when all of its live lanes have reached the same shuffle (warp-synchronous), and
//     fail on a partial mask or on lanes at different shuffles;
//   - launches check what the driver would: a non-empty grid, at most 1024 threads a
//     block, dynamic shared memory within 48 KiB or what cudaFuncSetAttribute allowed.
// Errors stop the launch with a c10::Error naming the kernel's block and thread.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <ucontext.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace msca_emu {

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The device the emulation pretends to be: an H100's limits with few SMs, so that grids
// sized from the SM count stay small enough to emulate.
struct DeviceProperties {
  int multiProcessorCount = 3;
  size_t sharedMemPerBlock = 48 * 1024;
  size_t sharedMemPerBlockOptin = 227 * 1024;
  int maxThreadsPerBlock = 1024;
  int warpSize = 32;
};

inline const DeviceProperties& device_properties() {
  static const DeviceProperties properties;
  return properties;
}

constexpr int kWarp = 32;
constexpr size_t kFiberStack = 64 * 1024;

enum class State { Runnable, AtBarrier, AtShuffle, Done };

struct Fiber {
  ucontext_t context;
  uint3 thread_idx;
  State state = State::Runnable;
  int site = 0;           // source line of the barrier or shuffle it waits at
  unsigned shuffles = 0;  // shuffles this lane has done (selects the exchange buffer)
};

struct Warp {
  uint64_t slots[2][kWarp];  // values posted by each lane, double-buffered by shuffle parity
};

struct Block {
  uint3 block_idx;
  dim3 block_dim, grid_dim;
  std::vector<unsigned char> shared;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  ucontext_t scheduler;
  Fiber* running = nullptr;
  const std::function<void()>* body = nullptr;
  std::vector<std::unique_ptr<char[]>> stacks;
};

// The block this OS thread is emulating (blocks run in parallel on ATen's threads).
inline Block*& current_block() {
  static thread_local Block* block = nullptr;
  return block;
}

inline Fiber& current_fiber() { return *current_block()->running; }

inline std::string where(const Block& b, const Fiber& f) {
  return "block (" + std::to_string(b.block_idx.x) + "," + std::to_string(b.block_idx.y) + "," +
         std::to_string(b.block_idx.z) + ") thread (" + std::to_string(f.thread_idx.x) + "," +
         std::to_string(f.thread_idx.y) + "," + std::to_string(f.thread_idx.z) + ")";
}

inline void yield_to_scheduler() {
  Block& b = *current_block();
  swapcontext(&b.running->context, &b.scheduler);
}

inline void syncthreads(int site) {
  Fiber& f = current_fiber();
  f.state = State::AtBarrier;
  f.site = site;
  yield_to_scheduler();
}

inline unsigned char* dynamic_shared() { return current_block()->shared.data(); }

template <typename T>
T shuffle(unsigned mask, T value, int partner_of_lane_xor, int delta, int site) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a value wider than 64 bits");
  Block& b = *current_block();
  Fiber& f = *b.running;
  const unsigned linear = static_cast<unsigned>(&f - b.fibers.data());
  const unsigned lane = linear % kWarp;
  Warp& w = b.warps[linear / kWarp];
  const unsigned parity = f.shuffles++ & 1u;
  const unsigned warp_size = std::min<unsigned>(kWarp, b.fibers.size() - linear / kWarp * kWarp);
  const unsigned full = warp_size == 32 ? 0xffffffffu : ((1u << warp_size) - 1u);
  TORCH_CHECK(mask == full, "cuda emulation: shuffle with mask ", mask, " in a warp whose lanes are ", full, " at ",
              where(b, f), " (line ", site, ")");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  w.slots[parity][lane] = bits;
  f.state = State::AtShuffle;
  f.site = site;
  yield_to_scheduler();
  // xor: partner lane ^ mask; down: lane + delta, or the lane itself past the warp's end.
  unsigned source = partner_of_lane_xor >= 0 ? (lane ^ static_cast<unsigned>(partner_of_lane_xor)) : lane + delta;
  if (source >= warp_size) source = lane;
  T out;
  std::memcpy(&out, &w.slots[parity][source], sizeof(T));
  return out;
}

inline void fiber_entry() {
  Block& b = *current_block();
  (*b.body)();
  b.running->state = State::Done;  // returns to uc_link: the scheduler
}

// Releases the lanes of warps whose live lanes all wait at one shuffle; then, if nothing
// else can run, the block's barrier. Returns false when every fiber has finished.
inline bool release_waiting(Block& b) {
  bool released = false;
  const size_t n = b.fibers.size();
  for (size_t w0 = 0; w0 < n; w0 += kWarp) {
    const size_t w1 = std::min(n, w0 + kWarp);
    int site = -1;
    bool all_at_shuffle = true, any_at_shuffle = false;
    for (size_t i = w0; i < w1; ++i) {
      const Fiber& f = b.fibers[i];
      if (f.state == State::AtShuffle) {
        any_at_shuffle = true;
        TORCH_CHECK(site < 0 || f.site == site, "cuda emulation: lanes of one warp at shuffles on lines ", site,
                    " and ", f.site, " (", where(b, f), ")");
        site = f.site;
      } else {
        all_at_shuffle = false;
      }
    }
    if (!any_at_shuffle) continue;
    TORCH_CHECK(all_at_shuffle, "cuda emulation: a shuffle on line ", site,
                " is not reached by every lane of its warp (warp ", w0 / kWarp, " of block (", b.block_idx.x, ",",
                b.block_idx.y, "))");
    for (size_t i = w0; i < w1; ++i) b.fibers[i].state = State::Runnable;
    released = true;
  }
  if (released) return true;
  int site = -1;
  size_t waiting = 0, done = 0;
  for (const Fiber& f : b.fibers) {
    if (f.state == State::Done) {
      ++done;
    } else if (f.state == State::AtBarrier) {
      TORCH_CHECK(site < 0 || f.site == site, "cuda emulation: threads of one block wait at barriers on lines ", site,
                  " and ", f.site, " (", where(b, f), ")");
      site = f.site;
      ++waiting;
    }
  }
  if (done == n) return false;
  TORCH_CHECK(done == 0, "cuda emulation: __syncthreads() on line ", site, " is not reached by ", done,
              " threads of block (", b.block_idx.x, ",", b.block_idx.y, ") that have exited");
  TORCH_CHECK(waiting == n, "cuda emulation: deadlock in block (", b.block_idx.x, ",", b.block_idx.y, ")");
  for (Fiber& f : b.fibers) f.state = State::Runnable;
  return true;
}

inline void run_block(Block& b, const std::function<void()>& body) {
  std::memset(b.shared.data(), 0xff, b.shared.size());
  b.body = &body;
  const size_t n = b.fibers.size();
  for (size_t i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.state = State::Runnable;
    f.shuffles = 0;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = b.stacks[i].get();
    f.context.uc_stack.ss_size = kFiberStack;
    f.context.uc_link = &b.scheduler;
    makecontext(&f.context, fiber_entry, 0);
  }
  current_block() = &b;
  do {
    for (size_t i = 0; i < n; ++i) {
      if (b.fibers[i].state != State::Runnable) continue;
      b.running = &b.fibers[i];
      swapcontext(&b.scheduler, &b.fibers[i].context);
    }
  } while (release_waiting(b));
  current_block() = nullptr;
}

// Dynamic shared memory each kernel may use, as cudaFuncSetAttribute sets it.
inline std::map<const void*, size_t>& shared_limits() {
  static std::map<const void*, size_t> limits;
  return limits;
}

inline void set_max_dynamic_shared(const void* kernel, size_t bytes) {
  TORCH_CHECK(bytes <= device_properties().sharedMemPerBlockOptin,
              "cuda emulation: cudaFuncSetAttribute asks for ", bytes, " bytes of shared memory, over the device's ",
              device_properties().sharedMemPerBlockOptin);
  shared_limits()[kernel] = bytes;
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, Args&&... args) {
  const auto& limits = shared_limits();
  const auto found = limits.find(reinterpret_cast<const void*>(kernel));
  const size_t allowed = found == limits.end() ? device_properties().sharedMemPerBlock : found->second;
  TORCH_CHECK(grid.x > 0 && grid.y > 0 && grid.z > 0, "cuda emulation: invalid configuration argument (grid ",
              grid.x, "x", grid.y, "x", grid.z, ")");
  const size_t threads = size_t(block.x) * block.y * block.z;
  TORCH_CHECK(threads > 0 && threads <= size_t(device_properties().maxThreadsPerBlock),
              "cuda emulation: invalid configuration argument (", threads, " threads a block)");
  TORCH_CHECK(shared_bytes <= allowed, "cuda emulation: too many resources requested for launch (", shared_bytes,
              " bytes of dynamic shared memory, ", allowed, " allowed)");
  const std::tuple<Params...> params(std::forward<Args>(args)...);
  const std::function<void()> body = [&] { std::apply(kernel, params); };
  const int64_t blocks = int64_t(grid.x) * grid.y * grid.z;
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    Block b;
    b.block_dim = block;
    b.grid_dim = grid;
    b.shared.resize(std::max<size_t>(shared_bytes, 1));
    b.fibers.resize(threads);
    b.warps.resize((threads + kWarp - 1) / kWarp);
    for (size_t i = 0; i < threads; ++i) {
      b.fibers[i].thread_idx = {unsigned(i % block.x), unsigned(i / block.x % block.y),
                                unsigned(i / (size_t(block.x) * block.y))};
      b.stacks.emplace_back(new char[kFiberStack]);
    }
    for (int64_t linear = first; linear < last; ++linear) {
      b.block_idx = {unsigned(linear % grid.x), unsigned(linear / grid.x % grid.y),
                     unsigned(linear / (int64_t(grid.x) * grid.y))};
      run_block(b, body);
    }
  });
}

}  // namespace msca_emu

// The CUDA spellings the kernels use.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define threadIdx (::msca_emu::current_fiber().thread_idx)
#define blockIdx (::msca_emu::current_block()->block_idx)
#define blockDim (::msca_emu::current_block()->block_dim)
#define gridDim (::msca_emu::current_block()->grid_dim)
#define __syncthreads() ::msca_emu::syncthreads(__LINE__)
#define __shfl_xor_sync(mask, value, lane_mask) ::msca_emu::shuffle(mask, value, lane_mask, 0, __LINE__)
#define __shfl_down_sync(mask, value, delta) ::msca_emu::shuffle(mask, value, -1, delta, __LINE__)
#define MSCA_DYNAMIC_SHARED(name) unsigned char* name = ::msca_emu::dynamic_shared()
