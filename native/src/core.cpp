// Library info, errors and tensors of the C ABI.
#include "internal.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/version.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace sekit {

namespace {

// Returned when even the error object cannot be allocated; sk_error_free knows it by its
// address.
sk_error static_oom{SK_ERR_OUT_OF_MEMORY, "out of memory (while reporting an error)"};

}  // namespace

std::string plain_message(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string msg = c10 != nullptr ? c10->what_without_backtrace() : e.what();
  auto pos = msg.find("\nException raised from");
  if (pos != std::string::npos) msg.erase(pos);
  if (msg.rfind("[enforce fail at ", 0) == 0) {
    auto close = msg.find("] ");
    if (close != std::string::npos) msg.erase(0, close + 2);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

namespace {

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// The code of a libtorch error. Out-of-memory errors are recognised by type (CUDA) or by
// the CPU allocator's message, CUDA runtime failures by the prefix libtorch's CUDA checks
// give them; everything else libtorch refuses is a shape, dtype or device mistake.
int32_t classify(const c10::Error& e, const std::string& msg) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return SK_ERR_OUT_OF_MEMORY;
  if (contains(msg, "DefaultCPUAllocator") || contains(msg, "out of memory")) return SK_ERR_OUT_OF_MEMORY;
  if (msg.rfind("CUDA error", 0) == 0 || msg.rfind("CUDA driver error", 0) == 0 ||
      contains(msg, "CUBLAS_STATUS") || contains(msg, "cuDNN error"))
    return SK_ERR_DEVICE;
  return SK_ERR_INVALID_ARGUMENT;
}

// "err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes.
// Error code 12 (...)" -> a plain sentence that says what failed.
std::string oom_message(const std::string& msg) {
  const char* key = "you tried to allocate ";
  auto pos = msg.find(key);
  if (pos == std::string::npos) return "out of memory: " + msg;
  std::string bytes = msg.substr(pos + std::strlen(key));
  auto end = bytes.find(' ');
  return "out of memory: could not allocate " + bytes.substr(0, end) + " bytes of host memory";
}

}  // namespace

sk_error* make_error(int32_t code, std::string message) noexcept {
  try {
    return new sk_error{code, std::move(message)};
  } catch (...) {
    return &static_oom;
  }
}

sk_error* error_from_current_exception() noexcept {
  try {
    throw;
  } catch (const InvalidArgument& e) {
    return make_error(SK_ERR_INVALID_ARGUMENT, e.what());
  } catch (const DeviceError& e) {
    return make_error(SK_ERR_DEVICE, e.what());
  } catch (const DistributedError& e) {
    return make_error(SK_ERR_DISTRIBUTED, e.what());
  } catch (const c10::Error& e) {
    try {
      std::string msg = plain_message(e);
      int32_t code = classify(e, msg);
      if (code == SK_ERR_OUT_OF_MEMORY && !dynamic_cast<const c10::OutOfMemoryError*>(&e)) msg = oom_message(msg);
      return make_error(code, std::move(msg));
    } catch (...) {
      return &static_oom;
    }
  } catch (const std::bad_alloc&) {
    return make_error(SK_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return make_error(SK_ERR_INTERNAL, e.what());
  } catch (...) {
    return make_error(SK_ERR_INTERNAL, "unknown C++ exception in libsekit");
  }
}

at::ScalarType to_scalar_type(int32_t dtype) {
  switch (dtype) {
    case SK_FLOAT32: return at::kFloat;
    case SK_FLOAT64: return at::kDouble;
    case SK_FLOAT16: return at::kHalf;
    case SK_BFLOAT16: return at::kBFloat16;
    case SK_INT64: return at::kLong;
    default: fail("unknown dtype code ", dtype, " (expected 0..4)");
  }
}

int32_t from_scalar_type(at::ScalarType st) {
  switch (st) {
    case at::kFloat: return SK_FLOAT32;
    case at::kDouble: return SK_FLOAT64;
    case at::kHalf: return SK_FLOAT16;
    case at::kBFloat16: return SK_BFLOAT16;
    case at::kLong: return SK_INT64;
    default: return -1;
  }
}

at::Device to_device(int32_t device_type, int32_t device_index) {
  if (device_type == SK_DEVICE_CPU) {
    if (device_index != -1 && device_index != 0)
      fail("CPU device index must be -1 or 0, got ", device_index);
    return at::Device(at::kCPU);
  }
  if (device_type == SK_DEVICE_CUDA) {
    if (!at::hasCUDA()) fail("CUDA device requested but this libsekit/libtorch has no usable CUDA");
    int64_t count = static_cast<int64_t>(at::detail::getCUDAHooks().getNumGPUs());
    int32_t idx = device_index < 0 ? 0 : device_index;
    if (idx >= count) fail("CUDA device index ", idx, " out of range (", count, " device(s))");
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(idx));
  }
  fail("unknown device type ", device_type, " (expected 0 = CPU or 1 = CUDA)");
}

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

const at::Tensor& tensor_arg(const sk_tensor* t, const char* name) {
  if (t == nullptr) fail(name, " must not be NULL");
  if (!t->t.defined()) fail(name, " is an undefined tensor");
  return t->t;
}

std::vector<int64_t> shape_arg(const int64_t* shape, int64_t ndim, const char* name) {
  if (ndim < 0 || ndim > 16) fail(name, ": ndim must be in [0, 16], got ", ndim);
  if (ndim > 0 && shape == nullptr) fail(name, " must not be NULL when ndim > 0");
  std::vector<int64_t> v(shape, shape + ndim);
  for (int64_t i = 0; i < ndim; ++i)
    if (v[i] < 1) fail(name, "[", i, "] is ", v[i], "; sizes must be >= 1");
  return v;
}

sk_tensor* new_handle(at::Tensor t) { return new sk_tensor{std::move(t)}; }

at::MemoryFormat memory_format_arg(int32_t format, int64_t ndim) {
  if (format == SK_FORMAT_CONTIGUOUS) return at::MemoryFormat::Contiguous;
  if (format == SK_FORMAT_CHANNELS_LAST) {
    if (ndim != 4) fail("channels_last needs a 4-d tensor, this one is ", ndim, "-d");
    return at::MemoryFormat::ChannelsLast;
  }
  fail("unknown memory format ", format, " (0 contiguous, 1 channels_last)");
}

static int32_t floating_dtype_arg(int32_t dtype) {
  at::ScalarType st = to_scalar_type(dtype);
  if (!at::isFloatingType(st)) fail("dtype code ", dtype, " is not a floating dtype");
  return dtype;
}

static sk_error* factory(const int64_t* shape, int64_t ndim, int32_t dtype, int32_t device_type,
                         int32_t device_index, sk_tensor** out,
                         at::Tensor (*make)(at::IntArrayRef, const at::TensorOptions&),
                         bool floating_only = false) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  if (floating_only) floating_dtype_arg(dtype);
  auto sizes = shape_arg(shape, ndim, "shape");
  auto opts = at::TensorOptions().dtype(to_scalar_type(dtype)).device(to_device(device_type, device_index));
  *out = new_handle(make(sizes, opts));
  SK_GUARD_END
}

}  // namespace sekit

