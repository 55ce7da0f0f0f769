// Fused SE / eSE on the CPU: a custom autograd Function around the raw kernels of
// se_kernels.cpp. Forward: one pass squeezes, the excitation runs on the [N, C]
// descriptor, one pass scales (3|X| bytes). Backward: one pass for dL/dgate = sum(gy * x),
// the excitation's backward by autograd on the [N, C] descriptor, one pass for gx (4|X|).
#include "se_fused.hpp"

#include "dispatch.hpp"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <limits>
#include <vector>

namespace sekit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per task of the small linear layers, each row `work_per_row` multiply-adds: 64K+ per
// task, below which one thread does it all rather than wake another (0.1-0.3 ms with
// OMP_WAIT_POLICY=passive, against 10 us of work).
int64_t linear_rows(int64_t work_per_row) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, work_per_row)); }

// z = s W^T + b on our own small kernels: libtorch's BLAS may be a slow reference one, and
// these layers are tiny (a few hundred KB of weights) next to the feature maps. s [n, in],
// w [out, in] and z [n, out] are contiguous; b is nullptr or [out].
template <typename T>
void linear_into(const T* s, const T* w, const T* b, T* z, int64_t n, int64_t in, int64_t out) {
  at::parallel_for(0, n * out, linear_rows(in), [&](int64_t r0, int64_t r1) {
    SEKIT_DISPATCH(linear_forward<T>, s, w, b, z, r0, r1, in, out);
  });
}

at::Tensor linear_raw(const at::Tensor& s, const at::Tensor& w, const at::Tensor& b) {
  const int64_t n = s.size(0), in = s.size(1), out = w.size(0);
  at::Tensor z = at::empty({n, out}, s.options());
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "sekit_small_linear", [&] {
    linear_into<scalar_t>(s.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), b.defined() ? b.data_ptr<scalar_t>() : nullptr,
                          z.data_ptr<scalar_t>(), n, in, out);
  });
  return z;
}

struct SmallLinear : public torch::autograd::Function<SmallLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& s_in, const at::Tensor& w_in,
                            const c10::optional<at::Tensor>& b_in) {
    at::Tensor s = s_in.contiguous(), w = w_in.contiguous();
    at::Tensor b = b_in.has_value() && b_in->defined() ? b_in->contiguous() : at::Tensor();
    at::Tensor z = linear_raw(s, w, b);
    ctx->save_for_backward({s, w});
    ctx->saved_data["bias"] = b.defined();
    return z;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& s = saved[0];
    const at::Tensor& w = saved[1];
    const bool bias = ctx->saved_data["bias"].toBool();
    at::Tensor dz = grads[0].contiguous();
    const int64_t n = s.size(0), in = s.size(1), out = w.size(0);
    // Only the gradients autograd asks for: a detached input (a linear probe) or a frozen
    // head skips a whole matrix product.
    const bool need_s = ctx->needs_input_grad(0);
    const bool need_w = ctx->needs_input_grad(1) || (bias && ctx->needs_input_grad(2));
    at::Tensor ds = need_s ? at::empty_like(s) : at::Tensor(), dw = need_w ? at::empty_like(w) : at::Tensor();
    at::Tensor db = need_w && bias ? at::empty({out}, w.options()) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "sekit_small_linear_backward", [&] {
      const scalar_t* dzp = dz.data_ptr<scalar_t>();
      if (need_s)
        at::parallel_for(0, n, linear_rows(in * out), [&](int64_t a, int64_t e) {
          SEKIT_DISPATCH(linear_grad_input<scalar_t>, dzp, w.data_ptr<scalar_t>(), ds.data_ptr<scalar_t>(), a, e, in,
                         out);
        });
      if (need_w)
        at::parallel_for(0, out, linear_rows(n * in), [&](int64_t a, int64_t e) {
          SEKIT_DISPATCH(linear_grad_weight<scalar_t>, dzp, s.data_ptr<scalar_t>(), dw.data_ptr<scalar_t>(),
                         bias ? db.data_ptr<scalar_t>() : nullptr, a, e, n, in, out);
        });
    });
    return {ds, dw, db};
  }
};

}  // namespace

