package dev.sekit.nn;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * float64 gradients from libtorch's autograd against central finite differences of
 * L = sum(y * G), for the input and every parameter. Perturbations go straight into
 * native memory through zero-copy views.
 */
class GradientCheckTest {
  private static final double EPS = 1e-6;

  static Stream<Arguments> modules() {
    return Stream.of(
        Arguments.of("SE sigmoid", (Function<Arena, Module>) a -> SqueezeExcitation.builder(16).rdChannels(4).build(a)),
        Arguments.of("SE hard sigmoid, max pool", (Function<Arena, Module>) a ->
            SqueezeExcitation.builder(16).rdChannels(8).gate(Activation.HARD_SIGMOID).addMaxPool(true).build(a)),
        Arguments.of("SE silu, no bias", (Function<Arena, Module>) a ->
            SqueezeExcitation.builder(16).rdChannels(4).activation(Activation.SILU).bias(false).build(a)),
        Arguments.of("eSE hard sigmoid", (Function<Arena, Module>) a -> EffectiveSqueezeExcitation.of(a, 12)),
        Arguments.of("eSE sigmoid, max pool", (Function<Arena, Module>) a ->
            EffectiveSqueezeExcitation.builder(12).gate(Activation.SIGMOID).addMaxPool(true).build(a)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("modules")
  void gradientsMatchFiniteDifferences(String label, Function<Arena, Module> make) {
    Sekit.manualSeed(7);
    try (Arena arena = Arena.ofConfined()) {
      Module m = make.apply(arena);
      m.to(DType.FLOAT64);
      long channels = channelsOf(m);
      long[] shape = {2, channels, 3, 5};
      MemorySegment xs = arena.allocate(JAVA_DOUBLE, 2 * channels * 15);
      Tensor x = Tensor.wrap(arena, xs, DType.FLOAT64, shape);
      x.copyFrom(Tensor.randn(arena, DType.FLOAT64, Device.CPU, shape));
      Tensor g = Tensor.randn(arena, DType.FLOAT64, Device.CPU, shape);
      double[] gv = g.toDoubleArray();

      x.requiresGrad(true);
      Tensor y = m.forward(x);
      y.backward(g);
      x.requiresGrad(false);

      assertGradient(label + " d/dx", xs, x.grad().orElseThrow().toDoubleArray(), m, x, gv, arena);
      for (Map.Entry<String, Tensor> p : m.namedParameters().entrySet()) {
        double[] analytic = p.getValue().grad().orElseThrow().toDoubleArray();
        assertGradient(label + " d/d" + p.getKey(), p.getValue().data(), analytic, m, x, gv, arena);
      }
    }
  }

  private static long channelsOf(Module m) {
    Tensor w = m.namedParameters().values().iterator().next();
    return w.size(1);
  }

  private static double loss(Module m, Tensor x, double[] g, Arena arena) {
    try (Arena scratch = Arena.ofConfined()) {
      double[] y = m.forward(scratch, x, false).toDoubleArray();
      double s = 0;
      for (int i = 0; i < y.length; i++) {
        s += y[i] * g[i];
      }
      return s;
    }
  }

  private static void assertGradient(String what, MemorySegment values, double[] analytic, Module m,
      Tensor x, double[] g, Arena arena) {
    double worst = 0;
    for (int i = 0; i < analytic.length; i++) {
      double v = values.getAtIndex(JAVA_DOUBLE, i);
      values.setAtIndex(JAVA_DOUBLE, i, v + EPS);
      double up = loss(m, x, g, arena);
      values.setAtIndex(JAVA_DOUBLE, i, v - EPS);
      double down = loss(m, x, g, arena);
      values.setAtIndex(JAVA_DOUBLE, i, v);
      double numeric = (up - down) / (2 * EPS);
      worst = Math.max(worst, Math.abs(numeric - analytic[i]) / Math.max(1.0, Math.abs(analytic[i])));
    }
    assertTrue(worst < 1e-6, what + ": finite differences differ by " + worst);
  }
}
