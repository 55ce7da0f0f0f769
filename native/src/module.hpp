// A small module system over ATen: ordered parameters, buffers and children,
// so that state-dict names and order match PyTorch's exactly.
#pragma once

#include "internal.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct sk_module;

namespace sekit {

struct StateEntry {
  std::string name;
  at::Tensor* tensor;  // points into the owning module; stable for its life
  bool is_parameter;
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Checks the input and computes the output.
  virtual at::Tensor forward(const at::Tensor& x) = 0;

  void set_training(bool on);
  // Fused SE/eSE kernels (default) or the libtorch composition, for this module and below.
  void set_fused(bool on);
  bool fused() const { return fused_; }
  bool training() const { return training_; }

  // Parameters and buffers in PyTorch's state_dict order: a module's own
  // parameters, its own buffers, then each child's entries under "child.".
  void collect_state(const std::string& prefix, std::vector<StateEntry>& out);
  // Moves/converts every tensor in place (handles keep seeing them).
  void to(at::ScalarType floating_dtype, at::Device device);
  // Lays out every 4-d tensor in `format`, in place.
  void to_format(at::MemoryFormat format);
  // dtype and device of the first floating parameter.
  at::TensorOptions param_options() const;
  // Calls f on this module and every descendant, depth first.
  void visit(const std::function<void(Module&)>& f);

 protected:
  at::Tensor& register_parameter(std::string name, at::Tensor t);
  at::Tensor& register_buffer(std::string name, at::Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    children_.emplace_back(std::move(name), m);
    return m;
  }
  // Checks x is [N, channels, H, W] with the module's dtype and device.
  void check_input(const at::Tensor& x, int64_t channels, const char* what) const;

  bool training_ = true;
  bool fused_ = true;

 private:
  // deques keep element addresses stable as entries are added.
  std::deque<std::pair<std::string, at::Tensor>> params_;
  std::deque<std::pair<std::string, at::Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// nn.Conv2d with PyTorch's default initialisation.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         int64_t groups = 1, bool bias = true);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor& weight() { return *weight_; }
  at::Tensor* bias() { return bias_; }
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  int64_t kernel() const { return kernel_; }
  int64_t stride() const { return stride_; }
  int64_t padding() const { return padding_; }
  int64_t groups() const { return groups_; }

 private:
  int64_t in_, out_, kernel_, stride_, padding_, groups_;
  at::Tensor* weight_;
  at::Tensor* bias_ = nullptr;
};

// Batch statistics taken over several processes (SyncBatchNorm, dist.cpp): a BatchNorm2d
// given one normalises in training with the mean and variance of the whole batch over every
// process, and updates its running statistics with them.
class BatchNormSync {
 public:
  virtual ~BatchNormSync() = default;
  // Training-mode batch_norm of x ([N,C,...]) over the processes' batches.
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             at::Tensor& running_mean, at::Tensor& running_var, double momentum, double eps) = 0;
};

// nn.BatchNorm2d (affine, tracking running stats), eps and momentum as given.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  at::Tensor forward(const at::Tensor& x) override;  // [N,C,...]
  // relu_(forward(x)) (timm's BatchNormAct2d), fused in training where it applies.
  at::Tensor forward_relu(const at::Tensor& x);
  at::Tensor& weight() { return *weight_; }
  // Eval-mode BatchNorm as y = x * scale + shift (per channel, float64).
  std::pair<at::Tensor, at::Tensor> affine() const;
  // Null: each process's own batch statistics (the default).
  void set_sync(std::shared_ptr<BatchNormSync> sync) { sync_ = std::move(sync); }

 private:
  int64_t channels_;
  double eps_, momentum_;
  at::Tensor *weight_, *bias_, *running_mean_, *running_var_, *num_batches_tracked_;
  std::shared_ptr<BatchNormSync> sync_;

  // The shape check, the batch count, then SyncBatchNorm, the fused BatchNorm+ReLU or ATen's.
  at::Tensor normalize(const at::Tensor& x, bool relu);
};

// Training-mode BatchNorm followed by ReLU in one fused forward and backward (bn_relu.cpp),
// for CPU float32 channels-last inputs with more than one value per channel; the running
// statistics move as ATen's do.
bool fused_batch_norm_relu_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& running_mean, const at::Tensor& running_var);
at::Tensor fused_batch_norm_relu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                 at::Tensor& running_mean, at::Tensor& running_var, double momentum, double eps);

// F.max_pool2d(x, k, s, p, ceil_mode=ceil). Where autograd records it and fused is on, for CPU
// float32 channels-last maps (k * k <= 256), max_pool.cpp's: one byte per winner instead of
// ATen's int64 index, and a backward that gathers instead of zero-filling and scattering; the
// same values and gradients.
at::Tensor max_pool2d(const at::Tensor& x, int64_t k, int64_t s, int64_t p, bool ceil, bool fused);

