// One SE or eSE block's forward (no graph) on a small map through the C ABI, microseconds per
// call: what a thread wake-up would cost a small input. Run after ./sekit test or mvn package:
//   g++ -O2 -std=c++17 -I native/include benchmarks/quick/small_maps.cpp -L target/native-build
//     -lsekit -Wl,-rpath,"$PWD/target/native-build" -o benchmarks/target/small_maps   (one line)
//   OMP_WAIT_POLICY=passive benchmarks/target/small_maps ese 64 1 cl
// Arguments: se|ese, channels, batch, cl|nchw (the input's layout; 7x7 maps, 2 threads).
#include "sekit.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

static void ok(sk_error* e) {
  if (e) {
    std::fprintf(stderr, "sekit error: %s\n", sk_error_message(e));
    std::exit(1);
  }
}

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: small_maps se|ese CHANNELS BATCH cl|nchw\n");
    return 2;
  }
  const int64_t c = std::atoll(argv[2]), n = std::atoll(argv[3]);
  const bool cl = std::strcmp(argv[4], "cl") == 0;
  ok(sk_set_num_threads(2));
  sk_module* m;
  if (std::strcmp(argv[1], "se") == 0) ok(sk_se_new(c, 1.0 / 16, -1, 8, 1, SK_ACT_RELU, SK_ACT_SIGMOID, 0, 0, &m));
  else ok(sk_ese_new(c, SK_ACT_HARD_SIGMOID, 0, &m));
  ok(sk_module_set_training(m, 0));
  const int64_t shape[4] = {n, c, 7, 7};
  sk_tensor *x0, *x;
  ok(sk_tensor_randn(shape, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &x0));
  ok(sk_tensor_contiguous(x0, cl ? SK_FORMAT_CHANNELS_LAST : SK_FORMAT_CONTIGUOUS, &x));
  const int reps = 20000;
  for (int round = 0; round < 3; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) {
      sk_tensor* y;
      ok(sk_module_forward(m, x, 0, &y));
      sk_tensor_free(y);
    }
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
    if (round == 2) std::printf("%s %lldx%lldx7x7 %s: %.2f us per forward\n", argv[1], static_cast<long long>(n),
                                static_cast<long long>(c), cl ? "channels-last" : "NCHW", us);
  }
  sk_tensor_free(x);
  sk_tensor_free(x0);
  sk_module_free(m);
  return 0;
}
