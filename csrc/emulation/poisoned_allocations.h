// Poison in the memory ATen allocates during an emulated op call: global scratch and
// output buffers start as NaN bytes (0xff), as dynamic shared memory does, so that a
// kernel reading global memory another thread has not written yet, or leaving part of an
// output unwritten, gives NaN instead of what an earlier call left behind (the same
// buffer, freed and allocated again, would otherwise hold the right values).
//
// A wrapper around the CPU allocator in use, installed on the first emulated call (never
// in a process that makes none); it poisons only while the calling thread is inside an
// emulated call (PoisonedAllocations), and frees through the wrapped allocator's deleters.
#pragma once

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <mutex>

namespace msca_emu {

inline bool& poisoning_allocations() {
  static thread_local bool poisoning = false;
  return poisoning;
}

class PoisoningAllocator final : public c10::Allocator {
 public:
  explicit PoisoningAllocator(c10::Allocator* wrapped) : wrapped_(wrapped) {}

  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr data = wrapped_->allocate(n);
    if (poisoning_allocations() && data.get() != nullptr) std::memset(data.get(), 0xff, n);
    return data;
  }
  c10::DeleterFnPtr raw_deleter() const override { return wrapped_->raw_deleter(); }
  bool is_simple_data_ptr(const c10::DataPtr& data) const override { return wrapped_->is_simple_data_ptr(data); }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    wrapped_->copy_data(dest, src, count);
  }

 private:
  c10::Allocator* wrapped_;
};

inline void install_poisoning_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    static PoisoningAllocator poisoning(c10::GetCPUAllocator());
    c10::SetCPUAllocator(&poisoning, /*priority=*/1);  // above the default allocator's 0
    TORCH_CHECK(c10::GetCPUAllocator() == &poisoning,
                "cuda emulation: the CPU allocator has a higher priority than the emulation's poisoning wrapper");
  });
}

// Poisons what the calling thread allocates while it lives.
class PoisonedAllocations {
 public:
  PoisonedAllocations() : previous_(poisoning_allocations()) {
    install_poisoning_allocator();
    poisoning_allocations() = true;
  }
  ~PoisonedAllocations() { poisoning_allocations() = previous_; }
  PoisonedAllocations(const PoisonedAllocations&) = delete;
  PoisonedAllocations& operator=(const PoisonedAllocations&) = delete;

 private:
  bool previous_;
};

}  // namespace msca_emu
