import dev.sekit.*;
import dev.sekit.nn.*;
import java.lang.foreign.Arena;
import java.util.Arrays;

/** Quick timing of one SE forward from Java; see run.sh. */
public class SeTiming {
  public static void main(String[] a) {
    Sekit.setNumThreads(Integer.parseInt(a[0]));
    try (Arena arena = Arena.ofConfined()) {
      SqueezeExcitation se = SqueezeExcitation.of(arena, 256);
      Tensor x = Tensor.randn(arena, DType.FLOAT32, Device.CPU, 32, 256, 56, 56);
      double[] t = new double[30];
      for (int i = 0; i < 10; i++) { try (Arena s = Arena.ofConfined()) { se.forward(s, x, false); } }
      for (int i = 0; i < t.length; i++) {
        long t0 = System.nanoTime();
        try (Arena s = Arena.ofConfined()) { se.forward(s, x, false); }
        t[i] = (System.nanoTime() - t0) / 1e6;
      }
      Arrays.sort(t);
      System.out.printf("java sekit SE fwd N=32 C=256 56x56 f32 threads=%d: median %.2f ms (min %.2f)%n", Sekit.numThreads(), t[t.length/2], t[0]);
    }
  }
}
