package dev.sekit;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.nn.EffectiveSqueezeExcitation;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** Zero-copy in both directions, copies only where asked, dtypes, basic autograd. */
class TensorTest {

  @Test
  void tf32FlagsAreSetAndReadBackEachOnItsOwn() {
    boolean conv = Sekit.allowTf32Convolutions();
    boolean mm = Sekit.allowTf32MatrixProducts();
    try {
      Sekit.setAllowTf32(false, false);
      assertFalse(Sekit.allowTf32Convolutions());
      assertFalse(Sekit.allowTf32MatrixProducts());
      Sekit.setAllowTf32(true, false);
      assertTrue(Sekit.allowTf32Convolutions());
      assertFalse(Sekit.allowTf32MatrixProducts());
      Sekit.setAllowTf32(false, true);
      assertFalse(Sekit.allowTf32Convolutions());
      assertTrue(Sekit.allowTf32MatrixProducts());
    } finally {
      Sekit.setAllowTf32(conv, mm);
    }
  }

  @Test
  void runtimeDescribesItself() {
    assertEquals(1, Sekit.abiVersion());
    assertTrue(Sekit.torchVersion().matches("\\d+\\.\\d+.*"), Sekit.torchVersion());
    assertTrue(Sekit.cudaDeviceCount() >= 0);
    assertTrue(Sekit.numThreads() >= 1);
  }

