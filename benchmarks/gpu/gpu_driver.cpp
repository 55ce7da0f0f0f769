// GPU benchmark through the C ABI: fused SE/eSE CUDA kernels vs the libtorch composition,
// forward and forward+backward, float32/float16/bfloat16, NCHW and channels-last, against
// the device's copy bandwidth (floor: 2|X| bytes forward, 3|X| backward). Needs a libsekit
// built against a CUDA libtorch (benchmarks/gpu/run.sh). Prints a Markdown table.
#include "sekit.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

static void ok(sk_error* e) {
  if (e) {
    std::fprintf(stderr, "sekit error: %s\n", sk_error_message(e));
    std::exit(1);
  }
}

static double ms(const std::function<void()>& f) {
  for (int i = 0; i < 5; ++i) f();
  ok(sk_cuda_synchronize(0));
  const int reps = 50;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  ok(sk_cuda_synchronize(0));
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

// Host<->device copies of 256 MiB through sk_tensor_copy_, from pageable memory and from the
// same memory page-locked with sk_cuda_host_register (what Cuda.pin does), in GB/s.
static void copy_table() {
  const int64_t n = int64_t{64} << 20;  // float32 elements
  const size_t bytes = static_cast<size_t>(n) * 4;
  void* host = std::aligned_alloc(4096, bytes);
  std::memset(host, 1, bytes);
  sk_tensor *h, *d;
  ok(sk_tensor_from_blob(host, bytes, &n, nullptr, 1, SK_FLOAT32, &h));
  ok(sk_tensor_empty(&n, 1, SK_FLOAT32, SK_DEVICE_CUDA, 0, &d));
  std::printf("| host memory | host to device GB/s | device to host GB/s |\n|---|---|---|\n");
  for (int pinned = 0; pinned < 2; ++pinned) {
    if (pinned) ok(sk_cuda_host_register(host, bytes));
    const double up = ms([&] { ok(sk_tensor_copy_(d, h)); });
    const double down = ms([&] { ok(sk_tensor_copy_(h, d)); });
    std::printf("| %s | %.1f | %.1f |\n", pinned ? "pinned (sk_cuda_host_register)" : "pageable", bytes / up / 1e6,
                bytes / down / 1e6);
  }
  ok(sk_cuda_host_unregister(host));
  sk_tensor_free(h);
  sk_tensor_free(d);
  std::free(host);
  std::printf("\n");
}

int main() {
  if (!sk_cuda_available()) {
    std::fprintf(stderr, "no CUDA device usable by this libsekit\n");
    return 2;
  }
  copy_table();
  const int dtypes[] = {SK_FLOAT32, SK_FLOAT16, SK_BFLOAT16};
  const char* names[] = {"f32", "f16", "bf16"};
  const int64_t shapes[][4] = {{32, 256, 56, 56}, {8, 512, 28, 28}, {64, 1024, 7, 7}, {1, 1024, 7, 7}};
  std::printf("| block | dtype | format | shape | fwd fused ms | fwd composition ms | fwd floor ms | "
              "fwd+bwd fused ms | fwd+bwd composition ms |\n|---|---|---|---|---|---|---|---|---|\n");
  for (int d = 0; d < 3; ++d) {
    for (const auto& s : shapes) {
      for (int fmt = 0; fmt < 2; ++fmt) {
        for (int ese = 0; ese < 2; ++ese) {
          sk_tensor *x0, *x, *g0, *g, *copy;
          ok(sk_tensor_randn(s, 4, dtypes[d], SK_DEVICE_CUDA, 0, &x0));
          ok(sk_tensor_contiguous(x0, fmt, &x));
          ok(sk_tensor_randn(s, 4, dtypes[d], SK_DEVICE_CUDA, 0, &g0));
          ok(sk_tensor_contiguous(g0, fmt, &g));
          sk_tensor* copy0;  // the copy's destination in the input's layout: a copy, not a transpose
          ok(sk_tensor_empty(s, 4, dtypes[d], SK_DEVICE_CUDA, 0, &copy0));
          ok(sk_tensor_contiguous(copy0, fmt, &copy));
          sk_tensor_free(copy0);
          const double bytes = static_cast<double>(sk_tensor_numel(x)) * (dtypes[d] == SK_FLOAT32 ? 4 : 2);
          const double copy_ms = ms([&] { ok(sk_tensor_copy_(copy, x)); });
          const double gbps = 2 * bytes / (copy_ms / 1e3);
          double r[4];
          for (int fused = 1; fused >= 0; --fused) {
            sk_module* m;
            if (ese) ok(sk_ese_new(s[1], SK_ACT_HARD_SIGMOID, 0, &m));
            else ok(sk_se_new(s[1], 1.0 / 16, -1, 8, 1, SK_ACT_RELU, SK_ACT_SIGMOID, 0, 0, &m));
            ok(sk_module_to(m, dtypes[d], SK_DEVICE_CUDA, 0));
            ok(sk_module_to_format(m, fmt));
            ok(sk_module_set_fused(m, fused));
            r[fused ? 0 : 1] = ms([&] {
              sk_tensor* y;
              ok(sk_module_forward(m, x, 0, &y));
              sk_tensor_free(y);
            });
            ok(sk_tensor_set_requires_grad(x, 1));
            r[fused ? 2 : 3] = ms([&] {
              sk_tensor* y;
              ok(sk_module_forward(m, x, 1, &y));
              ok(sk_tensor_backward(y, g));
              sk_tensor_free(y);
              ok(sk_tensor_clear_grad(x));
            });
            ok(sk_tensor_set_requires_grad(x, 0));
            sk_module_free(m);
          }
          std::printf("| %s | %s | %s | %ldx%ldx%ldx%ld | %.3f | %.3f | %.3f | %.3f | %.3f |\n", ese ? "eSE" : "SE",
                      names[d], fmt ? "channels_last" : "NCHW", static_cast<long>(s[0]), static_cast<long>(s[1]),
                      static_cast<long>(s[2]), static_cast<long>(s[3]), r[0], r[1], 2 * bytes / gbps * 1e3, r[2], r[3]);
          sk_tensor_free(x0);
          sk_tensor_free(x);
          sk_tensor_free(g0);
          sk_tensor_free(g);
          sk_tensor_free(copy);
        }
      }
    }
  }
  return 0;
}
