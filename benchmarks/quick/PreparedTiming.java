import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.nn.InferenceModule;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
import java.util.Arrays;

/**
 * Prepared inference (prepareForInference) of timm VoVNets at 224x224 float32, medians of
 * 30 calls at batch 1 and 10 at batch 8; the libtorch and oneDNN are whichever libsekit was
 * built against (-Dsekit.library.path picks another build). See run.sh.
 *   java --enable-native-access=ALL-UNNAMED -cp ... PreparedTiming.java THREADS [MODEL,...] [BATCH,...]
 */
public class PreparedTiming {
  public static void main(String[] a) {
    Sekit.setNumThreads(Integer.parseInt(a[0]));
    String[] models = (a.length > 1 ? a[1] : "ese_vovnet19b_dw,ese_vovnet39b").split(",");
    int[] batches = Arrays.stream((a.length > 2 ? a[2] : "1,8").split(",")).mapToInt(Integer::parseInt).toArray();
    for (String model : models) {
      try (Arena arena = Arena.ofConfined()) {
        InferenceModule net = VoVNet.create(arena, model).eval().prepareForInference();
        for (int n : batches) {
          Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, n, 3, 224, 224);
          int reps = n == 1 ? 30 : 10;
          double[] t = new double[reps];
          for (int i = 0; i < 3; i++) {
            try (Arena s = Arena.ofConfined()) { net.forward(s, x); }
          }
          for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            try (Arena s = Arena.ofConfined()) { net.forward(s, x); }
            t[i] = (System.nanoTime() - t0) / 1e6;
          }
          Arrays.sort(t);
          System.out.printf("prepared %s batch %d, libtorch %s, planned %b, threads %d: median %.1f ms (min %.1f)%n",
              model, n, Sekit.torchVersion(), net.isPlanned(), Sekit.numThreads(), t[reps / 2], t[0]);
        }
      }
    }
  }
}
