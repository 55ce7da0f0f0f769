package dev.sekit.bench;

import dev.sekit.DType;
import dev.sekit.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/** Handing data to native code: wrapping an off-heap segment (no copy) vs copying a Java array in. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class CopyBench {
  @Param({"1024", "1048576", "104857600"})
  public int bytes;

  Arena arena;
  MemorySegment segment;
  float[] array;

  @Setup(Level.Trial)
  public void setup() {
    arena = Arena.ofConfined();
    segment = arena.allocate(bytes, 64);
    array = new float[bytes / 4];
    segment.fill((byte) 1);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }

  @Benchmark
  public long wrapSegment() {
    try (Arena a = Arena.ofConfined()) {
      return Tensor.wrap(a, segment, DType.FLOAT32, bytes / 4).dataAddress();
    }
  }

  @Benchmark
  public long copyArray() {
    try (Arena a = Arena.ofConfined()) {
      return Tensor.copyOf(a, array, bytes / 4).dataAddress();
    }
  }

}
