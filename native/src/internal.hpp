// Internal definitions shared by the shim's translation units. Nothing here
// crosses the C ABI: sekit.h is the only public surface.
#pragma once

#include "sekit.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <algorithm>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

// The shim builds against Debian's libtorch 1.13 and against PyTorch 2.x wheels (CUDA
// builds); the few APIs that differ are chosen with this.
#define SEKIT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

struct sk_error {
  int32_t code;
  std::string message;
};

struct sk_tensor {
  at::Tensor t;
};

namespace sekit {

// Raised by the shim's own argument checks; becomes SK_ERR_INVALID_ARGUMENT.
struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failure of the CUDA runtime or driver; becomes SK_ERR_DEVICE.
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A collective that failed or timed out (a lost or stuck peer); becomes SK_ERR_DISTRIBUTED.
struct DistributedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The grain of an at::parallel_for over units of `size` values each: tasks of 16K+ values,
// so that a small tensor runs on the calling thread instead of waking a sleeping one (0.1-0.3
// ms with OMP_WAIT_POLICY=passive, against microseconds of work).
inline int64_t task_grain(int64_t size) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, size)); }

sk_error* make_error(int32_t code, std::string message) noexcept;

// The one error the guard returns for every exception: its code and a message without
// libtorch's C++ backtrace and source locations. Never throws.
sk_error* error_from_current_exception() noexcept;
// An exception's text without what only a C++ developer can use: libtorch's backtrace and
// "Exception raised from ..." trailer, and the "[enforce fail at file.cpp:75] " prefix.
std::string plain_message(const std::exception& e);

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw InvalidArgument(os.str());
}

at::ScalarType to_scalar_type(int32_t dtype);  // throws on an unknown code
int32_t from_scalar_type(at::ScalarType st);   // -1 when not representable
at::Device to_device(int32_t device_type, int32_t device_index);
std::string shape_str(at::IntArrayRef shape);

const at::Tensor& tensor_arg(const sk_tensor* t, const char* name);
std::vector<int64_t> shape_arg(const int64_t* shape, int64_t ndim, const char* name);

template <typename T>
T* out_arg(T* out, const char* name) {
  if (out == nullptr) fail(name, " must not be NULL");
  return out;
}

sk_tensor* new_handle(at::Tensor t);

// The cache of sekit's CPU allocator (cpu_cache.cpp): bytes held, its bound, and emptying it
// (returns the bytes released).
int64_t cpu_cache_bytes();
int64_t cpu_cache_limit();
void set_cpu_cache_limit(int64_t bytes);
int64_t empty_cpu_cache();
// Within a compute call: large blocks freed on this thread are kept for reuse.
struct CpuCacheScope {
  CpuCacheScope();
  ~CpuCacheScope();
  CpuCacheScope(const CpuCacheScope&) = delete;
  CpuCacheScope& operator=(const CpuCacheScope&) = delete;
};
// Within a one-off part of a compute call: blocks freed on this thread are not kept.
struct CpuCacheBypass {
  CpuCacheBypass();
  ~CpuCacheBypass();
  CpuCacheBypass(const CpuCacheBypass&) = delete;
  CpuCacheBypass& operator=(const CpuCacheBypass&) = delete;

 private:
  int saved_;
};
// SK_FORMAT_* -> at::MemoryFormat (channels_last only for 4-d).
at::MemoryFormat memory_format_arg(int32_t format, int64_t ndim);

}  // namespace sekit

// The one guard of every fallible entry point: no C++ exception crosses the ABI.
//   sk_error* sk_x(...) { SK_GUARD_BEGIN ... SK_GUARD_END }
#define SK_GUARD_BEGIN try {
#define SK_GUARD_END                                \
  return nullptr;                                   \
  }                                                 \
  catch (...) {                                     \
    return sekit::error_from_current_exception();   \
  }
