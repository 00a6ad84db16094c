// The CUDA execution model on the CPU, so that csrc/msca_cuda_kernels.cuh and the launch
// code in csrc/msca_cuda_driver.h run verbatim in host C++ (the "cuda_emulated" backend).
//
// Every thread of a block is a fiber with a stack of its own (fiber_switch.h), run one at a
// time on the calling OS thread; blocks of a grid run in parallel over ATen's intra-op threads. A block runs in
// rounds: each runnable fiber gets one turn, in which it runs until it reaches a
// synchronisation point; the calling thread's schedule (schedules.h) orders the turns:
// ascending or descending thread index, or a seeded random order drawn anew each round.
// Under one schedule a run is deterministic. A missing barrier shows as a read of memory
// nobody has written yet (poison), or as results that change with the schedule: the op
// library runs each call under every configured schedule and compares (schedule_sweep.h),
// with the memory ATen allocates for the call filled with poison (poisoned_allocations.h).
// What the emulation checks:
//   - threadIdx/blockIdx/blockDim/gridDim are the running fiber's and block's own;
//   - __syncthreads() waits until every thread of the block is at a barrier and fails
//     unless all of them are at the same call site and none has exited;
//   - dynamic shared memory is one buffer per block, filled with NaN bytes (0xff) before
//     the block starts, so a read before the matching write poisons the result; guard
//     zones of kGuardBytes before and after it hold the same poison, so an out-of-bounds
//     read reads NaN, and a block that changed a guard byte stops the launch ("shared
//     memory written out of bounds");
//   - __shfl_xor_sync/__shfl_down_sync exchange values between the 32 lanes of a warp
//     when all of its live lanes have reached the same shuffle (warp-synchronous), and
//     fail on a partial mask or on lanes at different shuffles;
//   - launches check what the driver would ("invalid configuration argument"): a grid of
//     at most 2^31-1 x 65535 x 65535 blocks, none empty; blocks of at most 1024 x 1024 x 64
//     and 1024 threads in all; dynamic shared memory within 48 KiB or what
//     cudaFuncSetAttribute allowed;
//   - the device is an H100's limits with a settable SM count (default 3), so that tests
//     can give the driver's grid sizing the SM count of a real GPU.
// Errors stop the launch with a c10::Error naming the kernel, its block and thread. One
// raised inside a fiber (a kernel's own check, a shuffle's mask) is caught on the fiber's
// stack and rethrown by the block's scheduler: it fails the call, not the process (the
// fibers still suspended are abandoned; the kernels keep nothing on their stacks that
// needs destroying).
// Not modelled: interleavings inside a turn (a turn runs from one synchronisation point to
// the next without interruption, so a lost update between two threads' read-modify-writes
// of one word goes unseen), registers, the memory model between blocks.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "fiber_switch.h"
#include "schedules.h"

