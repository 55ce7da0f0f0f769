package dev.sekit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.Module;
import dev.sekit.nn.Sequential;
import dev.sekit.nn.SqueezeExcitation;
import dev.sekit.train.Checkpoint;
import dev.sekit.train.CosineSchedule;
import dev.sekit.train.Optimizer;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The smaller defects of the adversarial review: each wrong use gets the right exception. */
class MisuseTest {
  @TempDir Path dir;

  private static Map<String, float[]> weights(Module m) {
    Map<String, float[]> r = new LinkedHashMap<>();
    m.namedParameters().forEach((k, t) -> r.put(k, t.toFloatArray()));
    return r;
  }

  @Test
  void aCheckpointOfAnotherOptimizerChangesNothing() throws Exception {
    Path ckpt = dir.resolve("sgd.safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Module m = SqueezeExcitation.of(arena, 16);
      Checkpoint.save(ckpt, m, Optimizer.sgd(m, 0.1).build(arena), Map.of());
    }
    try (Arena arena = Arena.ofConfined()) {
      Module m = SqueezeExcitation.of(arena, 16);
      Optimizer adamw = Optimizer.adamW(m, 0.1).build(arena);
      Map<String, float[]> before = weights(m);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Checkpoint.load(ckpt, m, adamw));
      assertTrue(e.getMessage().contains("another kind of optimizer"), e.getMessage());
      Map<String, float[]> after = weights(m);
      before.forEach((k, v) -> assertArrayEquals(v, after.get(k), k + " changed by a refused load"));
      IllegalArgumentException seed = assertThrows(IllegalArgumentException.class,
          () -> Checkpoint.load(ckpt, m, null, meta -> {
            throw new IllegalArgumentException("refused by its metadata");
          }));
      assertEquals("refused by its metadata", seed.getMessage());
      Map<String, float[]> still = weights(m);
      before.forEach((k, v) -> assertArrayEquals(v, still.get(k), k + " changed by a refused load"));
    }
  }

  @Test
  void aFailedAllocationIsOutOfMemoryWithAPlainMessage() {
    try (Arena arena = Arena.ofConfined()) {
      SekitException e = assertThrows(SekitException.class,
          () -> Tensor.empty(arena, DType.FLOAT32, Device.CPU, 1L << 24, 1L << 22)); // 256 TiB: over any address space
      assertEquals(SekitException.Code.OUT_OF_MEMORY, e.code());
      assertEquals("out of memory: could not allocate 281474976710656 bytes of host memory", e.getMessage());
    }
  }

  @Test
  void anOverflowingShapeIsAnIllegalArgument() {
    try (Arena arena = Arena.ofConfined()) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> Tensor.zeros(arena, DType.FLOAT64, Device.CPU, 1L << 31, 1L << 31, 4));
      assertTrue(e.getMessage().contains("too large"), e.getMessage());
      assertThrows(IllegalArgumentException.class,
          () -> Tensor.wrap(arena, arena.allocate(8), DType.FLOAT32, Long.MAX_VALUE, 2));
    }
  }

  @Test
  void aClosedInputIsNamedAsSuch() {
    try (Arena arena = Arena.ofConfined()) {
      Module m = EffectiveSqueezeExcitation.of(arena, 4);
      Tensor x;
      try (Arena gone = Arena.ofConfined()) {
        x = Tensor.randn(gone, DType.FLOAT32, Device.CPU, 1, 4, 2, 2);
      }
      Tensor closed = x;
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> m.forward(closed));
      assertEquals("this tensor was closed: the arena that owns it has been closed", e.getMessage());
      Tensor y = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 4, 2, 2);
      y.close();
      e = assertThrows(IllegalStateException.class, () -> m.forward(arena, y, false));
      assertEquals("this tensor was closed (Tensor.close())", e.getMessage());
    }
  }

  @Test
  void aNullChildIsNamed() {
    try (Arena arena = Arena.ofConfined()) {
      Module m = EffectiveSqueezeExcitation.of(arena, 4);
      NullPointerException e = assertThrows(NullPointerException.class, () -> Sequential.of(arena, m, null));
      assertEquals("modules[1] is null", e.getMessage());
    }
  }

  @Test
  void aScheduleRefusesNegativeSteps() {
    CosineSchedule s = new CosineSchedule(0.1, 0.0, 10, 100);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.at(-1));
    assertEquals("step must be >= 0, got -1", e.getMessage());
    assertEquals(0.01, s.at(0), 1e-12);
    assertEquals(0.0, s.at(1000), 1e-12);
  }

  @Test
  void threadCountsAreBounded() {
    int before = Sekit.numThreads();
    assertThrows(IllegalArgumentException.class, () -> Sekit.setNumThreads(Sekit.maxThreads() + 1));
    assertThrows(IllegalArgumentException.class, () -> Sekit.setNumThreads(0));
    assertEquals(before, Sekit.numThreads());
  }

  @Test
  void closingTensorsEarlyKeepsALongLivedArenaFlat() {
    try (Arena serving = Arena.ofConfined()) {
      Module m = EffectiveSqueezeExcitation.of(serving, 64);
      Runnable request = () -> {
        Tensor x = Tensor.randn(serving, DType.FLOAT32, Device.CPU, 1, 64, 7, 7);
        Tensor y = m.forward(serving, x, false);
        y.data(); // a view too: it dies with y
        y.close();
        x.close();
      };
      for (int i = 0; i < 2000; i++) {
        request.run(); // warm up caches and the JIT
      }
      System.gc();
      long before = TestSupport.rssBytes();
      for (int i = 0; i < 30_000; i++) {
        request.run();
      }
      System.gc();
      long grown = TestSupport.rssBytes() - before;
      // Without close() each request kept ~13 KB alive in the arena: 390 MB here.
      assertTrue(grown < 24L << 20, "resident memory grew by " + (grown >> 20) + " MiB over 30,000 requests");
      Tensor last = Tensor.randn(serving, DType.FLOAT32, Device.CPU, 2);
      last.close();
      last.close(); // idempotent
      assertFalse(last.isAlive());
      assertEquals("Tensor[closed]", last.toString());
    }
  }
}
