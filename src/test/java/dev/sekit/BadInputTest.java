package dev.sekit;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.Module;
import dev.sekit.nn.SqueezeExcitation;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Each wrong argument gets its own clear exception; the JVM lives on. */
class BadInputTest {
  private Arena arena;

  @BeforeEach
  void open() {
    arena = Arena.ofConfined();
  }

  @AfterEach
  void close() {
    arena.close();
  }

  private static <T extends Throwable> void expect(Class<T> type, String fragment, Executable call) {
    T e = assertThrows(type, call);
    assertTrue(String.valueOf(e.getMessage()).contains(fragment),
        "message '" + e.getMessage() + "' should mention '" + fragment + "'");
  }

  @Test
  void nullArguments() {
    MemorySegment seg = arena.allocate(JAVA_FLOAT, 4);
    expect(NullPointerException.class, "arena", () -> Tensor.wrap(null, seg, DType.FLOAT32, 4));
    expect(NullPointerException.class, "data", () -> Tensor.wrap(arena, null, DType.FLOAT32, 4));
    expect(NullPointerException.class, "dtype", () -> Tensor.wrap(arena, seg, null, 4));
    Module m = EffectiveSqueezeExcitation.of(arena, 4);
    expect(NullPointerException.class, "x", () -> m.forward(null));
    expect(NullPointerException.class, "stateDict", () -> m.loadStateDict(null));
    Tensor t = Tensor.wrap(arena, seg, DType.FLOAT32, 4);
    expect(NullPointerException.class, "grad", () -> t.backward(null));
    expect(NullPointerException.class, "src", () -> t.copyFrom(null));
    expect(NullPointerException.class, "arena", () -> SqueezeExcitation.of(null, 8));
  }

