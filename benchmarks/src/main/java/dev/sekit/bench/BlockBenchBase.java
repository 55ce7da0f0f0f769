package dev.sekit.bench;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.nn.Attention;
import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.Module;
import dev.sekit.nn.OsaBlock;
import dev.sekit.nn.SqueezeExcitation;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Forward (no graph) and forward+backward of one block at one shape, fused kernels or the
 * libtorch composition; subclasses name the blocks and shapes as JMH parameters.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public abstract class BlockBenchBase {
  /** "se", "ese" or "osa". */
  protected abstract String block();

  /** N,C,H,W. */
  protected abstract String shape();

  /** "fused" or "composition". */
  protected abstract String impl();

  Arena arena;
  Module module;
  Tensor x;
  Tensor xg;
  Tensor g;

  @Setup(Level.Trial)
  public void setup() {
    Sekit.setNumThreads(Integer.getInteger("sekit.threads", 2));
    Sekit.manualSeed(0);
    arena = Arena.ofConfined();
    long[] s = Arrays.stream(shape().split(",")).mapToLong(Long::parseLong).toArray();
    int c = (int) s[1];
    module = switch (block()) {
      case "se" -> SqueezeExcitation.of(arena, c);
      case "ese" -> EffectiveSqueezeExcitation.of(arena, c);
      default -> OsaBlock.builder(c, c / 2, c, 3).residual(true).attention(Attention.ESE).build(arena);
    };
    module.useFusedKernels(impl().equals("fused"));
    module.eval();
    x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, s);
    xg = Tensor.randn(arena, DType.FLOAT32, Device.CPU, s).requiresGrad(true);
    g = Tensor.randn(arena, DType.FLOAT32, Device.CPU, s);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    arena.close();
    Sekit.releaseCachedBuffers();
  }

  @Benchmark
  public long forward() {
    try (Arena a = Arena.ofConfined()) {
      return module.forward(a, x, false).dataAddress();
    }
  }

  @Benchmark
  public void forwardBackward() {
    try (Arena a = Arena.ofConfined()) {
      module.forward(a, xg, true).backward(g);
    }
    xg.clearGrad();
    module.zeroGrad();
  }
}
