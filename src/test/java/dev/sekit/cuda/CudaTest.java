package dev.sekit.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.sekit.Cuda;
import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.Module;
import dev.sekit.nn.SqueezeExcitation;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * GPU tests: skipped, with the reason shown, where no CUDA device is usable. On a GPU they
 * compare CUDA against the CPU, and the fused CUDA kernels against the libtorch
 * composition on fresh random inputs.
 */
@Tag("cuda")
class CudaTest {
  private boolean tf32Conv;
  private boolean tf32Matmul;

  /** float32 means float32 here: TF32 off, as the references are computed. */
  @BeforeEach
  void requireGpu() {
    assumeTrue(Sekit.cudaAvailable(), "no CUDA device usable by this libsekit (CPU libtorch or no GPU): "
        + "CUDA tests skipped");
    tf32Conv = Sekit.allowTf32Convolutions();
    tf32Matmul = Sekit.allowTf32MatrixProducts();
    Sekit.setAllowTf32(false, false);
  }

  @AfterEach
  void restoreTf32() {
    if (Sekit.cudaAvailable()) {
      Sekit.setAllowTf32(tf32Conv, tf32Matmul);
    }
  }

  @Test
  void blocksOnCudaMatchTheCpu() {
    for (DType dtype : new DType[] {DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16}) {
      for (MemoryFormat format : MemoryFormat.values()) {
        for (boolean ese : new boolean[] {true, false}) {
          try (Arena arena = Arena.ofConfined()) {
            Module cpu = ese ? EffectiveSqueezeExcitation.of(arena, 96) : SqueezeExcitation.of(arena, 96);
            Module gpu = ese ? EffectiveSqueezeExcitation.of(arena, 96) : SqueezeExcitation.of(arena, 96);
            gpu.loadStateDict(cpu.stateDict());
            gpu.to(Device.cuda(0), dtype);
            Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 4, 96, 13, 11).contiguous(arena, format);
            Tensor xg = x.to(arena, dtype, Device.cuda(0)).contiguous(arena, format);
            Tensor y = gpu.forward(xg).to(arena, DType.FLOAT32, Device.CPU);
            double err = TestSupport.relativeError(cpu.forward(x), y);
            assertTrue(err < TestSupport.tolerance(dtype), dtype + " " + format + ": " + err);
          }
        }
      }
    }
  }

  /** Both layouts, SE and eSE (with and without max pooling), a large and an odd shape. */
  @Test
  void fusedCudaKernelsMatchTheComposition() {
    long[][] shapes = {{8, 256, 28, 28}, {3, 96, 13, 11}};
    for (long[] shape : shapes) {
      for (MemoryFormat format : MemoryFormat.values()) {
        for (int kind = 0; kind < 3; kind++) {
          try (Arena arena = Arena.ofConfined()) {
            int c = (int) shape[1];
            Module fused = kind == 2 ? SqueezeExcitation.of(arena, c)
                : EffectiveSqueezeExcitation.builder(c).addMaxPool(kind == 1).build(arena);
            Module ref = kind == 2 ? SqueezeExcitation.of(arena, c)
                : EffectiveSqueezeExcitation.builder(c).addMaxPool(kind == 1).build(arena);
            ref.loadStateDict(fused.stateDict());
            fused.to(Device.cuda(0)).to(format);
            ref.to(Device.cuda(0)).to(format);
            ref.useFusedKernels(false);
            String what = (kind == 2 ? "SE" : kind == 1 ? "eSE+max" : "eSE") + " " + format + " "
                + java.util.Arrays.toString(shape);
            Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.cuda(0), shape).contiguous(arena, format)
                .requiresGrad(true);
            Tensor x2 = Tensor.randn(arena, DType.FLOAT32, Device.cuda(0), shape).contiguous(arena, format);
            x2.copyFrom(x);
            x2.requiresGrad(true);
            Tensor g = Tensor.randn(arena, DType.FLOAT32, Device.cuda(0), shape).contiguous(arena, format);
            Tensor yf = fused.forward(x);
            Tensor yr = ref.forward(x2);
            double fwd = TestSupport.relativeError(yr.to(Device.CPU), yf.to(Device.CPU));
            assertTrue(fwd < 1e-5, what + " forward: " + fwd);
            yf.backward(g);
            yr.backward(g);
            double dx = TestSupport.relativeError(x2.grad().orElseThrow().to(Device.CPU),
                x.grad().orElseThrow().to(Device.CPU));
            assertTrue(dx < 1e-5, what + " input gradient: " + dx);
            for (Map.Entry<String, Tensor> p : fused.namedParameters().entrySet()) {
              double dp = TestSupport.relativeError(ref.namedParameters().get(p.getKey()).grad().orElseThrow()
                  .to(Device.CPU), p.getValue().grad().orElseThrow().to(Device.CPU));
              assertTrue(dp < 1e-4, what + " " + p.getKey() + ": " + dp);
            }
          }
        }
      }
    }
  }

  @Test
  void eseVovnet19bDwOnCudaMatchesTheCpu() {
    try (Arena arena = Arena.ofConfined()) {
      VoVNet cpu = VoVNet.create(arena, "ese_vovnet19b_dw");
      VoVNet gpu = VoVNet.create(arena, "ese_vovnet19b_dw");
      gpu.loadStateDict(cpu.stateDict());
      cpu.eval();
      gpu.eval();
      gpu.to(Device.cuda(0));
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 2, 3, 224, 224);
      Tensor y = gpu.forward(arena, x.to(Device.cuda(0)), false).to(Device.CPU);
      assertTrue(TestSupport.relativeError(cpu.forward(arena, x, false), y) < 1e-4);
    }
  }

  @Test
  void pinnedSegmentsCopyBothWays() {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment host = arena.allocate(ValueLayout.JAVA_FLOAT, 1 << 20);
      Cuda.pin(arena, host);
      for (int i = 0; i < 1 << 20; i++) {
        host.setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
      }
      Tensor t = Tensor.wrap(arena, host, DType.FLOAT32, 1 << 20);
      Tensor d = t.to(Device.cuda(0));
      Cuda.synchronize(Device.cuda(0));
      float[] back = d.toFloatArray();
      assertEquals(12345f, back[12345]);
      assertArrayEquals(t.toFloatArray(), back);
    }
  }
}
