// Internal definitions shared by the shim's translation units. Nothing here
// crosses the C ABI: sekit.h is the only public surface.
#pragma once

#include "sekit.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

struct sk_error {
  int32_t code;
  std::string message;
};

struct sk_tensor {
  at::Tensor t;
};

namespace sekit {

class Module;

// Raised by the shim's own argument checks; becomes SK_ERR_INVALID_ARGUMENT.
struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

sk_error* make_error(int32_t code, std::string message) noexcept;

// libtorch's messages end with a C++ backtrace on some builds; keep the text.
std::string torch_message(const c10::Error& e);

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
// SK_FORMAT_* -> at::MemoryFormat (channels_last only for 4-d).
at::MemoryFormat memory_format_arg(int32_t format, int64_t ndim);

}  // namespace sekit

// One guard for every fallible entry point: no C++ exception crosses the ABI.
#define SK_GUARD_BEGIN try {
#define SK_GUARD_END                                                             \
  return nullptr;                                                                \
  }                                                                              \
  catch (const sekit::InvalidArgument& e) {                                      \
    return sekit::make_error(SK_ERR_INVALID_ARGUMENT, e.what());                 \
  }                                                                              \
  catch (const c10::OutOfMemoryError& e) {                                       \
    return sekit::make_error(SK_ERR_OUT_OF_MEMORY, sekit::torch_message(e));     \
  }                                                                              \
  catch (const c10::IndexError& e) {                                             \
    return sekit::make_error(SK_ERR_INVALID_ARGUMENT, sekit::torch_message(e));  \
  }                                                                              \
  catch (const c10::ValueError& e) {                                             \
    return sekit::make_error(SK_ERR_INVALID_ARGUMENT, sekit::torch_message(e));  \
  }                                                                              \
  catch (const c10::TypeError& e) {                                              \
    return sekit::make_error(SK_ERR_INVALID_ARGUMENT, sekit::torch_message(e));  \
  }                                                                              \
  catch (const c10::Error& e) {                                                  \
    return sekit::make_error(sekit::classify_torch_error(e), sekit::torch_message(e)); \
  }                                                                              \
  catch (const std::bad_alloc&) {                                                \
    return sekit::make_error(SK_ERR_OUT_OF_MEMORY, "out of memory");             \
  }                                                                              \
  catch (const std::exception& e) {                                              \
    return sekit::make_error(SK_ERR_INTERNAL, e.what());                         \
  }                                                                              \
  catch (...) {                                                                  \
    return sekit::make_error(SK_ERR_INTERNAL, "unknown C++ exception in libsekit"); \
  }

namespace sekit {
int32_t classify_torch_error(const c10::Error& e);
}
