import dev.sekit.DType;
import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/** Quick timing of a VoVNet forward (eval, no grad) from Java; see run.sh. */
public class VoVNetTiming {
  public static void main(String[] a) throws Exception {
    Sekit.setNumThreads(Integer.parseInt(a[0]));
    String model = a.length > 1 ? a[1] : "ese_vovnet19b_dw";
    int[] batches = a.length > 2 ? Arrays.stream(a[2].split(",")).mapToInt(Integer::parseInt).toArray() : new int[] {1, 8};
    try (Arena arena = Arena.ofConfined()) {
      VoVNet net = VoVNet.create(arena, model);
      net.eval();
      for (int n : batches) {
        Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, n, 3, 224, 224);
        int reps = n == 1 ? 30 : 10;
        double[] t = new double[reps];
        for (int i = 0; i < 3; i++) {
          try (Arena s = Arena.ofConfined()) { net.forward(s, x, false); }
        }
        for (int i = 0; i < reps; i++) {
          long t0 = System.nanoTime();
          try (Arena s = Arena.ofConfined()) { net.forward(s, x, false); }
          t[i] = (System.nanoTime() - t0) / 1e6;
        }
        Arrays.sort(t);
        System.out.printf("java sekit   %s fwd batch %d 224x224 f32 threads=%d: median %.1f ms (min %.1f)%n",
            model, n, Sekit.numThreads(), t[reps / 2], t[0]);
      }
    }
    String hwm = Files.readAllLines(Path.of("/proc/self/status")).stream()
        .filter(l -> l.startsWith("VmHWM")).findFirst().orElse("?");
    System.out.println("java sekit   peak RSS (JVM included): " + hwm.replaceAll("\\s+", " "));
  }
}
