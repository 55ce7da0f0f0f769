// The few oneDNN calls whose signatures changed between oneDNN 2 (Debian 12's libdnnl-dev 2.6)
// and oneDNN 3 (Debian 13's 3.7), written once for both; chosen by DNNL_VERSION_MAJOR.
//  - oneDNN 3 dropped the operation descriptors (convolution_forward::desc, pooling_forward::desc):
//    primitive descriptors take the engine and the shapes directly, pooling with a dilation.
//  - post_ops::append_eltwise lost its scale argument.
#pragma once

#include <dnnl.hpp>
#include <dnnl_version.h>

#if DNNL_VERSION_MAJOR != 2 && DNNL_VERSION_MAJOR != 3
#error "sekit's inference plans build against oneDNN 2.x or 3.x (Debian 12 or 13's libdnnl-dev)"
#endif

namespace sekit::dnnl_compat {

// Whether x86 float32 Winograd convolutions exist: oneDNN 3 removed them, so a plan does not
// ask (and build an empty descriptor) for every dense 3x3 convolution of every plan there.
constexpr bool kHasWinograd = DNNL_VERSION_MAJOR < 3;

// A ReLU applied to a primitive's output.
inline dnnl::post_ops relu() {
  dnnl::post_ops po;
#if DNNL_VERSION_MAJOR >= 3
  po.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
#else
  po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
#endif
  return po;
}

// An inference convolution with bias; an empty descriptor where oneDNN has no implementation.
inline dnnl::convolution_forward::primitive_desc convolution(
    const dnnl::engine& engine, dnnl::algorithm alg, const dnnl::memory::desc& src, const dnnl::memory::desc& weights,
    const dnnl::memory::desc& bias, const dnnl::memory::desc& dst, const dnnl::memory::dims& strides,
    const dnnl::memory::dims& pad_l, const dnnl::memory::dims& pad_r, const dnnl::primitive_attr& attr) {
#if DNNL_VERSION_MAJOR >= 3
  return dnnl::convolution_forward::primitive_desc(engine, dnnl::prop_kind::forward_inference, alg, src, weights,
                                                   bias, dst, strides, pad_l, pad_r, attr, /*allow_empty=*/true);
#else
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, alg, src, weights, bias, dst, strides, pad_l,
                                    pad_r);
  return dnnl::convolution_forward::primitive_desc(d, attr, engine, /*allow_empty=*/true);
#endif
}

// Inference max pooling without dilation; an empty descriptor where oneDNN has no implementation.
inline dnnl::pooling_forward::primitive_desc max_pooling(
    const dnnl::engine& engine, const dnnl::memory::desc& src, const dnnl::memory::desc& dst,
    const dnnl::memory::dims& strides, const dnnl::memory::dims& kernel, const dnnl::memory::dims& pad_l,
    const dnnl::memory::dims& pad_r, const dnnl::primitive_attr& attr) {
#if DNNL_VERSION_MAJOR >= 3
  const dnnl::memory::dims dilation(kernel.size(), 0);
  return dnnl::pooling_forward::primitive_desc(engine, dnnl::prop_kind::forward_inference,
                                               dnnl::algorithm::pooling_max, src, dst, strides, kernel, dilation,
                                               pad_l, pad_r, attr, /*allow_empty=*/true);
#else
  dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src, dst, strides,
                                kernel, pad_l, pad_r);
  return dnnl::pooling_forward::primitive_desc(d, attr, engine, /*allow_empty=*/true);
#endif
}

}  // namespace sekit::dnnl_compat