at::Tensor small_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const bool graph = c10::GradMode::is_enabled() &&
                     (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()));
  if (!graph) return linear_raw(x.contiguous(), w.contiguous(), b.defined() ? b.contiguous() : b);
  return SmallLinear::apply(x, w, b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt);
}

namespace {

// Excitation on our own small linear kernels: with autograd when grad mode is on (the
// excitation's backward), without it in the forward pass (which runs under no_grad).
at::Tensor excite(const at::Tensor& s, const std::vector<at::Tensor>& p, const FusedConfig& c) {
  return excitation(s, p, c, [](const at::Tensor& v, const at::Tensor& w2, const at::Tensor& b) {
    return small_linear(v, w2, b);
  });
}

// The excitation as forward_pass runs it, never under autograd: the kernels read each 1x1
// conv's weight where it lies (no [out, in] view) and each activation runs in place (no
// tensor of its own). The activations are excite()'s own at:: ops, so the gate is the same
// to the bit; on a small map the views and temporaries had cost more than the arithmetic.
at::Tensor excite_forward(const at::Tensor& s_in, const std::vector<at::Tensor>& p, const FusedConfig& c) {
  auto layer = [](const at::Tensor& v, const ExcitationLayer& l) {
    const at::Tensor w = l.w.contiguous(), b = l.b.defined() ? l.b.contiguous() : l.b;  // no-ops for parameters
    at::Tensor z = at::empty({v.size(0), w.size(0)}, v.options());
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "sekit_excite_forward", [&] {
      linear_into<scalar_t>(v.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                            b.defined() ? b.data_ptr<scalar_t>() : nullptr, z.data_ptr<scalar_t>(), v.size(0),
                            w.size(1), w.size(0));
    });
    apply_activation_(l.act, z);
    return z;
  };
  at::Tensor v = s_in.contiguous();
  for (const ExcitationLayer& l : excitation_layers(p, c)) v = layer(v, l);
  return v;
}

struct Geometry {
  int64_t n, c, hw;
  bool cl;
};

Geometry geometry(const at::Tensor& x) {
  return {x.size(0), x.size(1), x.size(2) * x.size(3),
          !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)};
}

// Row chunks for channels-last reductions: enough tasks for the threads, 16+ rows and 16K+
// values each; chunk_grain() then groups small chunks (of several images) into tasks of 16K+
// values. A small map runs on the calling thread instead of waking a sleeping one (0.1-0.3
// ms with OMP_WAIT_POLICY=passive, against a few microseconds of work).
int64_t row_chunks(const Geometry& g) {
  const int64_t want = std::max<int64_t>(1, 2 * at::get_num_threads() / std::max<int64_t>(1, g.n));
  return std::max<int64_t>(1, std::min<int64_t>({want, g.hw / 16, g.hw * g.c / 16384}));
}

int64_t chunk_grain(const Geometry& g, int64_t chunks) { return task_grain(g.hw / chunks * g.c); }

// mean (and max) over H, W of each (n, c) -> [N, C] tensors of x's dtype.
template <typename T>
void squeeze(const at::Tensor& x, const Geometry& g, at::Tensor& mean, at::Tensor& max) {
  const T* xp = x.data_ptr<T>();
  T* mp = mean.data_ptr<T>();
  T* xm = max.defined() ? max.data_ptr<T>() : nullptr;
  if (!g.cl) {
    at::parallel_for(0, g.n * g.c, task_grain(g.hw), [&](int64_t b, int64_t e) {
      SEKIT_DISPATCH(squeeze_planes<T>, xp, b, e, g.hw, mp, xm);
    });
    return;
  }
  const int64_t chunks = row_chunks(g);
  std::vector<double> sums(static_cast<size_t>(g.n * chunks * g.c), 0.0);
  std::vector<T> maxs(xm ? static_cast<size_t>(g.n * chunks * g.c) : 0, -std::numeric_limits<T>::infinity());
  at::parallel_for(0, g.n * chunks, chunk_grain(g, chunks), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / chunks, k = t % chunks;
      const int64_t r0 = g.hw * k / chunks, r1 = g.hw * (k + 1) / chunks;
      SEKIT_DISPATCH(squeeze_rows<T>, xp, n, r0, r1, g.hw, g.c, sums.data() + t * g.c,
                     xm ? maxs.data() + t * g.c : nullptr);
    }
  });
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t ch = 0; ch < g.c; ++ch) {
      double s = 0;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t k = 0; k < chunks; ++k) {
        s += sums[(n * chunks + k) * g.c + ch];
        if (xm) m = std::max(m, maxs[(n * chunks + k) * g.c + ch]);
      }
      mp[n * g.c + ch] = static_cast<T>(s / static_cast<double>(g.hw));
      if (xm) xm[n * g.c + ch] = m;
    }
}