  @Test
  void wrapMakesNoCopyAndWritesAreSeenBothWays() {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment seg = arena.allocate(JAVA_FLOAT, 24);
      Tensor t = Tensor.wrap(arena, seg, DType.FLOAT32, 2, 3, 4);
      assertEquals(seg.address(), t.dataAddress(), "native data pointer is the segment's address");
      assertArrayEquals(new long[] {2, 3, 4}, t.shape());
      assertArrayEquals(new long[] {12, 4, 1}, t.strides());
      assertEquals(DType.FLOAT32, t.dtype());
      assertEquals(Device.CPU, t.device());

      seg.setAtIndex(JAVA_FLOAT, 7, 3.5f); // Java writes, native reads
      assertEquals(3.5f, t.toFloatArray()[7]);

      float[] ones = new float[24];
      java.util.Arrays.fill(ones, 1f);
      t.copyFrom(Tensor.copyOf(arena, ones, 2, 3, 4)); // native writes, Java reads
      assertEquals(1f, seg.getAtIndex(JAVA_FLOAT, 7));
      assertEquals(seg.address(), t.data().address(), "data() of a wrapped tensor is the segment");
    }
  }

  @Test
  void nativeResultsAreViewedWithoutCopy() {
    try (Arena arena = Arena.ofConfined()) {
      EffectiveSqueezeExcitation ese = EffectiveSqueezeExcitation.of(arena, 8);
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 8, 4, 4);
      Tensor y = ese.forward(arena, x, false);
      MemorySegment view = y.data();
      assertEquals(y.dataAddress(), view.address(), "the view is the native buffer");
      assertEquals(2 * 8 * 16 * 4, view.byteSize());
      view.setAtIndex(JAVA_FLOAT, 5, 42f); // a write through the view is a write to the tensor
      assertEquals(42f, y.toFloatArray()[5]);

      // Parameters are views too: changing fc.bias through its segment changes the module.
      MemorySegment bias = ese.namedParameters().get("fc.bias").data();
      float[] before = ese.forward(arena, x, false).toFloatArray();
      bias.setAtIndex(JAVA_FLOAT, 0, bias.getAtIndex(JAVA_FLOAT, 0) + 1f);
      float[] after = ese.forward(arena, x, false).toFloatArray();
      assertNotEquals(before[0], after[0]);
    }
  }

  @Test
  void narrowIsAViewOfTheSameMemory() {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment seg = arena.allocate(JAVA_FLOAT, 12);
      for (int i = 0; i < 12; i++) {
        seg.setAtIndex(JAVA_FLOAT, i, i);
      }
      Tensor t = Tensor.wrap(arena, seg, DType.FLOAT32, 4, 3);
      Tensor rows = t.narrow(arena, 0, 1, 2);
      assertArrayEquals(new long[] {2, 3}, rows.shape());
      assertEquals(seg.address() + 3 * 4, rows.dataAddress(), "no copy: it points into the segment");
      assertArrayEquals(new float[] {3, 4, 5, 6, 7, 8}, rows.toFloatArray());
      seg.setAtIndex(JAVA_FLOAT, 4, 40f);
      assertEquals(40f, rows.toFloatArray()[1]);
      assertEquals(seg.scope(), rows.data().scope(), "data() of the view is a slice of the segment");
      SekitException e = assertThrows(SekitException.class, () -> t.narrow(arena, 0, 3, 2));
      assertTrue(e.getMessage().contains("rows [3, 5) do not fit dim 0 of size 4"), e.getMessage());
    }
  }

  @Test
  void copiesHappenOnlyWhereAsked() {
    try (Arena arena = Arena.ofConfined()) {
      double[] values = {1, 2, 3, 4, 5, 6};
      Tensor t = Tensor.copyOf(arena, values, 2, 3);
      values[0] = 100; // the tensor holds a copy
      assertEquals(1.0, t.toDoubleArray()[0]);
      Tensor f = t.to(DType.FLOAT32);
      assertNotEquals(t.dataAddress(), f.dataAddress());
      assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, f.toFloatArray());
      MemorySegment dst = arena.allocate(JAVA_DOUBLE, 6);
      t.copyTo(dst);
      assertEquals(6.0, dst.getAtIndex(JAVA_DOUBLE, 5));
      double[] heap = new double[6];
      t.copyTo(MemorySegment.ofArray(heap));
      assertEquals(5.0, heap[4]);
    }
  }

  @Test
  void halfPrecisionRoundTrips() {
    try (Arena arena = Arena.ofConfined()) {
      Tensor t = Tensor.copyOf(arena, new float[] {0.5f, -2f, 1024f}, 3);
      for (DType d : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
        Tensor h = t.to(d);
        assertEquals(d, h.dtype());
        assertEquals(2 * 3, h.data().byteSize());
        assertArrayEquals(new float[] {0.5f, -2f, 1024f}, h.to(DType.FLOAT32).toFloatArray());
      }
      assertEquals(Float.floatToFloat16(-2f), t.to(DType.FLOAT16).data().getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, 1));
    }
  }

  @Test
  void factoriesAndSeeding() {
    try (Arena arena = Arena.ofConfined()) {
      assertArrayEquals(new double[4], Tensor.zeros(arena, DType.FLOAT64, Device.CPU, 2, 2).toDoubleArray());
      Sekit.manualSeed(11);
      float[] a = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 16).toFloatArray();
      Sekit.manualSeed(11);
      float[] b = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 16).toFloatArray();
      assertArrayEquals(a, b);
      for (float v : Tensor.rand(arena, DType.FLOAT32, Device.CPU, 2, 3, 1000).toFloatArray()) {
        assertTrue(v >= 2 && v < 3);
      }
    }
  }

  @Test
  void autogradThroughTensors() {
    try (Arena arena = Arena.ofConfined()) {
      Tensor x = Tensor.copyOf(arena, new double[] {1, 2}, 2).requiresGrad(true);
      assertTrue(x.requiresGrad());
      assertTrue(x.grad().isEmpty());
      EffectiveSqueezeExcitation ese = EffectiveSqueezeExcitation.of(arena, 2);
      ese.to(DType.FLOAT64);
      Tensor x4 = Tensor.copyOf(arena, new double[] {1, 2}, 1, 2, 1, 1).requiresGrad(true);
      Tensor y = ese.forward(x4);
      y.backward(Tensor.copyOf(arena, new double[] {1, 1}, 1, 2, 1, 1));
      assertTrue(x4.grad().isPresent());
      x4.clearGrad();
      assertFalse(x4.grad().isPresent());
    }
  }

  @Test
  void threadsCanBeSet() {
    int before = Sekit.numThreads();
    Sekit.setNumThreads(1);
    assertEquals(1, Sekit.numThreads());
    Sekit.setNumThreads(before);
    assertThrows(IllegalArgumentException.class, () -> Sekit.setNumThreads(0));
  }
}