  @Test
  void wrongRank() {
    Module m = EffectiveSqueezeExcitation.of(arena, 8);
    Tensor x = Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 8, 4, 4);
    SekitException e = assertThrows(SekitException.class, () -> m.forward(x));
    assertEquals(SekitException.Code.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().contains("expects a 4-d input [N, C, H, W], got 3-d shape [8, 4, 4]"), e.getMessage());
  }

  @Test
  void channelsNotMatchingTheModule() {
    Module m = SqueezeExcitation.of(arena, 64);
    Tensor x = Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 1, 32, 4, 4);
    expect(SekitException.class, "has 64 channels but the input has 32", () -> m.forward(x));
  }

  @Test
  void zeroOrNegativeDimensions() {
    expect(IllegalArgumentException.class, "shape[1] is 0",
        () -> Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 2, 0, 3));
    expect(IllegalArgumentException.class, "shape[0] is -1",
        () -> Tensor.empty(arena, DType.FLOAT32, Device.CPU, -1));
    MemorySegment seg = arena.allocate(JAVA_FLOAT, 4);
    expect(IllegalArgumentException.class, "shape[0] is 0", () -> Tensor.wrap(arena, seg, DType.FLOAT32, 0, 4));
    expect(IllegalArgumentException.class, "channels must be >= 1", () -> SqueezeExcitation.builder(0));
    expect(IllegalArgumentException.class, "channels must be >= 1", () -> EffectiveSqueezeExcitation.builder(-3));
  }

  @Test
  void segmentTooSmallOrMisaligned() {
    MemorySegment seg = arena.allocate(JAVA_FLOAT, 6);
    expect(IllegalArgumentException.class, "holds 24 bytes but shape [2, 4] of float32 needs 32",
        () -> Tensor.wrap(arena, seg, DType.FLOAT32, 2, 4));
    MemorySegment odd = arena.allocate(64, 8).asSlice(2);
    expect(IllegalArgumentException.class, "is not aligned to 4 bytes",
        () -> Tensor.wrap(arena, odd, DType.FLOAT32, 4));
    expect(IllegalArgumentException.class, "is not aligned to 8 bytes",
        () -> Tensor.wrap(arena, arena.allocate(64, 8).asSlice(4), DType.FLOAT64, 2));
  }

  @Test
  void heapSegmentIsRefusedWhereOffHeapIsNeeded() {
    float[] values = new float[8];
    expect(IllegalArgumentException.class, "use Tensor.copyOf",
        () -> Tensor.wrap(arena, MemorySegment.ofArray(values), DType.FLOAT32, 8));
    // The explicitly named copy accepts it.
    assertEquals(8, Tensor.copyOf(arena, values, 8).numel());
    expect(IllegalArgumentException.class, "read-only",
        () -> Tensor.wrap(arena, arena.allocate(JAVA_FLOAT, 8).asReadOnly(), DType.FLOAT32, 8));
  }

  @Test
  void dtypeMismatchBetweenModuleAndInput() {
    Module m = EffectiveSqueezeExcitation.of(arena, 8);
    Tensor x = Tensor.zeros(arena, DType.FLOAT64, Device.CPU, 1, 8, 2, 2);
    SekitException e = assertThrows(SekitException.class, () -> m.forward(x));
    assertTrue(e.getMessage().contains("holds Float parameters but the input is Double"), e.getMessage());
    m.to(DType.FLOAT64);
    assertEquals(DType.FLOAT64, m.forward(x).dtype()); // after converting, it runs
  }

  @Test
  void reductionOptionsThatMakeNoSense() {
    expect(IllegalArgumentException.class, "rdChannels must be >= 1", () -> SqueezeExcitation.builder(64).rdChannels(0));
    expect(IllegalArgumentException.class, "rdRatio must be in (0, 1024]", () -> SqueezeExcitation.builder(64).rdRatio(0));
    expect(IllegalArgumentException.class, "rdRatio must be in (0, 1024]", () -> SqueezeExcitation.builder(64).rdRatio(Double.NaN));
    expect(IllegalArgumentException.class, "rdDivisor must be >= 1", () -> SqueezeExcitation.builder(64).rdDivisor(0));
    expect(IllegalArgumentException.class, "divide channels 64", () -> SqueezeExcitation.builder(64).reduction(3));
    assertEquals(4, SqueezeExcitation.builder(64).reduction(16).build(arena).reducedChannels());
    assertEquals(8, SqueezeExcitation.of(arena, 64).reducedChannels());
    assertEquals(128, SqueezeExcitation.of(arena, 2048).reducedChannels());
  }

  @Test
  void stateDictMismatchesAreListed() {
    Module m = SqueezeExcitation.of(arena, 16);
    Map<String, Tensor> sd = new HashMap<>(m.stateDict());
    sd.remove("fc2.bias");
    sd.put("fc3.weight", Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 1));
    sd.put("fc1.bias", Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 9));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.loadStateDict(sd));
    assertTrue(e.getMessage().contains("missing keys [fc2.bias]"), e.getMessage());
    assertTrue(e.getMessage().contains("unexpected keys [fc3.weight]"), e.getMessage());
    assertTrue(e.getMessage().contains("fc1.bias: expected [8], got [9]"), e.getMessage());
    sd.put("fc1.bias", Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 8));
    Module.LoadResult r = m.loadStateDict(sd, false);
    assertEquals(java.util.List.of("fc2.bias"), r.missingKeys());
    assertEquals(java.util.List.of("fc3.weight"), r.unexpectedKeys());
    assertEquals(0f, m.stateDict().get("fc1.bias").toFloatArray()[3]);
  }

  @Test
  void backwardMisuse() {
    Module m = EffectiveSqueezeExcitation.of(arena, 4);
    Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 4, 2, 2);
    Tensor y = m.forward(arena, x, false);
    expect(SekitException.class, "does not require grad",
        () -> y.backward(Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 1, 4, 2, 2)));
    Tensor y2 = m.forward(x);
    expect(SekitException.class, "grad has shape [4] but the tensor has shape [1, 4, 2, 2]",
        () -> y2.backward(Tensor.zeros(arena, DType.FLOAT32, Device.CPU, 4)));
    expect(SekitException.class, "grad may be NULL only for a one-element tensor", y2::backward);
    expect(SekitException.class, "only floating tensors can require gradients",
        () -> Tensor.copyOf(arena, new long[] {1}, 1).requiresGrad(true));
  }

  @Test
  void closedArenaForResults() {
    Module m = EffectiveSqueezeExcitation.of(arena, 4);
    Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 4, 2, 2);
    Arena closed = Arena.ofConfined();
    closed.close();
    expect(IllegalStateException.class, "already closed", () -> m.forward(closed, x, false));
    expect(IllegalStateException.class, "already closed", () -> Tensor.zeros(closed, DType.FLOAT32, Device.CPU, 1));
    expect(IllegalStateException.class, "already closed", () -> EffectiveSqueezeExcitation.of(closed, 4));
  }

  @Test
  void modulesWithoutParameters() {
    Module pool = dev.sekit.nn.MaxPool2d.of(arena, 3, 2, true);
    pool.to(DType.FLOAT64); // nothing to convert: a no-op, not an error
    pool.to(Device.CPU);
    expect(IllegalStateException.class, "MaxPool2d has no parameters", pool::dtype);
    assertEquals(2, pool.forward(Tensor.randn(arena, DType.FLOAT32, Device.CPU, 1, 2, 5, 5)).size(2));
  }

  @Test
  void cudaWithoutCudaIsAClearError() {
    if (Sekit.cudaAvailable()) {
      return; // covered by the CUDA tests
    }
    expect(SekitException.class, "no usable CUDA",
        () -> Tensor.zeros(arena, DType.FLOAT32, Device.cuda(0), 2));
  }
}