namespace msca_emu {

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The SM count of the emulated device: 3 by default, so that grids sized from it stay
// small enough to emulate; a test sets a real GPU's to get that GPU's grids.
inline std::atomic<int>& multiprocessor_count() {
  static std::atomic<int> count{3};
  return count;
}

inline void set_multiprocessor_count(int64_t count) {
  TORCH_CHECK(count >= 1 && count <= 1024, "count: expected an SM count in 1..1024, got ", count);
  multiprocessor_count() = static_cast<int>(count);
}

// The device the emulation pretends to be: an H100's limits with the SM count above.
struct DeviceProperties {
  int multiProcessorCount = 3;
  size_t sharedMemPerBlock = 48 * 1024;
  size_t sharedMemPerBlockOptin = 227 * 1024;
  int maxThreadsPerBlock = 1024;
  int maxThreadsDim[3] = {1024, 1024, 64};
  int64_t maxGridSize[3] = {2147483647, 65535, 65535};
  int warpSize = 32;
};

inline DeviceProperties device_properties() {
  DeviceProperties properties;
  properties.multiProcessorCount = multiprocessor_count();
  return properties;
}

constexpr int kWarp = 32;
constexpr size_t kFiberStack = 64 * 1024;
// Poison on either side of a block's dynamic shared memory: more than one row of a
// kernel's shared tile (260 doubles), so that an index off by a row lands in it.
constexpr size_t kGuardBytes = 4096;
constexpr unsigned char kPoison = 0xff;  // every byte of a NaN of each float type

enum class State { Runnable, AtBarrier, AtShuffle, Done };

struct Fiber {
  FiberContext context;
  uint3 thread_idx;
  State state = State::Runnable;
  int site = 0;           // source line of the barrier or shuffle it waits at
  unsigned shuffles = 0;  // shuffles this lane has done (selects the exchange buffer)
};

struct Warp {
  uint64_t slots[2][kWarp];  // values posted by each lane, double-buffered by shuffle parity
};

struct Block {
  const void* kernel = nullptr;
  uint3 block_idx;
  dim3 block_dim, grid_dim;
  uint64_t linear = 0;  // the block's index in the grid, x fastest
  Schedule schedule;
  uint64_t round = 0;                  // rounds of turns run so far
  std::vector<uint32_t> order;         // this round's order of turns
  size_t shared_bytes = 0;             // dynamic shared memory, between the guards
  std::vector<unsigned char> shared;   // guard, shared_bytes, guard
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  FiberContext scheduler;
  Fiber* running = nullptr;
  const std::function<void()>* body = nullptr;
  std::exception_ptr error;  // raised by a fiber, rethrown by the scheduler
  std::vector<std::unique_ptr<char[]>> stacks;
};

// The block this OS thread is emulating (blocks run in parallel on ATen's threads).
inline Block*& current_block() {
  static thread_local Block* block = nullptr;
  return block;
}

inline Fiber& current_fiber() { return *current_block()->running; }

// "msca_fast::cuda_kernels::combine_kernel<float>", from the kernel's exported symbol.
inline std::string kernel_name(const void* kernel) {
  Dl_info info;
  if (dladdr(kernel, &info) == 0 || info.dli_sname == nullptr) return "a kernel";
  int status = 0;
  char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
  std::string name = status == 0 && demangled != nullptr ? demangled : info.dli_sname;
  std::free(demangled);
  name = name.substr(0, name.find('('));
  if (name.compare(0, 5, "void ") == 0) name = name.substr(5);
  return name;
}

inline std::string where(const Block& b) {
  return "block (" + std::to_string(b.block_idx.x) + "," + std::to_string(b.block_idx.y) + "," +
         std::to_string(b.block_idx.z) + ") of " + kernel_name(b.kernel);
}

inline std::string where(const Block& b, const Fiber& f) {
  return "thread (" + std::to_string(f.thread_idx.x) + "," + std::to_string(f.thread_idx.y) + "," +
         std::to_string(f.thread_idx.z) + ") of " + where(b);
}

inline void yield_to_scheduler() {
  Block& b = *current_block();
  switch_fiber(b.running->context, b.scheduler);
}

inline void syncthreads(int site) {
  Fiber& f = current_fiber();
  f.state = State::AtBarrier;
  f.site = site;
  yield_to_scheduler();
}

inline unsigned char* dynamic_shared() { return current_block()->shared.data() + kGuardBytes; }

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

// A fiber's whole life. An exception must not unwind past this frame (there is nothing
// above it): it is kept for the scheduler to rethrow. A finished fiber is never resumed.
[[noreturn]] inline void fiber_main() {
  Block& b = *current_block();
  try {
    (*b.body)();
  } catch (...) {
    b.error = std::current_exception();
  }
  b.running->state = State::Done;
  switch_fiber(b.running->context, b.scheduler);
  std::abort();
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
                " is not reached by every lane of its warp (warp ", w0 / kWarp, " of ", where(b), ")");
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
              " threads of ", where(b), " that have exited");
  TORCH_CHECK(waiting == n, "cuda emulation: deadlock in ", where(b));
  for (Fiber& f : b.fibers) f.state = State::Runnable;
  return true;
}

// Stops the launch if the block changed a byte of the guards around its shared memory.
inline void check_guards(const Block& b) {
  const unsigned char* start = b.shared.data() + kGuardBytes;
  for (size_t i = 1; i <= kGuardBytes; ++i) {  // outwards from the buffer's first byte
    TORCH_CHECK(start[-static_cast<ptrdiff_t>(i)] == kPoison, "cuda emulation: shared memory written out of bounds by ",
                where(b), ": it changed byte -", i, ", outside its ", b.shared_bytes,
                " bytes of dynamic shared memory");
  }
  for (size_t i = 0; i < kGuardBytes; ++i) {
    TORCH_CHECK(start[b.shared_bytes + i] == kPoison, "cuda emulation: shared memory written out of bounds by ",
                where(b), ": it changed byte ", b.shared_bytes + i, ", outside its ", b.shared_bytes,
                " bytes of dynamic shared memory");
  }
}