using namespace sekit;

extern "C" {

int32_t sk_abi_version(void) { return SK_ABI_VERSION; }

const char* sk_torch_version(void) { return TORCH_VERSION; }

int32_t sk_noop(int32_t x) { return x; }

int32_t sk_cuda_available(void) {
  try {
    return at::hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0 ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int32_t sk_cuda_device_count(void) {
  try {
    return at::hasCUDA() ? static_cast<int32_t>(at::detail::getCUDAHooks().getNumGPUs()) : 0;
  } catch (...) {
    return 0;
  }
}

int32_t sk_max_num_threads(void) {
  const unsigned cores = std::thread::hardware_concurrency();
  return static_cast<int32_t>(std::max(8u, 4u * (cores == 0 ? 1u : cores)));
}

sk_error* sk_set_num_threads(int32_t n) {
  SK_GUARD_BEGIN
  const int32_t max = sk_max_num_threads();
  if (n < 1 || n > max)
    fail("number of threads must be in [1, ", max, "] (4 per core of this machine), got ", n);
  at::set_num_threads(n);
  SK_GUARD_END
}

int32_t sk_get_num_threads(void) {
  try {
    return static_cast<int32_t>(at::get_num_threads());
  } catch (...) {
    return -1;
  }
}

sk_error* sk_cuda_set_allow_tf32(int32_t convolutions, int32_t matmul) {
  SK_GUARD_BEGIN
  if (convolutions != 0 && convolutions != 1) fail("convolutions must be 0 or 1, got ", convolutions);
  if (matmul != 0 && matmul != 1) fail("matmul must be 0 or 1, got ", matmul);
  at::globalContext().setAllowTF32CuDNN(convolutions == 1);
  at::globalContext().setAllowTF32CuBLAS(matmul == 1);
  SK_GUARD_END
}

sk_error* sk_cuda_allow_tf32(int32_t* out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  const auto& c = at::globalContext();
  *out = (c.allowTF32CuDNN() ? SK_TF32_CONVOLUTIONS : 0) | (c.allowTF32CuBLAS() ? SK_TF32_MATMUL : 0);
  SK_GUARD_END
}

sk_error* sk_manual_seed(uint64_t seed) {
  SK_GUARD_BEGIN
  at::manual_seed(seed);
  SK_GUARD_END
}

int32_t sk_error_code(const sk_error* err) { return err ? err->code : 0; }

const char* sk_error_message(const sk_error* err) { return err ? err->message.c_str() : ""; }

void sk_error_free(sk_error* err) {
  if (err != &static_oom) delete err;
}

sk_error* sk_tensor_from_blob(void* data, size_t data_bytes, const int64_t* shape,
                              const int64_t* strides, int64_t ndim, int32_t dtype,
                              sk_tensor** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  if (data == nullptr) fail("data must not be NULL");
  auto sizes = shape_arg(shape, ndim, "shape");
  at::ScalarType st = to_scalar_type(dtype);
  const int64_t esize = static_cast<int64_t>(c10::elementSize(st));
  if (reinterpret_cast<uintptr_t>(data) % static_cast<uintptr_t>(esize) != 0)
    fail("data address 0x", std::hex, reinterpret_cast<uintptr_t>(data), std::dec,
         " is not aligned to ", esize, " bytes as ", c10::toString(st), " requires");
  std::vector<int64_t> st_v;
  if (strides != nullptr) {
    st_v.assign(strides, strides + ndim);
    for (int64_t i = 0; i < ndim; ++i)
      if (st_v[i] < 0) fail("strides[", i, "] is ", st_v[i], "; strides must be >= 0");
  } else {
    st_v.assign(static_cast<size_t>(ndim), 1);
    for (int64_t i = ndim - 2; i >= 0; --i) {
      if (sizes[i + 1] > 0 && st_v[i + 1] > INT64_MAX / sizes[i + 1]) fail("shape is too large");
      st_v[i] = st_v[i + 1] * sizes[i + 1];
    }
  }
  // Largest element offset reachable, then the bytes that span needs.
  int64_t last = 0;
  for (int64_t i = 0; i < ndim; ++i) {
    if (st_v[i] != 0 && sizes[i] - 1 > (INT64_MAX - last) / st_v[i]) fail("shape is too large");
    last += (sizes[i] - 1) * st_v[i];
  }
  if (last >= INT64_MAX / esize) fail("shape is too large");
  const uint64_t need = static_cast<uint64_t>(last + 1) * static_cast<uint64_t>(esize);
  if (need > data_bytes)
    fail("shape ", shape_str(sizes), " of ", c10::toString(st), " needs ", need,
         " bytes but the memory holds ", data_bytes);
  auto opts = at::TensorOptions().dtype(st).device(at::kCPU);
  *out = new_handle(at::from_blob(data, sizes, st_v, opts));
  SK_GUARD_END
}

sk_error* sk_tensor_empty(const int64_t* shape, int64_t ndim, int32_t dtype, int32_t device_type,
                          int32_t device_index, sk_tensor** out) {
  return factory(shape, ndim, dtype, device_type, device_index, out,
                 [](at::IntArrayRef s, const at::TensorOptions& o) { return at::empty(s, o); });
}

sk_error* sk_tensor_zeros(const int64_t* shape, int64_t ndim, int32_t dtype, int32_t device_type,
                          int32_t device_index, sk_tensor** out) {
  return factory(shape, ndim, dtype, device_type, device_index, out,
                 [](at::IntArrayRef s, const at::TensorOptions& o) { return at::zeros(s, o); });
}

sk_error* sk_tensor_randn(const int64_t* shape, int64_t ndim, int32_t dtype, int32_t device_type,
                          int32_t device_index, sk_tensor** out) {
  return factory(shape, ndim, dtype, device_type, device_index, out,
                 [](at::IntArrayRef s, const at::TensorOptions& o) { return at::randn(s, o); },
                 /*floating_only=*/true);
}

sk_error* sk_tensor_rand(const int64_t* shape, int64_t ndim, double low, double high, int32_t dtype,
                         int32_t device_type, int32_t device_index, sk_tensor** out) {
  SK_GUARD_BEGIN
  out_arg(out, "out");
  floating_dtype_arg(dtype);
  if (!(low < high)) fail("rand needs low < high, got [", low, ", ", high, ")");
  auto sizes = shape_arg(shape, ndim, "shape");
  auto opts = at::TensorOptions().dtype(to_scalar_type(dtype)).device(to_device(device_type, device_index));
  *out = new_handle(at::empty(sizes, opts).uniform_(low, high));
  SK_GUARD_END
}

sk_error* sk_tensor_alias(const sk_tensor* t, sk_tensor** out) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  out_arg(out, "out");
  *out = new_handle(x);
  SK_GUARD_END
}

sk_error* sk_tensor_detach(const sk_tensor* t, sk_tensor** out) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  out_arg(out, "out");
  *out = new_handle(x.detach());
  SK_GUARD_END
}

sk_error* sk_tensor_to(const sk_tensor* t, int32_t dtype, int32_t device_type, int32_t device_index,
                       sk_tensor** out) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  out_arg(out, "out");
  auto st = to_scalar_type(dtype);
  auto dev = to_device(device_type, device_index);
  c10::NoGradGuard no_grad;
  *out = new_handle(x.to(dev, st, /*non_blocking=*/false, /*copy=*/true, at::MemoryFormat::Contiguous));
  SK_GUARD_END
}

