// The CUDA kernels' launch plan: grid sizes, tiles and shared-memory needs of every kernel,
// in plain C++ so that the operator library can export it to Python (why_not declines what
// a device cannot hold; the static gates and benchmarks/cuda_resources.py read the launches
// of the benchmark shapes) and the driver launches exactly what it says.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

namespace msca_fast {
namespace cuda_limits {

constexpr int kThreads = 256;  // threads per block of every kernel
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
// Threads that share one pixel's channel sums at most (a tile of kThreads / 64 = 4 pixels).
constexpr int kMaxLanesPerPixel = 64;
// Chunks of one batch element's pixels at most (the combine kernel keeps a weight per chunk
// and region in shared memory: 32 KiB at 32 regions).
constexpr int64_t kMaxChunks = 256;
// The reduction sweeps aim at this many blocks a SM when the pixels allow it (two resident
// blocks of 256 threads: 25% occupancy).
constexpr int64_t kBlocksPerSM = 2;

// Regions a kernel serves: 32, or 16 in float64, whose per-thread arrays of 32 doubles
// would not fit the 128 registers a thread may use at two blocks a SM.
constexpr int64_t max_regions(int64_t element_size) { return element_size == 8 ? 16 : 32; }

// K padded to the kernels' template parameter KP (8, 16 or 32).
constexpr int padded_regions(int64_t K) { return K <= 8 ? 8 : K <= 16 ? 16 : 32; }

// Target pixels each thread of the distribute kernel computes: two where the 2 x KP
// accumulators fit in registers (float, KP <= 16), so that each weight load serves two FMAs.
constexpr int distribute_pixels_per_thread(int KP, int64_t acc_bytes) { return acc_bytes == 4 && KP <= 16 ? 2 : 1; }

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Lanes a pixel may be split over when each thread holds `words` 4-byte words of partial
// sums: splitting needs registers beside them, and past 32 words (the sweeps' 2 x 32 floats,
// or 2 x 16 doubles) the 128 a thread has would spill; those kernels keep one lane a pixel.
constexpr int max_lanes_per_pixel(int64_t words) { return words > 32 ? 1 : kMaxLanesPerPixel; }

// A tile: kThreads / lanes pixels (times the pixels per thread), each pixel's channel sums
// split over `lanes` threads. Tile rows in shared memory are 4 words longer than the tile:
// 16-byte aligned, and 4 banks apart (a quarter warp reading 16 bytes of 8 rows is
// conflict-free).
constexpr int64_t tile_width(int lanes, int pixels_per_thread) { return int64_t(pixels_per_thread) * kThreads / lanes; }
constexpr int64_t tile_stride(int lanes, int pixels_per_thread) { return tile_width(lanes, pixels_per_thread) + 4; }

// Partial sums that reduce_columns (msca_cuda_kernels.cuh) keeps per tile column: one set per
// group of lanes (per warp when a warp holds several lanes of a pixel), none for one lane.
constexpr int partial_groups(int lanes) { return lanes == 1 ? 0 : kThreads / lanes >= kWarpSize ? lanes : kWarps; }

// Offsets (in elements of the accumulation type) of a pixel kernel's shared memory:
// [weights][product tile: tile_rows rows][partial sums: partial_rows rows per group].
struct TileLayout {
  int64_t tile, partial, total;
};

constexpr TileLayout tile_layout(int64_t weights, int64_t tile_rows, int64_t partial_rows, int lanes,
                                 int pixels_per_thread) {
  const int64_t stride = tile_stride(lanes, pixels_per_thread);
  const int64_t partial = weights + tile_rows * stride;
  return {weights, partial, partial + partial_groups(lanes) * partial_rows * stride};
}

// The weights each pixel kernel stages, transposed to (channels, KP) and zero-padded, with
// the per-region vectors it keeps (running max, sum and rescale; biases; lse and delta).
constexpr int64_t aggregate_weights(int KP, int64_t N, int64_t M2) { return (N + M2) * KP + 3 * KP; }
constexpr int64_t distribute_weights(int KP, int64_t N, int64_t M1) { return (M1 + N) * KP + KP; }
constexpr int64_t sweep_a_weights(int KP, int64_t N, int64_t M1) { return (M1 + N) * KP + KP; }
constexpr int64_t sweep_b_weights(int KP, int64_t N, int64_t M2) { return (N + M2 + N) * KP + 2 * KP; }

constexpr TileLayout aggregate_layout(int KP, int64_t N, int64_t M2, int lanes) {
  return tile_layout(aggregate_weights(KP, N, M2), KP, KP, lanes, 1);
}
constexpr TileLayout distribute_layout(int KP, int64_t N, int64_t M1, int lanes, int pixels_per_thread) {
  return tile_layout(distribute_weights(KP, N, M1), 0, KP, lanes, pixels_per_thread);
}
constexpr TileLayout sweep_a_layout(int KP, int64_t N, int64_t M1, int lanes) {
  return tile_layout(sweep_a_weights(KP, N, M1), 2 * KP, 2 * KP, lanes, 1);
}
constexpr TileLayout sweep_b_layout(int KP, int64_t N, int64_t M2, int lanes) {
  return tile_layout(sweep_b_weights(KP, N, M2), KP, 2 * KP, lanes, 1);
}
// The combine kernel: a weight per chunk and region, and one sum per thread.
constexpr int64_t combine_shared(int KP, int64_t chunks) { return chunks * KP + kThreads; }
// The kernels that add partial sums over chunks: one sum per thread.
constexpr int64_t totals_shared() { return kThreads; }

// One batch of sizes, as the driver sees them.
struct Shape {
  int64_t B, N, M2, M1, K, P2, P1, acc_bytes;
};

enum Stage : int { kAggregate, kCombine, kDistribute, kSweepA, kBetweenSweeps, kSweepB, kPhiGradient, kStages };
constexpr const char* kStageNames[kStages] = {"aggregate", "combine",  "distribute",  "sweep_a",
                                              "between_sweeps", "sweep_b", "phi_gradient"};

struct Launch {
  int64_t grid_x = 1, grid_y = 1;
  int lanes = 1, pixels_per_thread = 1;
  int64_t chunk = 0, chunks = 1;  // pixels per block and blocks per batch element (pixel kernels)
  int64_t shared_bytes = 0;       // dynamic shared memory a block
};

// A pixel kernel's tiling of `pixels` pixels per batch element: the fewest lanes per pixel
// whose tiles give every SM a block; reduction sweeps (`chunked`) then group whole tiles
// into chunks, kBlocksPerSM blocks a SM where there are enough tiles.
inline Launch pixel_launch(int64_t pixels, int64_t B, int sms, int pixels_per_thread, bool chunked, int lanes,
                           int most_lanes) {
  if (lanes == 0) {
    lanes = 1;
    while (lanes < most_lanes && B * ceil_div(pixels, tile_width(lanes, pixels_per_thread)) < sms) lanes *= 2;
  }
  Launch l;
  l.lanes = lanes;
  l.pixels_per_thread = pixels_per_thread;
  const int64_t width = tile_width(lanes, pixels_per_thread), tiles = ceil_div(pixels, width);
  int64_t tiles_per_chunk = 1;
  if (chunked) {
    const int64_t wanted = std::max<int64_t>(1, ceil_div(kBlocksPerSM * sms, B));
    tiles_per_chunk = std::max(ceil_div(tiles, wanted), ceil_div(tiles, kMaxChunks));
  }
  l.chunk = tiles_per_chunk * width;
  l.chunks = ceil_div(pixels, l.chunk);
  l.grid_x = l.chunks;
  l.grid_y = B;
  return l;
}

// Every kernel's launch for `s` on a device with `sms` SMs and `optin` bytes of shared
// memory a block. A pixel kernel whose tiling needs more shared memory than `optin` falls
// back to one lane per pixel (the tiling shared_bytes_needed reports).
inline std::array<Launch, kStages> launch_plan(const Shape& s, int sms, int64_t optin) {
  const int KP = padded_regions(s.K);
  const int64_t e = s.acc_bytes, C2 = s.N + s.M2;
  const int ppt = distribute_pixels_per_thread(KP, e);
  std::array<Launch, kStages> plan{};
  // rows: the partial sums a thread holds per pixel.
  auto pixel = [&](Stage stage, int64_t pixels, int pixels_per_thread, int rows, bool chunked, auto layout) {
    const int most = max_lanes_per_pixel(rows * pixels_per_thread * e / 4);
    Launch l = pixel_launch(pixels, s.B, sms, pixels_per_thread, chunked, 0, most);
    if (e * layout(l.lanes).total > optin) l = pixel_launch(pixels, s.B, sms, pixels_per_thread, chunked, 1, 1);
    l.shared_bytes = e * layout(l.lanes).total;
    plan[stage] = l;
  };
  pixel(kAggregate, s.P2, 1, KP, true, [&](int lanes) { return aggregate_layout(KP, s.N, s.M2, lanes); });
  pixel(kDistribute, s.P1, ppt, KP, false, [&](int lanes) { return distribute_layout(KP, s.N, s.M1, lanes, ppt); });
  pixel(kSweepA, s.P1, 1, 2 * KP, true, [&](int lanes) { return sweep_a_layout(KP, s.N, s.M1, lanes); });
  pixel(kSweepB, s.P2, 1, 2 * KP, true, [&](int lanes) { return sweep_b_layout(KP, s.N, s.M2, lanes); });
  const int64_t chunks = plan[kAggregate].chunks;
  plan[kCombine].grid_x = ceil_div(s.N * KP, kWarpSize);
  plan[kCombine].grid_y = s.B;
  plan[kCombine].shared_bytes = e * combine_shared(KP, chunks);
  plan[kBetweenSweeps].grid_x = ceil_div(s.B * s.N * KP, kWarpSize) + ceil_div((s.M1 + 1) * KP, kWarpSize);
  plan[kBetweenSweeps].shared_bytes = e * totals_shared();
  plan[kPhiGradient].grid_x = ceil_div(C2 * KP, kWarpSize);
  plan[kPhiGradient].shared_bytes = e * totals_shared();
  return plan;
}

// Dynamic shared memory a block of the forward (aggregate or distribute), the target sweep and
// the exemplar sweep needs at the least (one lane per pixel), in bytes: what the device must
// offer for the op to run.
inline std::array<int64_t, 3> shared_bytes_needed(int64_t N, int64_t M2, int64_t M1, int64_t K, int64_t acc_bytes) {
  const int KP = padded_regions(K);
  const int ppt = distribute_pixels_per_thread(KP, acc_bytes);
  const int64_t forward = std::max(aggregate_layout(KP, N, M2, 1).total, distribute_layout(KP, N, M1, 1, ppt).total);
  return {acc_bytes * forward, acc_bytes * sweep_a_layout(KP, N, M1, 1).total,
          acc_bytes * sweep_b_layout(KP, N, M2, 1).total};
}

}  // namespace cuda_limits
}  // namespace msca_fast
