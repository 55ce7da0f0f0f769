// The C++ baseline of the benchmark suite: the same blocks as BlockBench/VoVNetBench, driven
// through the C ABI with no JVM, plus the machine's copy bandwidth (the floor) and the cost
// of an empty call. Prints one JSON object: {"key": milliseconds, ...}.
//   block_driver THREADS [quick]
#include "sekit.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

static void ok(sk_error* e) {
  if (e) {
    std::fprintf(stderr, "sekit error: %s\n", sk_error_message(e));
    std::exit(1);
  }
}

static double mean_ms(const std::function<void()>& f, double min_seconds) {
  for (int i = 0; i < 3; ++i) f();
  using clk = std::chrono::steady_clock;
  int reps = 0;
  auto t0 = clk::now();
  double el = 0;
  do {
    f();
    ++reps;
    el = std::chrono::duration<double>(clk::now() - t0).count();
  } while (el < min_seconds || reps < 5);
  return el / reps * 1e3;
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const bool quick = argc > 2 && std::strcmp(argv[2], "quick") == 0;
  const double secs = quick ? 0.2 : 1.0;
  ok(sk_set_num_threads(threads));
  ok(sk_manual_seed(0));
  std::vector<std::pair<std::string, double>> out;

  {  // copy bandwidth: bytes read + written per second, on 256 MiB buffers
    const size_t n = 256u << 20;
    std::vector<char> a(n, 1), b(n, 2);
    double ms = mean_ms([&] { std::memcpy(b.data(), a.data(), n); }, secs);
    out.emplace_back("copy_gbps", 2.0 * n / (ms / 1e3) / 1e9);
  }
  {
    volatile int32_t sink = 0;
    const int calls = 10000000;
    double ms = mean_ms([&] {
      for (int i = 0; i < calls; ++i) sink = sk_noop(i);
    }, secs);
    out.emplace_back("noop_ns", ms * 1e6 / calls);
  }
  const std::vector<const char*> shapes = {"32,256,56,56", "8,512,28,28", "1,1024,7,7", "1,64,7,7"};
  const std::vector<const char*> osa_shapes = {"1,256,56,56", "1,512,28,28", "1,768,14,14", "1,1024,7,7"};
  for (const char* blk : {"se", "ese", "osa"}) {
    for (const char* sh : std::strcmp(blk, "osa") == 0 ? osa_shapes : shapes) {
      int64_t s[4];
      std::sscanf(sh, "%ld,%ld,%ld,%ld", &s[0], &s[1], &s[2], &s[3]);
      sk_module* m = nullptr;
      if (std::strcmp(blk, "se") == 0) ok(sk_se_new(s[1], 1.0 / 16, -1, 8, 1, SK_ACT_RELU, SK_ACT_SIGMOID, 0, 0, &m));
      else if (std::strcmp(blk, "ese") == 0) ok(sk_ese_new(s[1], SK_ACT_HARD_SIGMOID, 0, &m));
      else ok(sk_osa_block_new(s[1], s[1] / 2, s[1], 3, 1, 0, SK_ATTN_ESE, &m));
      ok(sk_module_set_training(m, 0));
      sk_tensor *x, *xg, *g;
      ok(sk_tensor_randn(s, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &x));
      ok(sk_tensor_randn(s, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &xg));
      ok(sk_tensor_randn(s, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &g));
      ok(sk_tensor_set_requires_grad(xg, 1));
      std::string key = std::string(blk) + "_%s_" + sh;
      for (char& c : key) if (c == ',') c = 'x';
      double fwd = mean_ms([&] {
        sk_tensor* y;
        ok(sk_module_forward(m, x, 0, &y));
        sk_tensor_free(y);
      }, secs);
      double fb = mean_ms([&] {
        sk_tensor* y;
        ok(sk_module_forward(m, xg, 1, &y));
        ok(sk_tensor_backward(y, g));
        sk_tensor_free(y);
        ok(sk_tensor_clear_grad(xg));
      }, secs);
      char buf[128];
      std::snprintf(buf, sizeof buf, key.c_str(), "fwd");
      out.emplace_back(buf, fwd);
      std::snprintf(buf, sizeof buf, key.c_str(), "fwdbwd");
      out.emplace_back(buf, fb);
      sk_tensor_free(x);
      sk_tensor_free(xg);
      sk_tensor_free(g);
      sk_module_free(m);
    }
  }
  {
    const int64_t stem[3] = {64, 64, 64}, conv[4] = {128, 160, 192, 224}, outc[4] = {256, 512, 768, 1024},
                  bps[4] = {1, 1, 1, 1};
    sk_module* net;
    ok(sk_vovnet_new(stem, conv, outc, bps, 3, 1, 1, SK_ATTN_ESE, 0, 3, 1000, 0.0, &net));
    ok(sk_module_set_training(net, 0));
    for (int64_t b : {1, 8}) {
      int64_t s[4] = {b, 3, 224, 224};
      sk_tensor* x;
      ok(sk_tensor_randn(s, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &x));
      double ms = mean_ms([&] {
        sk_tensor* y;
        ok(sk_module_forward(net, x, 0, &y));
        sk_tensor_free(y);
      }, secs);
      out.emplace_back("vovnet_fwd_b" + std::to_string(b), ms);
      sk_tensor_free(x);
    }
    sk_module_free(net);
  }
  std::printf("{");
  for (size_t i = 0; i < out.size(); ++i)
    std::printf("%s\"%s\": %.6g", i ? ", " : "", out[i].first.c_str(), out[i].second);
  std::printf("}\n");
  return 0;
}