sk_error* sk_tensor_copy_(sk_tensor* dst, const sk_tensor* src) {
  SK_GUARD_BEGIN
  const at::Tensor& d = tensor_arg(dst, "dst");
  const at::Tensor& s = tensor_arg(src, "src");
  if (d.sizes() != s.sizes())
    fail("copy: dst has shape ", shape_str(d.sizes()), " but src has shape ", shape_str(s.sizes()));
  c10::NoGradGuard no_grad;
  dst->t.copy_(s);
  SK_GUARD_END
}

sk_error* sk_tensor_copy_to_host(const sk_tensor* t, void* dst, size_t dst_bytes) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  if (dst == nullptr) fail("dst must not be NULL");
  const size_t need = static_cast<size_t>(x.numel()) * x.element_size();
  if (dst_bytes != need)
    fail("copy_to_host: tensor ", shape_str(x.sizes()), " of ", c10::toString(x.scalar_type()),
         " has ", need, " bytes but the destination holds ", dst_bytes);
  c10::NoGradGuard no_grad;
  auto target = at::from_blob(dst, x.sizes(), at::TensorOptions().dtype(x.scalar_type()).device(at::kCPU));
  target.copy_(x);
  SK_GUARD_END
}

void sk_tensor_free(sk_tensor* t) {
  CpuCacheScope keep_freed_blocks;  // a result of the same size comes next (CpuCacheScope cannot throw)
  delete t;
}

