// The fused MSCA op on CUDA tensors: registers csrc/msca_cuda_driver.h (host side) and
// csrc/msca_cuda_kernels.cuh (kernels) for the CUDA dispatch key. The same two files run
// on the CPU through emulation/msca_cuda_emulated.cpp, which is how they are tested
// without a GPU.

#include <torch/library.h>

#include "msca_cuda_runtime.cuh"
#include "msca_cuda_driver.h"

namespace msca_fast {

TORCH_LIBRARY_IMPL(msca_fast, CUDA, m) {
  m.impl("msca_forward", &cuda_driver::msca_forward);
  m.impl("msca_backward", &cuda_driver::msca_backward);
}

}  // namespace msca_fast
