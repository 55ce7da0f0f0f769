import dev.sekit.Sekit;
import dev.sekit.data.FashionMnist;
import dev.sekit.nn.Attention;
import dev.sekit.nn.SmallVoVNet;
import dev.sekit.train.Trainer;
import java.lang.foreign.Arena;

/** Training throughput of the demo network from Java (see train_timing.py for PyTorch eager). */
public class TrainTiming {
  public static void main(String[] a) {
    int threads = Integer.parseInt(a[0]);
    int steps = a.length > 1 ? Integer.parseInt(a[1]) : 200;
    Attention attn = Attention.valueOf((a.length > 2 ? a[2] : "ese").toUpperCase());
    Sekit.setNumThreads(threads);
    try (Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(0);
      var model = SmallVoVNet.build(arena, attn, 1, 10);
      var cfg = Trainer.Config.defaults().withEpochs(1);
      var trainer = new Trainer(arena, model, FashionMnist.load(arena, FashionMnist.DEBIAN_DIR, "train",
          128 * (steps + 20)), null, cfg);
      long[] t = new long[2];
      trainer.fit(null, new Trainer.Listener() {
        @Override
        public void onStep(int e, int s, double loss, double acc, double sps) {
          if (s == 19) {
            t[0] = System.nanoTime();
          }
          if (s == steps + 19) {
            t[1] = System.nanoTime();
          }
        }
      }, null);
      double dt = (t[1] - t[0]) / 1e9;
      System.out.printf("java sekit    train SmallVoVNet attn=%s batch 128 threads=%d: %.0f samples/s (%d steps, %.1f s)%n",
          attn.name().toLowerCase(), threads, steps * 128 / dt, steps, dt);
    }
  }
}
