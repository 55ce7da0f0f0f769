// Times the Fashion-MNIST demo network's training step through the C ABI only (no JVM):
// the "C++ driver" baseline next to sekit from Java and PyTorch eager.
//   train_driver THREADS [STEPS] [cl|nchw]
#include "sekit.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static void ok(sk_error* e) {
  if (e) {
    std::fprintf(stderr, "sekit error: %s\n", sk_error_message(e));
    std::exit(1);
  }
}

static sk_module* cna(int64_t in, int64_t out, int64_t stride) {
  sk_module* m;
  ok(sk_conv_norm_act_new(in, out, 3, stride, 0, &m));
  return m;
}

static sk_module* osa(int64_t in, int64_t mid, int64_t out) {
  sk_module* m;
  ok(sk_osa_block_new(in, mid, out, 3, 0, 0, std::getenv("ATTN_NONE") ? SK_ATTN_NONE : SK_ATTN_ESE, &m));
  return m;
}

static sk_module* pool() {
  sk_module* m;
  ok(sk_maxpool2d_new(3, 2, 1, &m));
  return m;
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 40;
  const bool cl = argc > 3 ? std::strcmp(argv[3], "nchw") != 0 : true;
  ok(sk_set_num_threads(threads));
  ok(sk_manual_seed(0));
  sk_module* net;
  ok(sk_sequential_new(&net));
  sk_module* head;
  ok(sk_classifier_head_new(192, 10, 0.0, &head));
  std::vector<sk_module*> parts = {cna(1, 24, 1), cna(24, 32, 2), osa(32, 32, 64), pool(), osa(64, 48, 128),
                                   pool(), osa(128, 64, 192), head};
  for (sk_module* p : parts) ok(sk_sequential_append(net, p));
  if (cl) ok(sk_module_to_format(net, SK_FORMAT_CHANNELS_LAST));
  sk_optimizer* opt;
  ok(sk_sgd_new(net, 0.05, 0.9, 0, 0, 1, &opt));
  int64_t xs[4] = {128, 1, 28, 28};
  sk_tensor* x;
  ok(sk_tensor_randn(xs, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &x));
  std::vector<int64_t> ys(128);
  for (int i = 0; i < 128; ++i) ys[i] = i % 10;
  int64_t yshape[1] = {128};
  sk_tensor* y;
  ok(sk_tensor_from_blob(ys.data(), ys.size() * 8, yshape, nullptr, 1, SK_INT64, &y));
  using clk = std::chrono::steady_clock;
  for (int rep = 0; rep < 2; ++rep) {
    double tf = 0, tb = 0, ts = 0;
    for (int i = 0; i < steps + 5; ++i) {
      auto t0 = clk::now();
      sk_tensor* logits;
      sk_tensor* loss;
      ok(sk_module_forward(net, x, 1, &logits));
      ok(sk_cross_entropy(logits, y, 0.1, &loss));
      auto t1 = clk::now();
      ok(sk_optimizer_zero_grad(opt));
      ok(sk_tensor_backward(loss, nullptr));
      auto t2 = clk::now();
      ok(sk_optimizer_step(opt));
      auto t3 = clk::now();
      sk_tensor_free(loss);
      sk_tensor_free(logits);
      if (i >= 5) {
        tf += std::chrono::duration<double>(t1 - t0).count();
        tb += std::chrono::duration<double>(t2 - t1).count();
        ts += std::chrono::duration<double>(t3 - t2).count();
      }
    }
    std::printf("c++ driver pure (%s): %.0f samples/s  fwd %.1f ms bwd %.1f ms step %.1f ms\n", cl ? "cl" : "nchw",
                steps * 128 / (tf + tb + ts), tf / steps * 1e3, tb / steps * 1e3, ts / steps * 1e3);
  }
  for (sk_module* p : parts) sk_module_free(p);
  sk_module_free(net);
  sk_optimizer_free(opt);
  sk_tensor_free(x);
  sk_tensor_free(y);
  return 0;
}