int64_t sk_tensor_ndim(const sk_tensor* t) { return t && t->t.defined() ? t->t.dim() : -1; }

int64_t sk_tensor_size(const sk_tensor* t, int64_t dim) {
  if (!t || !t->t.defined() || dim < 0 || dim >= t->t.dim()) return -1;
  return t->t.size(dim);
}

int64_t sk_tensor_stride(const sk_tensor* t, int64_t dim) {
  if (!t || !t->t.defined() || dim < 0 || dim >= t->t.dim()) return -1;
  return t->t.stride(dim);
}

int64_t sk_tensor_numel(const sk_tensor* t) { return t && t->t.defined() ? t->t.numel() : -1; }

int32_t sk_tensor_dtype(const sk_tensor* t) {
  return t && t->t.defined() ? from_scalar_type(t->t.scalar_type()) : -1;
}

int32_t sk_tensor_device_type(const sk_tensor* t) {
  if (!t || !t->t.defined()) return -1;
  return t->t.device().is_cuda() ? SK_DEVICE_CUDA : SK_DEVICE_CPU;
}

int32_t sk_tensor_device_index(const sk_tensor* t) {
  if (!t || !t->t.defined()) return -1;
  return t->t.device().is_cuda() ? t->t.device().index() : -1;
}

int32_t sk_tensor_is_contiguous(const sk_tensor* t) {
  return t && t->t.defined() ? (t->t.is_contiguous() ? 1 : 0) : -1;
}

