package dev.sekit;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.Module;
import dev.sekit.nn.SqueezeExcitation;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.WeakReference;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Arenas own native handles: closing frees, later use fails clearly, nothing leaks. */
class LifetimeTest {

  @Test
  void closedTensorThrowsInsteadOfCrashing() {
    Tensor t;
    try (Arena arena = Arena.ofConfined()) {
      t = Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 4);
      assertTrue(t.isAlive());
    }
    assertFalse(t.isAlive());
    IllegalStateException e = assertThrows(IllegalStateException.class, t::shape);
    assertTrue(e.getMessage().contains("closed"), e.getMessage());
    assertThrows(IllegalStateException.class, t::toFloatArray);
    assertEquals("Tensor[closed]", t.toString());
  }

  @Test
  void closedModuleThrowsInsteadOfCrashing() {
    Module m;
    Tensor bias;
    try (Arena arena = Arena.ofConfined()) {
      m = SqueezeExcitation.of(arena, 16);
      bias = m.namedParameters().get("fc1.bias");
    }
    try (Arena arena = Arena.ofConfined()) {
      Tensor x = Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 1, 16, 2, 2);
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> m.forward(x));
      assertTrue(e.getMessage().contains("module was closed"), e.getMessage());
      assertThrows(IllegalStateException.class, bias::toFloatArray);
      assertThrows(IllegalStateException.class, m::namedParameters);
    }
  }

  @Test
  void tensorCannotOutliveTheSegmentItWraps() {
    try (Arena handles = Arena.ofConfined()) {
      Tensor t;
      Tensor y;
      EffectiveSqueezeExcitation ese = EffectiveSqueezeExcitation.of(handles, 4);
      try (Arena data = Arena.ofConfined()) {
        MemorySegment seg = data.allocate(JAVA_FLOAT, 16);
        t = Tensor.wrap(handles, seg, DType.FLOAT32, 1, 4, 2, 2).requiresGrad(true);
        y = ese.forward(t); // autograd keeps t's memory
      }
      IllegalStateException e = assertThrows(IllegalStateException.class, t::toFloatArray);
      assertTrue(e.getMessage().contains("segment whose arena was closed"), e.getMessage());
      Tensor g = Tensor.zeros(handles, DType.FLOAT32, Device.CPU, 1, 4, 2, 2);
      assertThrows(IllegalStateException.class, () -> y.backward(g), "backward would read freed memory");
    }
  }

  @Test
  void aGatherKeepsItsIndexSegmentAliveForBackward() {
    try (Arena handles = Arena.ofConfined()) {
      Tensor x = Tensor.randn(handles, DType.FLOAT32, Device.CPU, 8, 3).requiresGrad(true);
      Tensor picked;
      try (Arena data = Arena.ofConfined()) {
        MemorySegment idx = data.allocate(java.lang.foreign.ValueLayout.JAVA_LONG, 2);
        idx.setAtIndex(java.lang.foreign.ValueLayout.JAVA_LONG, 1, 5);
        picked = x.indexSelect(handles, 0, Tensor.wrap(handles, idx, DType.INT64, 2));
      }
      Tensor g = Tensor.zeros(handles, DType.FLOAT32, Device.CPU, 2, 3);
      assertThrows(IllegalStateException.class, () -> picked.backward(g),
          "index_select's backward reads the index, whose memory is gone");
    }
  }

  @Test
  void aSequentialOfAClosedChildIsRefused() {
    Module child;
    try (Arena other = Arena.ofConfined()) {
      child = EffectiveSqueezeExcitation.of(other, 4);
    }
    try (Arena arena = Arena.ofConfined()) {
      Module alive = EffectiveSqueezeExcitation.of(arena, 4);
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> dev.sekit.nn.Sequential.of(arena, alive, child));
      assertTrue(e.getMessage().contains("module was closed"), e.getMessage());
    }
  }

  @Test
  void wrongThreadIsRefusedByFfm() throws Exception {
    try (Arena arena = Arena.ofConfined();
        ExecutorService ex = Executors.newSingleThreadExecutor()) {
      Tensor t = Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 4);
      Future<?> f = ex.submit(() -> t.toFloatArray());
      Throwable cause = assertThrows(java.util.concurrent.ExecutionException.class, f::get).getCause();
      assertTrue(cause instanceof WrongThreadException, String.valueOf(cause));
    }
  }

  @Test
  void blocksRunConcurrentlyOnSeparateThreads() throws Exception {
    float[] input = new float[2 * 32 * 7 * 7];
    for (int i = 0; i < input.length; i++) {
      input[i] = (float) Math.sin(i);
    }
    float[] expected;
    try (Arena arena = Arena.ofConfined()) {
      expected = run(arena, input);
    }
    try (ExecutorService ex = Executors.newFixedThreadPool(4)) {
      List<Future<float[]>> results = new ArrayList<>();
      for (int i = 0; i < 16; i++) {
        Callable<float[]> job = () -> {
          try (Arena arena = Arena.ofConfined()) {
            return run(arena, input);
          }
        };
        results.add(ex.submit(job));
      }
      for (Future<float[]> f : results) {
        org.junit.jupiter.api.Assertions.assertArrayEquals(expected, f.get());
      }
    }
  }

  /** The same seeded eSE + SE on the same input: forward, backward, return d/dx. */
  private static float[] run(Arena arena, float[] input) {
    EffectiveSqueezeExcitation ese = EffectiveSqueezeExcitation.of(arena, 32);
    SqueezeExcitation se = SqueezeExcitation.of(arena, 32);
    for (Tensor p : ese.namedParameters().values()) {
      p.data().fill((byte) 0);
    }
    for (Tensor p : se.namedParameters().values()) {
      MemorySegment d = p.data();
      for (long i = 0; i < p.numel(); i++) {
        d.setAtIndex(JAVA_FLOAT, i, (float) Math.cos(i) * 0.1f);
      }
    }
    Tensor x = Tensor.copyOf(arena, input, 2, 32, 7, 7).requiresGrad(true);
    Tensor y = se.forward(ese.forward(x));
    y.backward(Tensor.copyOf(arena, input, 2, 32, 7, 7));
    return x.grad().orElseThrow().toFloatArray();
  }

  @Test
  void closingArenasReleasesNativeMemory() {
    Runnable step = () -> {
      try (Arena arena = Arena.ofConfined()) {
        EffectiveSqueezeExcitation ese = EffectiveSqueezeExcitation.of(arena, 64);
        SqueezeExcitation se = SqueezeExcitation.of(arena, 64);
        Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 4, 64, 28, 28).requiresGrad(true);
        Tensor y = se.forward(ese.forward(x));
        y.backward(Tensor.randn(arena, DType.FLOAT32, Device.CPU, 4, 64, 28, 28));
        x.grad().orElseThrow();
        ese.namedParameters().get("fc.weight").grad().orElseThrow();
      }
    };
    for (int i = 0; i < 100; i++) {
      step.run(); // warm up allocator caches
    }
    long before = TestSupport.rssBytes();
    for (int i = 0; i < 1500; i++) { // ~4.8 MB of tensors per step: 7 GB if they leaked
      step.run();
    }
    long grown = TestSupport.rssBytes() - before;
    assertTrue(grown < 96L << 20, "resident memory grew by " + (grown >> 20) + " MiB over 1500 steps");
  }

  @Test
  void anAutomaticArenaThatOwnsTensorsIsStillCollected() throws InterruptedException {
    List<WeakReference<MemorySegment.Scope>> scopes = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      scopes.add(anAutomaticArenaWithTensors());
    }
    for (int i = 0; i < 50 && scopes.stream().anyMatch(r -> r.get() != null); i++) {
      System.gc();
      Thread.sleep(20);
    }
    assertTrue(scopes.stream().allMatch(r -> r.get() == null), "an automatic arena was kept reachable");
  }

  /** In a frame of its own, so that no local of the test's frame keeps the arena reachable. */
  private static WeakReference<MemorySegment.Scope> anAutomaticArenaWithTensors() {
    Arena auto = Arena.ofAuto();
    Tensor x = Tensor.randn(auto, DType.FLOAT32, Device.CPU, 4, 64, 28, 28);
    x.close(); // one released early, one left for the collector
    Tensor.randn(auto, DType.FLOAT32, Device.CPU, 4, 64, 28, 28);
    return new WeakReference<>(auto.scope());
  }

  @Test
  void anArenaPerCallLeavesNothingBehind() {
    try (Arena arena = Arena.ofConfined()) {
      Module ese = EffectiveSqueezeExcitation.of(arena, 64).eval();
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 64, 7, 7);
      float[] first = null;
      for (int i = 0; i < 20_000; i++) { // the serving pattern: one short arena per call
        try (Arena call = Arena.ofConfined()) {
          float[] y = ese.forward(call, x, false).toFloatArray();
          if (first == null) {
            first = y;
          } else if (i % 1000 == 0) {
            assertArrayEquals(first, y);
          }
        }
      }
      Tensor kept;
      try (Arena call = Arena.ofConfined()) {
        kept = ese.forward(call, x, false);
        assertTrue(kept.isAlive());
      }
      assertFalse(kept.isAlive()); // the owner of a closed arena freed what it held
    }
  }
}
