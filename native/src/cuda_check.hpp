// The one classification of CUDA runtime failures: a cudaError_t other than cudaSuccess
// becomes a sekit::DeviceError (SK_ERR_DEVICE) naming the call. CUDA builds only.
#pragma once

#include "internal.hpp"

#include <cuda_runtime.h>

namespace sekit {

inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw DeviceError(std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace sekit
