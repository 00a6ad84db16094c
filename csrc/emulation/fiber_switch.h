// Switching the OS thread between fibers (the emulated threads of a block) and the block's
// scheduler. On x86-64 a switch saves the callee-saved registers on the running stack and
// loads the other stack pointer: a few instructions. Other architectures use glibc's
// swapcontext, which also saves and restores the signal mask with a system call on every
// switch: on x86-64 that took most of the emulation's time (a float32 forward of
// B = 2, 128x128: 0.24 s with swapcontext, 0.026 s with this switch).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__)

// msca_emu_switch_stack(save, load): pushes rbp, rbx, r12-r15, stores rsp to *save, sets
// rsp = load, pops the same registers of the context saved there and returns into it.
// Weak and hidden: one copy a library, whichever translation units include this.
asm(R"(
    .text
    .p2align 4
    .weak msca_emu_switch_stack
    .hidden msca_emu_switch_stack
    .type msca_emu_switch_stack, @function
msca_emu_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size msca_emu_switch_stack, .-msca_emu_switch_stack
)");

extern "C" void msca_emu_switch_stack(void** save, void* load);

namespace msca_emu {

// A suspended execution: the stack pointer its registers were saved at.
struct FiberContext {
  void* sp = nullptr;
};

// The first switch to `context` calls entry() on the stack [stack, stack + size);
// entry must never return (it switches away for the last time instead).
inline void prepare_fiber(FiberContext& context, char* stack, size_t size, void (*entry)()) {
  auto top = reinterpret_cast<void**>(reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t(15));
  *--top = nullptr;                            // entry's return address: none
  *--top = reinterpret_cast<void*>(entry);     // where the switch's ret goes
  for (int i = 0; i < 6; ++i) *--top = nullptr;  // rbp, rbx, r12-r15
  context.sp = top;
}

// Saves the running execution into `from` and resumes `to`.
inline void switch_fiber(FiberContext& from, const FiberContext& to) { msca_emu_switch_stack(&from.sp, to.sp); }

}  // namespace msca_emu

#else  // other architectures: ucontext

#include <ucontext.h>

namespace msca_emu {

struct FiberContext {
  ucontext_t context;
};

inline void prepare_fiber(FiberContext& context, char* stack, size_t size, void (*entry)()) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = size;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
}

inline void switch_fiber(FiberContext& from, const FiberContext& to) { swapcontext(&from.context, &to.context); }

}  // namespace msca_emu

#endif