template <typename T>
void scale(const at::Tensor& x, const at::Tensor& gate, at::Tensor& y, const Geometry& g) {
  const T* xp = x.data_ptr<T>();
  const T* gp = gate.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  if (!g.cl) {
    at::parallel_for(0, g.n * g.c, task_grain(g.hw), [&](int64_t b, int64_t e) {
      SEKIT_DISPATCH(scale_planes<T>, xp, gp, yp, b, e, g.hw);
    });
    return;
  }
  at::parallel_for(0, g.n * g.hw, task_grain(g.c), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e;) {
      const int64_t n = t / g.hw, r = t % g.hw, r1 = std::min(g.hw, r + (e - t));
      SEKIT_DISPATCH(scale_rows<T>, xp, gp, yp, n, r, r1, g.hw, g.c);
      t += r1 - r;
    }
  });
}

template <typename T>
void dot(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& max, const Geometry& g, at::Tensor& dg,
         at::Tensor& ties) {
  const T* a = gy.data_ptr<T>();
  const T* b = x.data_ptr<T>();
  T* d = dg.data_ptr<T>();
  const T* mp = max.defined() ? max.data_ptr<T>() : nullptr;
  int64_t* tp = ties.defined() ? ties.data_ptr<int64_t>() : nullptr;
  if (!g.cl) {
    at::parallel_for(0, g.n * g.c, task_grain(g.hw), [&](int64_t s, int64_t e) {
      SEKIT_DISPATCH(dot_planes<T>, a, b, s, e, g.hw, d, mp, tp);
    });
    return;
  }
  const int64_t chunks = row_chunks(g);
  std::vector<double> sums(static_cast<size_t>(g.n * chunks * g.c), 0.0);
  std::vector<int64_t> cnt(mp ? static_cast<size_t>(g.n * chunks * g.c) : 0, 0);
  at::parallel_for(0, g.n * chunks, chunk_grain(g, chunks), [&](int64_t s, int64_t e) {
    for (int64_t t = s; t < e; ++t) {
      const int64_t n = t / chunks, k = t % chunks;
      const int64_t r0 = g.hw * k / chunks, r1 = g.hw * (k + 1) / chunks;
      SEKIT_DISPATCH(dot_rows<T>, a, b, n, r0, r1, g.hw, g.c, sums.data() + t * g.c, mp,
                     mp ? cnt.data() + t * g.c : nullptr);
    }
  });
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t ch = 0; ch < g.c; ++ch) {
      double s = 0;
      int64_t c = 0;
      for (int64_t k = 0; k < chunks; ++k) {
        s += sums[(n * chunks + k) * g.c + ch];
        if (mp) c += cnt[(n * chunks + k) * g.c + ch];
      }
      d[n * g.c + ch] = static_cast<T>(s);
      if (tp) tp[n * g.c + ch] = c;
    }
}

template <typename T>
void grad_x(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& gate, const at::Tensor& dmean,
            const at::Tensor& max, const at::Tensor& dmax, at::Tensor& gx, const Geometry& g) {
  const T* a = gy.data_ptr<T>();
  const T* b = x.data_ptr<T>();
  const T* gp = gate.data_ptr<T>();
  const T* dm = dmean.data_ptr<T>();
  const T* mp = max.defined() ? max.data_ptr<T>() : nullptr;
  const T* dx = dmax.defined() ? dmax.data_ptr<T>() : nullptr;
  T* o = gx.data_ptr<T>();
  if (!g.cl) {
    at::parallel_for(0, g.n * g.c, task_grain(g.hw), [&](int64_t s, int64_t e) {
      SEKIT_DISPATCH(grad_planes<T>, a, b, gp, dm, mp, dx, o, s, e, g.hw);
    });
    return;
  }
  at::parallel_for(0, g.n * g.hw, task_grain(g.c), [&](int64_t s, int64_t e) {
    for (int64_t t = s; t < e;) {
      const int64_t n = t / g.hw, r = t % g.hw, r1 = std::min(g.hw, r + (e - t));
      SEKIT_DISPATCH(grad_rows<T>, a, b, gp, dm, mp, dx, o, n, r, r1, g.hw, g.c);
      t += r1 - r;
    }
  });
}

