// The CUDA kernels' launches for float inputs, one translation unit per dtype (see msca_cuda.cu).

#include "msca_cuda_runtime.cuh"
#include "msca_cuda_driver.h"

namespace msca_fast {
namespace cuda_driver {

MSCA_CUDA_LAUNCHES(, float)

}  // namespace cuda_driver
}  // namespace msca_fast