// Sets the OS thread's current block for the life of one block's run.
struct RunningBlock {
  explicit RunningBlock(Block& b) { current_block() = &b; }
  ~RunningBlock() { current_block() = nullptr; }
};

inline void run_block(Block& b, const std::function<void()>& body) {
  std::memset(b.shared.data(), kPoison, b.shared.size());
  b.body = &body;
  b.round = 0;
  b.error = nullptr;
  const size_t n = b.fibers.size();
  for (size_t i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.state = State::Runnable;
    f.shuffles = 0;
    prepare_fiber(f.context, b.stacks[i].get(), kFiberStack, fiber_main);
  }
  const RunningBlock running(b);
  do {
    turn_order(b.schedule, b.linear, b.round++, b.order);
    for (const uint32_t i : b.order) {
      if (b.fibers[i].state != State::Runnable) continue;
      b.running = &b.fibers[i];
      switch_fiber(b.scheduler, b.fibers[i].context);
      if (b.error) std::rethrow_exception(b.error);
    }
  } while (release_waiting(b));
  check_guards(b);
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

// The grids of the launches the calling thread has made since it last cleared this.
inline std::vector<dim3>& launched_grids() {
  static thread_local std::vector<dim3> grids;
  return grids;
}

// What the driver refuses with cudaErrorInvalidConfiguration or cudaErrorLaunchOutOfResources.
inline void check_launch(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes) {
  const DeviceProperties properties = device_properties();
  const auto& limits = shared_limits();
  const auto found = limits.find(kernel);
  const size_t allowed = found == limits.end() ? properties.sharedMemPerBlock : found->second;
  TORCH_CHECK(grid.x > 0 && grid.y > 0 && grid.z > 0 && grid.x <= properties.maxGridSize[0] &&
                  grid.y <= properties.maxGridSize[1] && grid.z <= properties.maxGridSize[2],
              "cuda emulation: invalid configuration argument (grid ", grid.x, "x", grid.y, "x", grid.z, " of ",
              kernel_name(kernel), "; at most ", properties.maxGridSize[0], "x", properties.maxGridSize[1], "x",
              properties.maxGridSize[2], ", none 0)");
  const size_t threads = size_t(block.x) * block.y * block.z;
  TORCH_CHECK(threads > 0 && threads <= size_t(properties.maxThreadsPerBlock) &&
                  block.x <= unsigned(properties.maxThreadsDim[0]) &&
                  block.y <= unsigned(properties.maxThreadsDim[1]) && block.z <= unsigned(properties.maxThreadsDim[2]),
              "cuda emulation: invalid configuration argument (blocks of ", block.x, "x", block.y, "x", block.z,
              " threads of ", kernel_name(kernel), "; at most ", properties.maxThreadsDim[0], "x",
              properties.maxThreadsDim[1], "x", properties.maxThreadsDim[2], " and ", properties.maxThreadsPerBlock,
              " in all)");
  TORCH_CHECK(shared_bytes <= allowed, "cuda emulation: too many resources requested for launch (", shared_bytes,
              " bytes of dynamic shared memory for ", kernel_name(kernel), ", ", allowed, " allowed)");
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, Args&&... args) {
  const void* kernel_id = reinterpret_cast<const void*>(kernel);
  check_launch(kernel_id, grid, block, shared_bytes);
  launched_grids().push_back(grid);
  const Schedule schedule = current_schedule();  // the calling thread's, for every block
  const size_t threads = size_t(block.x) * block.y * block.z;
  const std::tuple<Params...> params(std::forward<Args>(args)...);
  const std::function<void()> body = [&] { std::apply(kernel, params); };
  const int64_t blocks = int64_t(grid.x) * grid.y * grid.z;
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    Block b;
    b.kernel = kernel_id;
    b.block_dim = block;
    b.grid_dim = grid;
    b.schedule = schedule;
    b.order.resize(threads);
    b.shared_bytes = shared_bytes;
    b.shared.resize(kGuardBytes + shared_bytes + kGuardBytes);
    b.fibers.resize(threads);
    b.warps.resize((threads + kWarp - 1) / kWarp);
    for (size_t i = 0; i < threads; ++i) {
      b.fibers[i].thread_idx = {unsigned(i % block.x), unsigned(i / block.x % block.y),
                                unsigned(i / (size_t(block.x) * block.y))};
      b.stacks.emplace_back(new char[kFiberStack]);
    }
    for (int64_t linear = first; linear < last; ++linear) {
      b.linear = static_cast<uint64_t>(linear);
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