int32_t sk_tensor_requires_grad(const sk_tensor* t) {
  return t && t->t.defined() ? (t->t.requires_grad() ? 1 : 0) : -1;
}

void* sk_tensor_data_ptr(const sk_tensor* t) {
  try {  // data_ptr() throws for a tensor without storage; nothing may reach the caller
    return t && t->t.defined() ? t->t.data_ptr() : nullptr;
  } catch (...) {
    return nullptr;
  }
}

int64_t sk_tensor_span_bytes(const sk_tensor* t) {
  if (!t || !t->t.defined()) return -1;
  int64_t last = 0;
  for (int64_t i = 0; i < t->t.dim(); ++i) last += (t->t.size(i) - 1) * t->t.stride(i);
  return (last + 1) * static_cast<int64_t>(t->t.element_size());
}

sk_error* sk_tensor_set_requires_grad(sk_tensor* t, int32_t requires_grad) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  if (requires_grad && !at::isFloatingType(x.scalar_type()))
    fail("only floating tensors can require gradients, this one is ", c10::toString(x.scalar_type()));
  if (!x.is_leaf()) fail("requires_grad can only be changed on a leaf tensor");
  t->t.set_requires_grad(requires_grad != 0);
  SK_GUARD_END
}

sk_error* sk_tensor_backward(sk_tensor* t, const sk_tensor* grad) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;
  const at::Tensor& x = tensor_arg(t, "t");
  if (!x.requires_grad())
    fail("backward: the tensor does not require grad (no input or parameter of the graph does)");
  if (grad == nullptr) {
    if (x.numel() != 1) fail("backward: grad may be NULL only for a one-element tensor, this one has shape ", shape_str(x.sizes()));
    x.backward();
  } else {
    const at::Tensor& g = tensor_arg(grad, "grad");
    if (g.sizes() != x.sizes())
      fail("backward: grad has shape ", shape_str(g.sizes()), " but the tensor has shape ", shape_str(x.sizes()));
    if (g.scalar_type() != x.scalar_type())
      fail("backward: grad is ", c10::toString(g.scalar_type()), " but the tensor is ", c10::toString(x.scalar_type()));
    if (g.device() != x.device()) fail("backward: grad and tensor are on different devices");
    x.backward(g);
  }
  SK_GUARD_END
}