struct ForwardPass {
  at::Tensor y, s, gate, max;
};

// squeeze -> excitation -> scale; the excitation without autograd (the Function recomputes
// it in backward).
ForwardPass forward_pass(const at::Tensor& x, const std::vector<at::Tensor>& params, const FusedConfig& cfg) {
  const Geometry g = geometry(x);
  ForwardPass r;
  at::Tensor mean = at::empty({g.n, g.c}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (cfg.add_maxpool) r.max = at::empty_like(mean);
  r.y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sekit_se_forward", [&] {
    squeeze<scalar_t>(x, g, mean, r.max);
    r.s = cfg.add_maxpool ? (mean + r.max).mul_(0.5) : mean;
    r.gate = excite_forward(r.s, params, cfg);
    scale<scalar_t>(x, r.gate, r.y, g);
  });
  return r;
}

struct FusedSqueezeExcite : public torch::autograd::Function<FusedSqueezeExcite> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList params, int64_t se,
                            int64_t act, int64_t gate_act, int64_t bias, int64_t add_maxpool) {
    const FusedConfig cfg = decode({se, act, gate_act, bias, add_maxpool});
    ForwardPass r = forward_pass(x, params.vec(), cfg);
    ctx->save_for_backward(pack({x, r.gate, r.s, r.max, params.vec()}));
    ctx->saved_data["cfg"] = encode(cfg, params.size());
    return r.y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const FusedConfig cfg = decode(ctx->saved_data["cfg"].toIntVector());
    const Saved v = unpack(ctx->get_saved_variables(), cfg);
    const at::Tensor &x = v.x, &gate = v.gate, &s = v.s, &max = v.max;
    const std::vector<at::Tensor>& params = v.params;
    const Geometry g = geometry(x);
    at::Tensor gy = grads[0].contiguous(g.cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);

    at::Tensor dg = at::empty({g.n, g.c}, x.options().memory_format(at::MemoryFormat::Contiguous));
    at::Tensor ties = cfg.add_maxpool ? at::empty({g.n, g.c}, x.options().dtype(at::kLong)) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sekit_se_dot", [&] { dot<scalar_t>(gy, x, max, g, dg, ties); });
    ExcitationGrads e = excitation_backward(s, params, dg, ties, g.hw, x.scalar_type(),
        [&cfg](const at::Tensor& s_leaf, const std::vector<at::Tensor>& p) { return excite(s_leaf, p, cfg); });

    at::Tensor gx = at::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sekit_se_grad",
                               [&] { grad_x<scalar_t>(gy, x, gate, e.dmean, max, e.dmax, gx, g); });
    return function_grads(gx, e.dparams);
  }
};

bool fused_cpu_applicable(const at::Tensor& x) {
  if (!x.device().is_cpu() || x.dim() != 4) return false;
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) return false;
  return x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace

at::Tensor fused_squeeze_excite(const at::Tensor& x, const std::vector<at::Tensor>& params, const FusedConfig& c) {
#ifdef SEKIT_WITH_CUDA
  if (fused_cuda_applicable(x)) return fused_squeeze_excite_cuda(x, params, c);
#endif
  if (!fused_cpu_applicable(x)) return at::Tensor();
  bool graph = x.requires_grad();
  for (const auto& p : params) graph = graph || p.requires_grad();
  if (!graph || !c10::GradMode::is_enabled()) {  // inference: no autograd bookkeeping
    c10::NoGradGuard no_grad;
    return forward_pass(x, params, c).y;
  }
  return FusedSqueezeExcite::apply(x, at::TensorList(params), c.se ? 1 : 0, c.act, c.gate, c.bias ? 1 : 0,
                                   c.add_maxpool ? 1 : 0);
}

bool fused_kernels_use_avx2() { return kernels::use_avx2(); }

}  // namespace sekit
