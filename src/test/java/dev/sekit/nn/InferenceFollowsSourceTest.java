package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.SekitException;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import java.lang.foreign.Arena;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * A prepared module computes what its source computes: NaN and infinity in the input
 * propagate to the logits as in the source's forward (and PyTorch), and after the source moves
 * to float64 the prepared module is no longer planned and follows it.
 */
class InferenceFollowsSourceTest {
  private static Tensor image(Arena arena, float special, int at) {
    Random rnd = new Random(3);
    float[] v = new float[2 * 3 * 32 * 32];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) rnd.nextGaussian();
    }
    if (at >= 0) {
      v[at] = special;
    }
    return Tensor.copyOf(arena, v, 2, 3, 32, 32);
  }

  private static boolean[] nanness(Tensor logits) {
    float[] v = logits.toFloatArray();
    boolean[] r = new boolean[v.length];
    for (int i = 0; i < v.length; i++) {
      r[i] = Float.isNaN(v[i]);
    }
    return r;
  }

  private static void sameNanness(String what, Module net) {
    try (Arena arena = Arena.ofConfined()) {
      net.eval();
      InferenceModule fast = net.prepareForInference();
      // one pixel of the second image: in the middle, at a corner, in the last channel
      int mid = 3 * 32 * 32 + 16 * 32 + 16;
      int corner = 3 * 32 * 32;
      int last = 2 * 3 * 32 * 32 - 1;
      for (float special : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
        for (int at : new int[] {mid, corner, last}) {
          Tensor x = image(arena, special, at);
          boolean[] expected = nanness(net.forward(arena, x, false));
          boolean[] actual = nanness(fast.forward(arena, x));
          assertArrayEquals(expected, actual, what + ": NaN-ness of the logits, " + special + " at " + at);
          if (Float.isNaN(special)) {
            assertTrue(expected[expected.length - 1], what + ": the source gives NaN for a NaN pixel");
          }
        }
      }
      // Finite inputs still run the plan, with finite results equal to the source's.
      Tensor x = image(arena, 0, -1);
      double err = TestSupport.relativeError(net.forward(arena, x, false), fast.forward(arena, x));
      assertTrue(err < TestSupport.tolerance(DType.FLOAT32), what + ": relative error " + err);
    }
  }

  @Test
  void nanAndInfinityPropagateThroughAPreparedVoVNet() {
    Sekit.manualSeed(11);
    try (Arena arena = Arena.ofConfined()) {
      VoVNet net = VoVNet.builder("ese_vovnet19b_slim_dw").numClasses(5).build(arena);
      InferenceModuleTest.randomiseBatchNorm(arena, net, 12);
      assertTrue(net.eval().prepareForInference().isPlanned(), "the VoVNet runs the plan");
      sameNanness("VoVNet", net);
    }
  }

  @Test
  void nanAndInfinityPropagateThroughAPreparedResNet() {
    Sekit.manualSeed(13);
    try (Arena arena = Arena.ofConfined()) {
      ResNet.Config cfg = new ResNet.Config(ResidualBlock.Kind.BASIC, new int[] {1, 1, 1, 1},
          new int[] {8, 16, 24, 32}, 1, 64, ResNet.Stem.CONV7X7, 8, false, AttentionConfig.none(), 0.0);
      ResNet net = ResNet.builder(cfg).inChannels(3).numClasses(5).build(arena);
      InferenceModuleTest.randomiseBatchNorm(arena, net, 14);
      sameNanness("ResNet", net);
    }
  }

  /** A NaN weight reaches the logits as in the source (the fused steps would drop it). */
  @Test
  void aNanWeightPropagatesToo() {
    Sekit.manualSeed(15);
    try (Arena arena = Arena.ofConfined()) {
      VoVNet net = VoVNet.builder("ese_vovnet19b_slim_dw").numClasses(5).build(arena);
      net.eval();
      InferenceModule fast = net.prepareForInference();
      Tensor x = image(arena, 0, -1);
      fast.forward(arena, x);
      Tensor w = net.namedParameters().get("stem.0.conv.weight");
      float[] v = w.toFloatArray();
      v[0] = Float.NaN;
      w.copyFrom(Tensor.copyOf(arena, v, w.shape()));
      assertArrayEquals(nanness(net.forward(arena, x, false)), nanness(fast.forward(arena, x)));
      assertFalse(fast.isPlanned(), "weights with NaN run the source");
    }
  }

  /**
   * After {@code to(FLOAT64)} the prepared module is no longer planned and does what its
   * source does (refusing float32 input with the source's message, computing float64 input as
   * the source); back in float32 it is planned again.
   */
  @Test
  void followsItsSourceToFloat64AndBack() {
    Sekit.manualSeed(17);
    try (Arena arena = Arena.ofConfined()) {
      VoVNet net = VoVNet.builder("ese_vovnet19b_slim_dw").numClasses(5).build(arena);
      net.eval();
      InferenceModule fast = net.prepareForInference();
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 3, 32, 32);
      fast.forward(arena, x);
      assertTrue(fast.isPlanned());
      net.to(DType.FLOAT64);
      assertFalse(fast.isPlanned(), "a float64 source is not planned");
      SekitException source = assertThrows(SekitException.class, () -> net.forward(arena, x, false));
      SekitException prepared = assertThrows(SekitException.class, () -> fast.forward(arena, x));
      assertEquals(source.getMessage(), prepared.getMessage());
      Tensor x64 = x.to(DType.FLOAT64);
      assertEquals(0.0, TestSupport.relativeError(net.forward(arena, x64, false), fast.forward(arena, x64)));
      net.to(DType.FLOAT32);
      assertTrue(fast.isPlanned(), "planned again in float32");
      double err = TestSupport.relativeError(net.forward(arena, x, false), fast.forward(arena, x));
      assertTrue(err < TestSupport.tolerance(DType.FLOAT32), "relative error " + err);
    }
  }
}
