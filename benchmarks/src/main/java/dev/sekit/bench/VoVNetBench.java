package dev.sekit.bench;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
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

/** ese_vovnet19b_dw forward (eval, no graph) at 224×224. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class VoVNetBench {
  @Param({"1", "8"})
  public int batch;

  Arena arena;
  VoVNet net;
  Tensor x;

  @Setup(Level.Trial)
  public void setup() {
    Sekit.setNumThreads(Integer.getInteger("sekit.threads", 2));
    arena = Arena.ofConfined();
    net = VoVNet.create(arena, "ese_vovnet19b_dw");
    net.eval();
    x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, batch, 3, 224, 224);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
  }

  @Benchmark
  public long forward() {
    try (Arena a = Arena.ofConfined()) {
      return net.forward(a, x, false).dataAddress();
    }
  }
}
