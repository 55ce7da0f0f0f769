package dev.sekit.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * timm's own {@code ese_vovnet19b_dw}, run on CUDA by benchmarks/gpu/timm_cuda.py on the GPU
 * machine, against the same state dict loaded into sekit on CUDA. The file is named by the
 * system property {@code sekit.timm.cuda} (benchmarks/gpu/device.sh sets it); without a GPU
 * or without that file the test is skipped with its reason.
 *
 * <p>Tolerances: float32 with TF32 off ({@link Sekit#setAllowTf32}) must agree with timm's CUDA results as float32
 * rounding allows through 19 layers (1e-4 of the largest magnitude, as the CPU-vs-CUDA
 * test). Half types are judged against the float64 CPU logits: sekit's error may be at most
 * twice the error of timm's own run in the same dtype (plus 1e-3), since both round every
 * layer's output and cuDNN chooses the accumulation order.
 */
@Tag("cuda")
class TimmCudaTest {
  @Test
  void timmsOwnModelOnCudaEqualsSekitsOnCuda() throws Exception {
    assumeTrue(Sekit.cudaAvailable(), "no CUDA device usable by this libsekit: CUDA tests skipped");
    String file = System.getProperty("sekit.timm.cuda", "");
    assumeTrue(!file.isEmpty() && Files.isRegularFile(Path.of(file)),
        "sekit.timm.cuda names no file: benchmarks/gpu/timm_cuda.py writes it on a GPU machine with timm");
    boolean tf32Conv = Sekit.allowTf32Convolutions();
    boolean tf32Matmul = Sekit.allowTf32MatrixProducts();
    Sekit.setAllowTf32(false, false); // timm_cuda.py turns TF32 off too
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors ref = SafeTensors.open(arena, Path.of(file));
      Tensor x = ref.tensor("input");
      Tensor exact = ref.tensor("logits.f64");
      for (DType dtype : new DType[] {DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16}) {
        VoVNet net = VoVNet.create(arena, "ese_vovnet19b_dw");
        net.loadStateDict(ref.tensors("state."));
        net.eval();
        net.to(Device.cuda(0), dtype);
        Tensor xg = x.to(arena, dtype, Device.cuda(0));
        Tensor logits = net.forward(arena, xg, false).to(arena, DType.FLOAT32, Device.CPU);
        String name = switch (dtype) {
          case FLOAT16 -> "f16";
          case BFLOAT16 -> "bf16";
          default -> "f32";
        };
        Tensor timm = ref.tensor("logits." + name);
        double errSekit = TestSupport.relativeError(exact, logits);
        double errTimm = TestSupport.relativeError(exact, timm);
        double vsTimm = TestSupport.relativeError(timm, logits);
        System.out.printf("ese_vovnet19b_dw on CUDA, %s: sekit vs timm %.3g; vs float64 CPU: sekit %.3g, timm %.3g%n",
            name, vsTimm, errSekit, errTimm);
        if (dtype == DType.FLOAT32) {
          assertTrue(vsTimm < 1e-4, "float32 logits differ from timm's on CUDA by " + vsTimm);
          List<Tensor> maps = net.forwardStages(arena, xg, false);
          for (int i = 0; i < 4; i++) {
            double e = TestSupport.relativeError(ref.tensor("feature." + i), maps.get(i).to(Device.CPU));
            System.out.printf("  stage %d map vs timm: %.3g%n", i, e);
            assertTrue(e < 1e-4, "stage " + i + " differs from timm's by " + e);
          }
        } else {
          assertTrue(errSekit <= 2 * errTimm + 1e-3,
              name + ": sekit's error " + errSekit + " is over twice timm's own " + errTimm);
        }
      }
    } finally {
      Sekit.setAllowTf32(tf32Conv, tf32Matmul);
    }
  }
}
