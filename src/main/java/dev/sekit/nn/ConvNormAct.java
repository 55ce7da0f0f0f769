package dev.sekit.nn;

import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;

/**
 * timm's ConvNormAct: Conv2d (no bias, padding kernel/2) → BatchNorm2d (eps 1e-5,
 * momentum 0.1) → ReLU, with parameters {@code conv.weight} and {@code bn.*}; or, when
 * separable, timm's SeparableConvNormAct: depthwise {@code conv_dw} → pointwise
 * {@code conv_pw} → {@code bn} → ReLU.
 */
public final class ConvNormAct extends Module {
  private ConvNormAct(Arena arena, int in, int out, int kernel, int stride, boolean separable) {
    super(NativeModule.convNormAct(open(arena), in, out, kernel, stride, separable));
  }

  /** A plain ConvNormAct. */
  public static ConvNormAct of(Arena arena, int inChannels, int outChannels, int kernel, int stride) {
    return new ConvNormAct(arena, inChannels, outChannels, kernel, stride, false);
  }

  /** A depthwise-separable ConvNormAct. */
  public static ConvNormAct separable(Arena arena, int inChannels, int outChannels, int kernel, int stride) {
    return new ConvNormAct(arena, inChannels, outChannels, kernel, stride, true);
  }
}
