import dev.sekit.Sekit;
import dev.sekit.data.InMemoryDataset;
import dev.sekit.nn.Attention;
import dev.sekit.nn.SmallVoVNet;
import dev.sekit.train.Trainer;
import java.lang.foreign.Arena;
import java.nio.file.Path;

/** Training throughput of the demo network from Java (see train_timing.py for PyTorch eager). */
public class TrainTiming {
  public static void main(String[] a) throws Exception {
    int threads = Integer.parseInt(a[0]);
    int steps = a.length > 1 ? Integer.parseInt(a[1]) : 200;
    Attention attn = Attention.valueOf((a.length > 2 ? a[2] : "ese").toUpperCase());
    Sekit.setNumThreads(threads);
    Path dir = Path.of("/usr/share/datasets/fashion-mnist");
    try (InMemoryDataset train = InMemoryDataset.fromIdx(dir.resolve("train-images-idx3-ubyte.gz"),
             dir.resolve("train-labels-idx1-ubyte.gz"), 10, 0.2860, 0.3530, 128 * (steps + 20));
         Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(0);
      var model = SmallVoVNet.build(arena, attn, 1, 10);
      // the demo's options (sekit train's defaults), one epoch
      var opts = Trainer.Options.builder().epochs(1).randomCrop(2, -0.2860 / 0.3530).build();
      long[] t = new long[2];
      new Trainer(arena, model, train, null, opts).fit(null, new Trainer.Listener() {
        @Override
        public void onStep(int e, int s, double loss, double acc, double sps) {
          if (s == 19) {
            t[0] = System.nanoTime();
          }
          if (s == steps + 19) {
            t[1] = System.nanoTime();
          }
        }
      }, () -> false);
      double dt = (t[1] - t[0]) / 1e9;
      System.out.printf("java sekit    train SmallVoVNet attn=%s batch 128 threads=%d: %.0f samples/s (%d steps, %.1f s)%n",
          attn.name().toLowerCase(), threads, steps * 128 / dt, steps, dt);
    }
  }
}