// x [N, in] @ w[out, in]^T + b on the fused SE kernels' linear layer (se_fused.cpp), with
// its own backward: CPU float32/float64 tensors of one dtype. libtorch's addmm/mm go to the
// system BLAS, which on Debian is the reference implementation (a classifier head's matrix
// products took 13 ms of a 500 ms ese_vovnet19b_dw training step there). Linear uses it only
// where libtorch has no MKL.
at::Tensor small_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// Children "0", "1", ... applied in order (nn.Sequential).
class Sequential : public Module {
 public:
  void push_back(std::shared_ptr<Module> m);
  at::Tensor forward(const at::Tensor& x) override;
  const std::vector<std::shared_ptr<Module>>& items() const { return items_; }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

// nn.MaxPool2d(kernel, stride, padding 0, ceil_mode); no parameters.
class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, bool ceil);
  at::Tensor forward(const at::Tensor& x) override;
  int64_t kernel() const { return kernel_; }
  int64_t stride() const { return stride_; }
  bool ceil_mode() const { return ceil_; }

 private:
  int64_t kernel_, stride_;
  bool ceil_;
};

// nn.Linear with PyTorch's default initialisation.
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor& weight() { return *weight_; }
  at::Tensor* bias() { return bias_; }

 private:
  int64_t in_, out_;
  at::Tensor* weight_;
  at::Tensor* bias_ = nullptr;
};

// timm's ConvNormAct: Conv2d (no bias, "same" padding) -> BatchNorm2d -> ReLU; or, when
// separable, SeparableConvNormAct: depthwise conv_dw -> pointwise conv_pw -> bn -> ReLU.
class ConvNormAct : public Module {
 public:
  ConvNormAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool separable);
  at::Tensor forward(const at::Tensor& x) override;
  bool separable() const { return separable_; }
  Conv2d* conv() const { return conv_.get(); }
  Conv2d* conv_dw() const { return conv_dw_.get(); }
  Conv2d* conv_pw() const { return conv_pw_.get(); }
  BatchNorm2d* bn() const { return bn_.get(); }

 private:
  bool separable_;
  std::shared_ptr<Conv2d> conv_, conv_dw_, conv_pw_;
  std::shared_ptr<BatchNorm2d> bn_;
};

// timm's ClassifierHead: global average pool -> flatten -> dropout -> Linear "fc" (zero
// bias). Takes maps [N, C, H, W] (pooled first) or pooled features [N, C].
class ClassifierHead : public Module {
 public:
  ClassifierHead(int64_t in, int64_t classes, double drop_rate);
  at::Tensor forward(const at::Tensor& x) override;
  Linear* fc() const { return fc_.get(); }

 private:
  double drop_rate_;
  std::shared_ptr<Linear> fc_;
};

// Fails with "<what> must be >= 1, got v" unless v >= 1.
void positive_arg(const char* what, int64_t v);

std::shared_ptr<Module> make_se(int64_t channels, int64_t rd, bool bias, int32_t act, int32_t gate,
                                bool add_maxpool, bool use_bn);
std::shared_ptr<Module> make_ese(int64_t channels, int32_t gate, bool add_maxpool);

at::Tensor apply_activation(int32_t act, const at::Tensor& x);
// The same op in place, for a tensor nothing else reads (bit-identical to apply_activation).
void apply_activation_(int32_t act, at::Tensor& x);

// An SE or eSE block as plain numbers, for inference preparation (eval mode; an SE's
// BatchNorm folded into fc1): gate(fc2(act(fc1(s)))) for SE, gate(fc1(s)) for eSE, with s the
// spatial mean (averaged with the max when add_maxpool). Float64 [out, in] weights.
struct ExcitationParams {
  bool se = false;
  int32_t act = 0, gate = 0;
  bool add_maxpool = false;
  int64_t channels = 0, reduced = 0;
  at::Tensor w1, b1, w2, b2;  // b1/b2 defined (zeros where the block has no bias)
};
// Fills p and returns true when m is an SE or eSE block.
bool excitation_params(Module& m, ExcitationParams& p);
void check_activation(int32_t act, const char* what);

// Reduced width as timm's make_divisible(channels * ratio, divisor, round_limit=0).
int64_t se_reduced_channels(int64_t channels, double rd_ratio, int64_t rd_divisor);

// Takes ownership of m and builds the handle (with its state-entry table).
sk_module* wrap_module(std::shared_ptr<Module> m);

}  // namespace sekit

struct sk_module {
  std::shared_ptr<sekit::Module> module;
  std::vector<sekit::StateEntry> state;  // built once; names are borrowed by callers
};

namespace sekit {
// The module behind a handle argument; fails when the handle is NULL.
sk_module* module_arg(const sk_module* m);
}  // namespace sekit
