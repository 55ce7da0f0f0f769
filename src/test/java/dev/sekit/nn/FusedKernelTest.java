package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import java.lang.foreign.Arena;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The fused SE/eSE kernels against the libtorch composition (the reference) on fresh
 * random inputs: outputs, input gradients and parameter gradients, NCHW and channels-last,
 * float32 and float64, sizes with vector tails, max pool on and off.
 */
class FusedKernelTest {
  static Stream<Arguments> cases() {
    Stream.Builder<Arguments> b = Stream.builder();
    long[][] shapes = {{2, 24, 7, 7}, {1, 64, 56, 56}, {3, 40, 5, 9}, {4, 256, 1, 1}, {2, 1024, 7, 7}, {2, 17, 13, 11}};
    for (long[] s : shapes) {
      for (DType d : new DType[] {DType.FLOAT32, DType.FLOAT64}) {
        for (MemoryFormat f : MemoryFormat.values()) {
          for (boolean pool : new boolean[] {false, true}) {
            int c = (int) s[1];
            b.add(Arguments.of("eSE " + java.util.Arrays.toString(s) + " " + d + " " + f + (pool ? " maxpool" : ""), s, d, f,
                (Function<Arena, Module>) a -> EffectiveSqueezeExcitation.builder(c).addMaxPool(pool).build(a)));
            Activation act = pool ? Activation.SILU : Activation.RELU;
            b.add(Arguments.of("SE " + act + (pool ? " no bias" : "") + " " + java.util.Arrays.toString(s) + " " + d + " " + f + (pool ? " maxpool" : ""), s, d, f,
                (Function<Arena, Module>) a -> SqueezeExcitation.builder(c).activation(act).bias(!pool)
                    .gate(pool ? Activation.HARD_SIGMOID : Activation.SIGMOID).addMaxPool(pool).build(a)));
          }
        }
      }
    }
    // Every other activation, as SE's inner activation and as the gate.
    Activation[][] pairs = {{Activation.GELU, Activation.TANH}, {Activation.HARD_SWISH, Activation.SILU},
        {Activation.TANH, Activation.HARD_SWISH}, {Activation.SIGMOID, Activation.GELU},
        {Activation.IDENTITY, Activation.IDENTITY}};
    for (Activation[] pair : pairs) {
      for (DType d : new DType[] {DType.FLOAT32, DType.FLOAT64}) {
        long[] s = {2, 40, 5, 9};
        b.add(Arguments.of("SE " + pair[0] + " gate " + pair[1] + " " + d, s, d, MemoryFormat.CONTIGUOUS,
            (Function<Arena, Module>) a -> SqueezeExcitation.builder(40).activation(pair[0]).gate(pair[1]).build(a)));
        b.add(Arguments.of("eSE gate " + pair[1] + " " + d, s, d, MemoryFormat.CHANNELS_LAST,
            (Function<Arena, Module>) a -> EffectiveSqueezeExcitation.builder(40).gate(pair[1]).build(a)));
      }
    }
    return b.build();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void fusedEqualsComposition(String label, long[] shape, DType dtype, MemoryFormat format, Function<Arena, Module> make) {
    Sekit.manualSeed(label.hashCode());
    try (Arena arena = Arena.ofConfined()) {
      Module fused = make.apply(arena);
      Module ref = make.apply(arena);
      fused.to(dtype);
      ref.to(dtype);
      ref.loadStateDict(fused.stateDict());
      ref.useFusedKernels(false);
      Tensor x0 = Tensor.randn(arena, dtype, Device.CPU, shape).contiguous(arena, format);
      Tensor x1 = x0.to(dtype).contiguous(arena, format);
      x0.requiresGrad(true);
      x1.requiresGrad(true);
      Tensor yf = fused.forward(x0);
      Tensor yr = ref.forward(x1);
      assertTrue(yf.isContiguous(format), "the output keeps the input's layout");
      double tol = dtype == DType.FLOAT64 ? 1e-12 : 2e-6;
      check(label + " output", yr, yf, tol);
      Tensor g = Tensor.randn(arena, dtype, Device.CPU, shape);
      yf.backward(g);
      yr.backward(g);
      check(label + " grad input", x1.grad().orElseThrow(), x0.grad().orElseThrow(), tol);
      for (Map.Entry<String, Tensor> p : fused.namedParameters().entrySet()) {
        check(label + " grad " + p.getKey(), ref.namedParameters().get(p.getKey()).grad().orElseThrow(),
            p.getValue().grad().orElseThrow(), tol * 10);
      }
    }
  }

  private static void check(String what, Tensor expected, Tensor actual, double tol) {
    double err = TestSupport.relativeError(expected, actual);
    assertTrue(err <= tol, what + ": relative error " + err + " > " + tol);
  }
}
