// Runs an emulated op call once under each configured schedule (schedules.h) and fails
// unless every run gives the same bits in every output: a result that depends on the order
// in which a block's threads run is a race. Each run's allocations are poisoned
// (poisoned_allocations.h). The configured schedules are a setting of the op library
// (set_schedules); "ascending" alone, the default, runs each call once.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda_emulation.h"
#include "poisoned_allocations.h"
#include "schedules.h"

namespace msca_emu {

struct ScheduleSetting {
  std::mutex mutex;
  std::vector<Schedule> schedules{Schedule{}};
};

inline ScheduleSetting& schedule_setting() {
  static ScheduleSetting setting;
  return setting;
}

inline void set_schedules(const std::string& text) {
  std::vector<Schedule> parsed = parse_schedules(text);
  ScheduleSetting& setting = schedule_setting();
  const std::lock_guard<std::mutex> lock(setting.mutex);
  setting.schedules = std::move(parsed);
}

inline std::vector<Schedule> configured_schedules() {
  ScheduleSetting& setting = schedule_setting();
  const std::lock_guard<std::mutex> lock(setting.mutex);
  return setting.schedules;
}

// Fails unless a and b, output `index` of `op` under schedules first and other, hold the
// same bits (so NaN equals NaN of the same payload).
inline void check_same_bits(const char* op, size_t index, const at::Tensor& a, const at::Tensor& b,
                            const Schedule& first, const Schedule& other) {
  const std::string what = std::string("cuda emulation: output ") + std::to_string(index) + " of " + op;
  const std::string runs = " under schedules " + first.name() + " and " + other.name();
  TORCH_CHECK(a.defined() == b.defined(), what, " is defined in one run only", runs);
  if (!a.defined()) return;
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes(), what, " has different dtypes or sizes",
              runs);
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  const size_t element = ca.element_size(), bytes = ca.numel() * element;
  const auto* pa = static_cast<const unsigned char*>(ca.data_ptr());
  const auto* pb = static_cast<const unsigned char*>(cb.data_ptr());
  if (std::memcmp(pa, pb, bytes) == 0) return;
  size_t i = 0;
  while (std::memcmp(pa + i * element, pb + i * element, element) == 0) ++i;
  TORCH_CHECK(false, what, " differs", runs, ": element ", i, " of ", ca.numel(), " is ",
              ca.view(-1)[i].item<double>(), " and ", cb.view(-1)[i].item<double>(),
              " (a race between the threads of a block)");
}

inline void check_same_outputs(const char* op, const at::Tensor& a, const at::Tensor& b, const Schedule& first,
                               const Schedule& other) {
  check_same_bits(op, 0, a, b, first, other);
}

template <typename... T>
void check_same_outputs(const char* op, const std::tuple<T...>& a, const std::tuple<T...>& b, const Schedule& first,
                        const Schedule& other) {
  [&]<size_t... I>(std::index_sequence<I...>) {
    (check_same_bits(op, I, std::get<I>(a), std::get<I>(b), first, other), ...);
  }(std::index_sequence_for<T...>{});
}

// Sets the calling thread's schedule for the life of one run.
class ScheduleScope {
 public:
  explicit ScheduleScope(const Schedule& s) : previous_(current_schedule()) { current_schedule() = s; }
  ~ScheduleScope() { current_schedule() = previous_; }
  ScheduleScope(const ScheduleScope&) = delete;
  ScheduleScope& operator=(const ScheduleScope&) = delete;

 private:
  Schedule previous_;
};

// run() under each configured schedule, its allocations poisoned; the first run's result
// once all runs agree. launched_grids() then holds the grids of the last run's launches.
template <typename Run>
auto run_under_schedules(const char* op, Run&& run) -> decltype(run()) {
  const std::vector<Schedule> schedules = configured_schedules();
  const PoisonedAllocations poisoned;
  auto run_under = [&](const Schedule& s) {
    const ScheduleScope scope(s);
    launched_grids().clear();
    return run();
  };
  auto first = run_under(schedules[0]);
  for (size_t i = 1; i < schedules.size(); ++i) {
    check_same_outputs(op, first, run_under(schedules[i]), schedules[0], schedules[i]);
  }
  return first;
}

}  // namespace msca_emu