sk_error* sk_tensor_grad(const sk_tensor* t, sk_tensor** out) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  out_arg(out, "out");
  const at::Tensor& g = x.grad();
  *out = g.defined() ? new_handle(g) : nullptr;
  SK_GUARD_END
}

sk_error* sk_tensor_set_grad(sk_tensor* t, const sk_tensor* grad) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  const at::Tensor& g = tensor_arg(grad, "grad");
  if (g.sizes() != x.sizes())
    fail("set_grad: grad has shape ", shape_str(g.sizes()), " but the tensor has shape ", shape_str(x.sizes()));
  if (!at::isFloatingType(x.scalar_type())) fail("set_grad: only floating tensors have gradients");
  c10::NoGradGuard no_grad;
  t->t.mutable_grad() = g.to(x.device(), x.scalar_type(), false, /*copy=*/true);
  SK_GUARD_END
}

sk_error* sk_tensor_index_select(const sk_tensor* t, int64_t dim, const sk_tensor* index, sk_tensor** out) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  const at::Tensor& i = tensor_arg(index, "index");
  out_arg(out, "out");
  if (dim < 0 || dim >= x.dim()) fail("index_select: dim ", dim, " out of range for a ", x.dim(), "-d tensor");
  if (i.dim() != 1 || i.scalar_type() != at::kLong) fail("index_select: index must be a 1-d int64 tensor");
  if (i.numel() > 0) {
    int64_t lo = i.min().item<int64_t>(), hi = i.max().item<int64_t>();
    if (lo < 0 || hi >= x.size(dim))
      fail("index_select: indices span [", lo, ", ", hi, "] but dim ", dim, " has size ", x.size(dim));
  }
  *out = new_handle(x.index_select(dim, i));
  SK_GUARD_END
}

sk_error* sk_tensor_contiguous(const sk_tensor* t, int32_t format, sk_tensor** out) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  out_arg(out, "out");
  *out = new_handle(x.contiguous(memory_format_arg(format, x.dim())));
  SK_GUARD_END
}

int32_t sk_tensor_is_format(const sk_tensor* t, int32_t format) {
  if (!t || !t->t.defined()) return -1;
  if (format == SK_FORMAT_CONTIGUOUS) return t->t.is_contiguous() ? 1 : 0;
  if (format == SK_FORMAT_CHANNELS_LAST)
    return t->t.dim() == 4 && t->t.is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0;
  return -1;
}

sk_error* sk_tensor_narrow(const sk_tensor* t, int64_t dim, int64_t start, int64_t length, sk_tensor** out) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  out_arg(out, "out");
  if (dim < 0 || dim >= x.dim()) fail("narrow: dim ", dim, " out of range for a ", x.dim(), "-d tensor");
  if (start < 0 || length < 1 || start > x.size(dim) - length)
    fail("narrow: rows [", start, ", ", start + length, ") do not fit dim ", dim, " of size ", x.size(dim));
  *out = new_handle(x.narrow(dim, start, length));
  SK_GUARD_END
}

sk_error* sk_tensor_item(const sk_tensor* t, double* out) {
  SK_GUARD_BEGIN
  const at::Tensor& x = tensor_arg(t, "t");
  out_arg(out, "out");
  if (x.numel() != 1) fail("item: the tensor has ", x.numel(), " elements, not one");
  *out = x.item<double>();
  SK_GUARD_END
}

sk_error* sk_tensor_clear_grad(sk_tensor* t) {
  SK_GUARD_BEGIN
  CpuCacheScope keep_freed_blocks;  // Module.zeroGrad: the gradients freed here are the next backward's
  const at::Tensor& x = tensor_arg(t, "t");
  if (x.grad().defined()) t->t.mutable_grad() = at::Tensor();
  SK_GUARD_END
}

}  // extern "C"
