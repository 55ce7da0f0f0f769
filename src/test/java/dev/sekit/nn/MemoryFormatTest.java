package dev.sekit.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import java.lang.foreign.Arena;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Channels-last gives the same outputs and gradients as NCHW. */
class MemoryFormatTest {
  @Test
  void channelsLastMatchesNchwForwardAndBackward() {
    try (Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(3);
      Module a = SmallVoVNet.build(arena, Attention.ESE, 1, 10);
      Module b = SmallVoVNet.build(arena, Attention.ESE, 1, 10);
      a.to(DType.FLOAT64);
      b.to(DType.FLOAT64);
      b.loadStateDict(a.stateDict());
      b.to(MemoryFormat.CHANNELS_LAST);
      assertTrue(b.stateDict().get("0.conv.weight").isContiguous(MemoryFormat.CHANNELS_LAST));
      Tensor x = Tensor.randn(arena, DType.FLOAT64, Device.CPU, 4, 1, 28, 28);
      Tensor xcl = x.contiguous(arena, MemoryFormat.CHANNELS_LAST);
      Tensor rgb = Tensor.randn(arena, DType.FLOAT64, Device.CPU, 2, 3, 4, 4);
      assertFalse(rgb.isContiguous(MemoryFormat.CHANNELS_LAST)); // (C = 1 is both layouts at once)
      Tensor rgbCl = rgb.contiguous(arena, MemoryFormat.CHANNELS_LAST);
      assertTrue(rgbCl.isContiguous(MemoryFormat.CHANNELS_LAST));
      org.junit.jupiter.api.Assertions.assertArrayEquals(new long[] {48, 1, 12, 3}, rgbCl.strides());
      org.junit.jupiter.api.Assertions.assertArrayEquals(rgb.toDoubleArray(), rgbCl.toDoubleArray(),
          "copyTo/toArray read in logical (row-major) order");
      Tensor ya = a.forward(x);
      Tensor yb = b.forward(xcl);
      assertTrue(TestSupport.relativeError(ya, yb) < 1e-12);
      Tensor g = Tensor.randn(arena, DType.FLOAT64, Device.CPU, 4, 10);
      ya.backward(g);
      yb.backward(g);
      for (Map.Entry<String, Tensor> p : a.namedParameters().entrySet()) {
        double err = TestSupport.relativeError(p.getValue().grad().orElseThrow(),
            b.namedParameters().get(p.getKey()).grad().orElseThrow().contiguous(arena, MemoryFormat.CONTIGUOUS));
        assertTrue(err < 1e-10, p.getKey() + ": " + err);
      }
    }
  }

  /**
   * A one-channel input and a [24, 1, 3, 3] weight are contiguous in both layouts at once;
   * the convolution still writes the module's layout (and so its BatchNorm+ReLU runs the
   * fused channels-last kernel in training), in both directions of {@code to}.
   */
  @Test
  void aGrayscaleStemWritesTheModulesLayout() {
    try (Arena arena = Arena.ofConfined()) {
      Module stem = ConvNormAct.of(arena, 1, 24, 3, 1);
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 4, 1, 8, 8);
      assertTrue(stem.forward(x).isContiguous(MemoryFormat.CHANNELS_LAST), "as created");
      stem.to(MemoryFormat.CONTIGUOUS);
      Tensor nchw = stem.forward(x);
      assertTrue(nchw.isContiguous(MemoryFormat.CONTIGUOUS));
      assertFalse(nchw.isContiguous(MemoryFormat.CHANNELS_LAST));
      stem.to(MemoryFormat.CHANNELS_LAST);
      Tensor cl = stem.forward(x);
      assertTrue(cl.isContiguous(MemoryFormat.CHANNELS_LAST), "converted back");
      assertTrue(TestSupport.relativeError(nchw, cl) < 1e-6);
    }
  }

  /** Converting to the layout a module already has copies nothing, even for [O, 1, 1, 1]. */
  @Test
  void convertingTwiceKeepsTheSameMemory() {
    try (Arena arena = Arena.ofConfined()) {
      Module pointwise = ConvNormAct.of(arena, 1, 8, 1, 1); // weight [8, 1, 1, 1]
      Module stem = ConvNormAct.of(arena, 1, 24, 3, 1);
      for (MemoryFormat f : new MemoryFormat[] {MemoryFormat.CHANNELS_LAST, MemoryFormat.CONTIGUOUS}) {
        for (Module m : new Module[] {pointwise, stem}) {
          m.to(f);
          long at = m.stateDict().get("conv.weight").dataAddress();
          m.to(f);
          assertEquals(at, m.stateDict().get("conv.weight").dataAddress(), f + ": converted again");
        }
      }
    }
  }
}
