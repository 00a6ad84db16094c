// The fused MSCA op on CUDA tensors: registers csrc/msca_cuda_driver.h (host side) for the
// CUDA dispatch key. The kernels' launches are compiled one input dtype per translation unit
// (msca_cuda_float.cu, msca_cuda_double.cu, msca_cuda_half.cu, msca_cuda_bfloat16.cu), which a
// parallel build compiles side by side. The same code runs on the CPU through
// emulation/msca_cuda_emulated.cpp, which is how it is tested without a GPU.

#include <torch/library.h>

#include "msca_cuda_runtime.cuh"
#include "msca_cuda_driver.h"

namespace msca_fast {

TORCH_LIBRARY_IMPL(msca_fast, CUDA, m) {
  m.impl("msca_forward", &cuda_driver::msca_forward);
  m.impl("msca_backward", &cuda_driver::msca_backward);
}

}  // namespace msca_fast
