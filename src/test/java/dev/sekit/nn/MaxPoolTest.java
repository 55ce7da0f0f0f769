package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import java.lang.foreign.Arena;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Max pooling in training on channels-last float32 maps runs sekit's own kernels (one byte per
 * winner, a gathering backward); {@code useFusedKernels(false)} runs ATen's, PyTorch's own
 * kernels. Values and input gradients must be the same bits, ties, NaN and -inf included.
 */
class MaxPoolTest {
  static Stream<Arguments> cases() {
    return Stream.of(
        // VoVNet's stage pooling: 3/2 with ceil mode, the last window clipped.
        Arguments.of(new long[] {2, 24, 7, 7}, 3, 2, true),
        // More channels than one block of the kernel, a count that no vector width divides.
        Arguments.of(new long[] {3, 70, 9, 11}, 3, 2, true),
        Arguments.of(new long[] {1, 8, 6, 6}, 2, 2, false),
        // Windows that overlap four ways over: each input adds many windows' gradients.
        Arguments.of(new long[] {2, 130, 13, 10}, 5, 1, false),
        Arguments.of(new long[] {2, 16, 8, 8}, 3, 3, true),
        // The largest window a byte indexes: 16 x 16.
        Arguments.of(new long[] {2, 5, 16, 16}, 16, 16, false),
        Arguments.of(new long[] {2, 3, 33, 40}, 16, 5, true),
        // A stride longer than the window: some values are in no window and get a zero gradient.
        Arguments.of(new long[] {2, 6, 11, 11}, 2, 3, false),
        Arguments.of(new long[] {2, 6, 11, 11}, 2, 3, true));
  }

  @ParameterizedTest(name = "{0} k{1} s{2} ceil={3}")
  @MethodSource("cases")
  void sameBitsAsATen(long[] shape, int k, int s, boolean ceil) {
    Sekit.manualSeed(k * 31 + s);
    try (Arena arena = Arena.ofConfined()) {
      float[] values = awkward(shape, new Random(k * 7919L + s));
      Tensor x0 = Tensor.copyOf(arena, values, shape).contiguous(arena, MemoryFormat.CHANNELS_LAST);
      Tensor x1 = Tensor.copyOf(arena, values, shape).contiguous(arena, MemoryFormat.CHANNELS_LAST);
      x0.requiresGrad(true);
      x1.requiresGrad(true);
      Module fused = MaxPool2d.of(arena, k, s, ceil);
      Module aten = MaxPool2d.of(arena, k, s, ceil).useFusedKernels(false);
      Tensor y0 = fused.forward(x0);
      Tensor y1 = aten.forward(x1);
      assertEquals(java.util.Arrays.toString(y1.shape()), java.util.Arrays.toString(y0.shape()));
      assertTrue(y0.isContiguous(MemoryFormat.CHANNELS_LAST), "the output is channels-last");
      assertSameBits("output", y1.toFloatArray(), y0.toFloatArray());
      Tensor g = Tensor.randn(arena, DType.FLOAT32, Device.CPU, y0.shape());
      y0.backward(g);
      y1.backward(g);
      assertSameBits("input gradient", x1.grad().orElseThrow().toFloatArray(), x0.grad().orElseThrow().toFloatArray());
    }
  }

  /** One channel reads as both layouts: ATen then keeps NCHW, and so does sekit. */
  @Test
  void aOneChannelMapKeepsATensLayout() {
    try (Arena arena = Arena.ofConfined()) {
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 1, 8, 8);
      x.requiresGrad(true);
      Tensor y = MaxPool2d.of(arena, 2, 2, false).forward(x);
      assertEquals("[16, 16, 4, 1]", java.util.Arrays.toString(y.strides()), "NCHW strides, as ATen gives them");
    }
  }

  /**
   * A ResNet's default stem pools 3/2 with padding 1. In evaluation mode without a head, with
   * the input's gradient recorded, that pooling is the only kernel the two paths do not share,
   * so the features and the input's gradient must be the same bits.
   */
  @Test
  void paddedStemPoolingHasATensGradient() {
    Sekit.manualSeed(5);
    try (Arena arena = Arena.ofConfined()) {
      ResNet.Config cfg = new ResNet.Config(ResidualBlock.Kind.BASIC, new int[] {1, 1, 1, 1},
          new int[] {8, 16, 24, 32}, 1, 64, ResNet.Stem.CONV7X7, 8, false, AttentionConfig.none(), 0.0);
      ResNet fused = ResNet.builder(cfg).inChannels(3).numClasses(0).build(arena);
      ResNet aten = ResNet.builder(cfg).inChannels(3).numClasses(0).build(arena);
      aten.loadStateDict(fused.stateDict());
      for (ResNet net : new ResNet[] {fused, aten}) {
        net.to(MemoryFormat.CHANNELS_LAST);
        net.eval();
      }
      aten.useFusedKernels(false);
      long[] shape = {2, 3, 29, 27};
      float[] values = Tensor.randn(arena, DType.FLOAT32, Device.CPU, shape).toFloatArray();
      Tensor x0 = Tensor.copyOf(arena, values, shape).contiguous(arena, MemoryFormat.CHANNELS_LAST);
      Tensor x1 = Tensor.copyOf(arena, values, shape).contiguous(arena, MemoryFormat.CHANNELS_LAST);
      x0.requiresGrad(true);
      x1.requiresGrad(true);
      Tensor y0 = fused.forward(x0);
      Tensor y1 = aten.forward(x1);
      assertSameBits("features", y1.toFloatArray(), y0.toFloatArray());
      Tensor g = Tensor.randn(arena, DType.FLOAT32, Device.CPU, y0.shape());
      y0.backward(g);
      y1.backward(g);
      assertSameBits("input gradient", x1.grad().orElseThrow().toFloatArray(), x0.grad().orElseThrow().toFloatArray());
    }
  }

  /** Normal values rounded to halves (so windows tie), with a NaN and a -inf here and there. */
  private static float[] awkward(long[] shape, Random r) {
    int n = (int) (shape[0] * shape[1] * shape[2] * shape[3]);
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      double u = r.nextDouble();
      v[i] = u < 0.01 ? Float.NaN : u < 0.03 ? Float.NEGATIVE_INFINITY : Math.round(r.nextGaussian() * 2) / 2f;
    }
    return v;
  }

  private static void assertSameBits(String what, float[] expected, float[] actual) {
    assertEquals(expected.length, actual.length, what + " size");
    for (int i = 0; i < expected.length; i++) {
      if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
        throw new AssertionError(what + " differs at " + i + ": ATen " + expected[i] + ", sekit " + actual[i]);
      }
    }
  }
}
