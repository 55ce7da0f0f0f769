// Where sekit's own training step goes, by ATen operator: ese_vovnet19b_dw (batch 8, 224x224,
// channels-last, SGD with Nesterov momentum and weight decay) through the C ABI, three steps
// under libtorch's profiler after three to warm up; writes a Chrome trace that
// train_ops.py sums by operator. The ops sekit runs outside ATen (the fused BatchNorm+ReLU
// forward, the fused SGD update) show as time outside any operator.
//   benchmarks/quick/train_ops.sh
#include "sekit.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

static void ok(sk_error* e) {
  if (e) {
    std::fprintf(stderr, "sekit error: %s\n", sk_error_message(e));
    std::exit(1);
  }
}

int main(int argc, char** argv) {
  ok(sk_set_num_threads(argc > 2 ? std::atoi(argv[2]) : 2));
  ok(sk_manual_seed(0));
  int64_t stem[3] = {64, 64, 128}, conv[4] = {128, 160, 192, 224}, out[4] = {256, 512, 768, 1024};
  int64_t blocks[4] = {1, 1, 1, 1};
  sk_module* net;
  ok(sk_vovnet_new(stem, conv, out, blocks, 3, 0, 1, SK_ATTN_ESE, 0, 3, 1000, 0.0, &net));
  ok(sk_module_to_format(net, SK_FORMAT_CHANNELS_LAST));
  sk_optimizer* opt;
  ok(sk_sgd_new(net, 0.01, 0.9, 0, 5e-4, 1, &opt));
  int64_t xs[4] = {8, 3, 224, 224};
  sk_tensor* x;
  ok(sk_tensor_randn(xs, 4, SK_FLOAT32, SK_DEVICE_CPU, -1, &x));
  std::vector<int64_t> ys(8);
  for (int i = 0; i < 8; ++i) ys[i] = i * 7;
  int64_t yshape[1] = {8};
  sk_tensor* y;
  ok(sk_tensor_from_blob(ys.data(), ys.size() * 8, yshape, nullptr, 1, SK_INT64, &y));
  auto step = [&] {
    sk_tensor *logits, *loss;
    ok(sk_module_forward(net, x, 1, &logits));
    ok(sk_cross_entropy(logits, y, 0.1, &loss));
    ok(sk_optimizer_zero_grad(opt));
    ok(sk_tensor_backward(loss, nullptr));
    ok(sk_optimizer_step(opt));
    sk_tensor_free(loss);
    sk_tensor_free(logits);
  };
  for (int i = 0; i < 3; ++i) step();
  {
    torch::autograd::profiler::RecordProfile guard(argc > 1 ? argv[1] : "train_ops.json");
    for (int i = 0; i < 3; ++i) step();
  }
  sk_module_free(net);
  sk_optimizer_free(opt);
  sk_tensor_free(x);
  sk_tensor_free(y);
  return 0;
}
