// The raw CPU kernels (SE/eSE in se_kernels.hpp, BatchNorm+ReLU in norm_kernels.hpp) in both
// builds (baseline x86-64 and AVX2+FMA, see CMakeLists.txt) and the choice between them at run
// time: SEKIT_DISPATCH(fn, args...) calls the build this CPU runs.
#pragma once

#define SEKIT_KERNEL_NS base
#include "se_kernels.hpp"
#include "norm_kernels.hpp"
#undef SEKIT_KERNEL_NS
#define SEKIT_KERNEL_NS avx2
#include "se_kernels.hpp"
#include "norm_kernels.hpp"
#undef SEKIT_KERNEL_NS

namespace sekit {
namespace kernels {

// Whether this CPU runs the AVX2+FMA build (asked once).
inline bool use_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

}  // namespace kernels
}  // namespace sekit

#define SEKIT_DISPATCH(fn, ...)                                                           \
  (::sekit::kernels::use_avx2() ? ::sekit::kernels::avx2::fn(__VA_ARGS__) \
                                : ::sekit::kernels::base::fn(__VA_ARGS__))
