// Host-side CUDA services of the C ABI: page-locking caller memory, synchronisation.
// Without CUDA (a CPU libtorch) each call fails with a clear SK_ERR_DEVICE error.
#include "internal.hpp"

#ifdef SEKIT_WITH_CUDA
#include "cuda_check.hpp"
#endif

using namespace sekit;

#ifndef SEKIT_WITH_CUDA
namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw DeviceError(std::string(what) + ": this libsekit was built against a libtorch without CUDA; "
                    "rebuild against a CUDA libtorch (see the README's GPU section)");
}
}  // namespace
#endif

extern "C" {

sk_error* sk_cuda_host_register(void* data, size_t bytes) {
  SK_GUARD_BEGIN
  if (data == nullptr) fail("data must not be NULL");
  if (bytes == 0) fail("bytes must be > 0");
#ifdef SEKIT_WITH_CUDA
  check_cuda(cudaHostRegister(data, bytes, cudaHostRegisterDefault), "cudaHostRegister");
#else
  no_cuda("sk_cuda_host_register");
#endif
  SK_GUARD_END
}

sk_error* sk_cuda_host_unregister(void* data) {
  SK_GUARD_BEGIN
  if (data == nullptr) fail("data must not be NULL");
#ifdef SEKIT_WITH_CUDA
  check_cuda(cudaHostUnregister(data), "cudaHostUnregister");
#else
  no_cuda("sk_cuda_host_unregister");
#endif
  SK_GUARD_END
}

sk_error* sk_cuda_synchronize(int32_t device_index) {
  SK_GUARD_BEGIN
  if (device_index < 0) fail("device_index must be >= 0, got ", device_index);
#ifdef SEKIT_WITH_CUDA
  int count = 0;
  check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device_index >= count) fail("CUDA device index ", device_index, " out of range (", count, " device(s))");
  int current = 0;
  check_cuda(cudaGetDevice(&current), "cudaGetDevice");
  check_cuda(cudaSetDevice(device_index), "cudaSetDevice");
  cudaError_t e = cudaDeviceSynchronize();
  cudaSetDevice(current);
  check_cuda(e, "cudaDeviceSynchronize");
#else
  no_cuda("sk_cuda_synchronize");
#endif
  SK_GUARD_END
}

}  // extern "C"
