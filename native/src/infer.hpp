// Inference preparation (infer.cpp): a module that computes an eval-mode module's forward on
// a fixed plan of oneDNN primitives.
#pragma once

#include "module.hpp"

#include <memory>
#include <vector>

namespace sekit {

class PreparedModule : public Module {
 public:
  // `source` must be in evaluation mode. The prepared module follows the source's weights:
  // a change to any of its parameters or buffers (a load, a training step, a conversion)
  // makes it plan again on the next call.
  explicit PreparedModule(std::shared_ptr<Module> source);
  ~PreparedModule() override;

  at::Tensor forward(const at::Tensor& x) override;
  // The four stage maps of a prepared VoVNet.
  std::vector<at::Tensor> forward_stages(const at::Tensor& x);
  // Whether float32 CPU inputs run the plan (else the source's own forward, without autograd).
  bool planned() const;
  bool is_vovnet() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sekit
