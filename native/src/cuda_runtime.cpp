// Host-side CUDA services of the C ABI: page-locking caller memory, synchronisation.
// Without CUDA (a CPU libtorch) each call fails with a clear SK_ERR_DEVICE error.
#include "internal.hpp"

#ifdef SEKIT_WITH_CUDA
#include <cuda_runtime.h>
#endif

using namespace sekit;

#ifndef SEKIT_WITH_CUDA
namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw std::runtime_error(std::string(what) + ": this libsekit was built against a libtorch without CUDA; "
                           "rebuild against a CUDA libtorch (see the README's GPU section)");
}
}  // namespace
#endif

#define SK_DEVICE_GUARD_END                                                           \
  return nullptr;                                                                     \
  }                                                                                   \
  catch (const sekit::InvalidArgument& e) {                                           \
    return sekit::make_error(SK_ERR_INVALID_ARGUMENT, e.what());                      \
  }                                                                                   \
  catch (const std::exception& e) {                                                   \
    return sekit::make_error(SK_ERR_DEVICE, e.what());                                \
  }                                                                                   \
  catch (...) {                                                                       \
    return sekit::make_error(SK_ERR_INTERNAL, "unknown C++ exception in libsekit");   \
  }

extern "C" {

sk_error* sk_cuda_host_register(void* data, size_t bytes) {
  SK_GUARD_BEGIN
  if (data == nullptr) fail("data must not be NULL");
  if (bytes == 0) fail("bytes must be > 0");
#ifdef SEKIT_WITH_CUDA
  cudaError_t e = cudaHostRegister(data, bytes, cudaHostRegisterDefault);
  if (e != cudaSuccess) throw std::runtime_error(std::string("cudaHostRegister: ") + cudaGetErrorString(e));
#else
  no_cuda("sk_cuda_host_register");
#endif
  SK_DEVICE_GUARD_END
}

sk_error* sk_cuda_host_unregister(void* data) {
  SK_GUARD_BEGIN
  if (data == nullptr) fail("data must not be NULL");
#ifdef SEKIT_WITH_CUDA
  cudaError_t e = cudaHostUnregister(data);
  if (e != cudaSuccess) throw std::runtime_error(std::string("cudaHostUnregister: ") + cudaGetErrorString(e));
#else
  no_cuda("sk_cuda_host_unregister");
#endif
  SK_DEVICE_GUARD_END
}

sk_error* sk_cuda_synchronize(int32_t device_index) {
  SK_GUARD_BEGIN
  if (device_index < 0) fail("device_index must be >= 0, got ", device_index);
#ifdef SEKIT_WITH_CUDA
  int count = 0;
  cudaGetDeviceCount(&count);
  if (device_index >= count) fail("CUDA device index ", device_index, " out of range (", count, " device(s))");
  int current = 0;
  cudaGetDevice(&current);
  cudaSetDevice(device_index);
  cudaError_t e = cudaDeviceSynchronize();
  cudaSetDevice(current);
  if (e != cudaSuccess) throw std::runtime_error(std::string("cudaDeviceSynchronize: ") + cudaGetErrorString(e));
#else
  no_cuda("sk_cuda_synchronize");
#endif
  SK_DEVICE_GUARD_END
}

}  // extern "C"
