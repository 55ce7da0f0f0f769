import dev.sekit.Sekit;
import dev.sekit.data.BatchLoader;
import dev.sekit.data.Dataset;
import dev.sekit.data.EpochOrder;
import dev.sekit.data.Image;
import dev.sekit.data.ImageFolder;
import dev.sekit.data.ImageTransform;
import dev.sekit.data.InMemoryDataset;
import dev.sekit.nn.VoVNet;
import dev.sekit.Tensor;
import dev.sekit.train.Losses;
import dev.sekit.train.Optimizer;
import java.awt.image.BufferedImage;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import javax.imageio.ImageIO;

/**
 * Does the model wait for data? SGD steps of ese_vovnet19b_slim_dw (forward, cross-entropy,
 * backward, update; random-resized crops to SIZE, batch 32) fed by an ImageFolder of JPEG
 * photographs (decoded and transformed on the loader's threads) against the same steps fed
 * by in-memory synthetic batches, with the time the loop spent waiting in
 * BatchLoader.next(); and the loader's own rate with no model.
 *
 *   java --enable-native-access=ALL-UNNAMED -cp "target/classes:$(cat target/classpath.txt)" \
 *     benchmarks/quick/FolderTiming.java PHOTO.jpg [size] [loader threads] [intra-op threads]
 */
public class FolderTiming {
  static final int CLASSES = 4;
  static final int PER_CLASS = 96;
  static final int BATCH = 32;

  public static void main(String[] a) throws Exception {
    Path photo = Path.of(a[0]);
    int size = a.length > 1 ? Integer.parseInt(a[1]) : 160;
    int loaderThreads = a.length > 2 ? Integer.parseInt(a[2]) : 1;
    int threads = a.length > 3 ? Integer.parseInt(a[3]) : 2;
    Sekit.setNumThreads(threads);
    Path root = Files.createTempDirectory("sekit-folder");
    makeFolder(photo, root);
    ImageFolder folder = ImageFolder.open(root, ImageTransform.train(size), 0);

    // The loader alone.
    long t0 = System.nanoTime();
    int n = 0;
    try (BatchLoader loader = new BatchLoader(folder, EpochOrder.permutation(folder.size(), 0, 0), BATCH, true,
        loaderThreads)) {
      for (int i = 0; i < loader.batches(); i++) {
        try (BatchLoader.Batch b = loader.next()) {
          n += b.size();
        }
      }
    }
    double loaderRate = n / ((System.nanoTime() - t0) / 1e9);
    System.out.printf("loader alone (%d thread(s)): %.0f images/s (500x375 JPEG -> random-resized crop %d)%n",
        loaderThreads, loaderRate, size);

    float[] synth = new float[folder.size() * 3 * size * size];
    SplittableRandom r = new SplittableRandom(1);
    for (int i = 0; i < synth.length; i++) {
      synth[i] = (float) r.nextGaussian();
    }
    long[] labels = new long[folder.size()];
    for (int i = 0; i < labels.length; i++) {
      labels[i] = folder.label(i);
    }
    try (InMemoryDataset mem = InMemoryDataset.of(MemorySegment.ofArray(synth), labels, CLASSES, 3, size, size)) {
      for (int round = 0; round < Integer.getInteger("rounds", 2); round++) {
        double[] s1 = train(folder, loaderThreads);
        double[] s2 = train(mem, loaderThreads);
        System.out.printf("round %d: ImageFolder %.1f samples/s (waited %.3f s of %.1f s for batches), in-memory "
            + "%.1f samples/s (waited %.3f s of %.1f s); ratio %.3f%n", round, s1[0], s1[1], s1[2], s2[0], s2[1], s2[2],
            s1[0] / s2[0]);
      }
    }
  }

  /** Samples/s of SGD steps over one epoch of {@code data} (after a first step), and the time spent waiting for batches. */
  static double[] train(Dataset data, int loaderThreads) {
    try (Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(0);
      VoVNet net = VoVNet.builder("ese_vovnet19b_slim_dw").numClasses(CLASSES).build(arena);
      net.train();
      Optimizer sgd = Optimizer.sgd(net, 0.01).momentum(0.9).build(arena);
      long waited = 0;
      long t0 = 0;
      int samples = 0;
      try (BatchLoader loader = new BatchLoader(data, EpochOrder.permutation(data.size(), 0, 0), BATCH, true,
          loaderThreads)) {
        for (int i = 0; i < loader.batches(); i++) {
          long w0 = System.nanoTime();
          try (BatchLoader.Batch b = loader.next(); Arena step = Arena.ofConfined()) {
            if (i > 0) {
              waited += System.nanoTime() - w0;
              samples += b.size();
            }
            Tensor logits = net.forward(step, b.inputs(step), true);
            Losses.crossEntropy(logits, b.labels(step), 0.0).backward();
            sgd.step();
            sgd.zeroGrad();
          }
          if (i == 0) {
            t0 = System.nanoTime();
          }
        }
      }
      double seconds = (System.nanoTime() - t0) / 1e9;
      return new double[] {samples / seconds, waited / 1e9, seconds};
    }
  }

  /** CLASSES folders of PER_CLASS 500x375 JPEGs cut from the photograph at random places. */
  static void makeFolder(Path photo, Path root) throws Exception {
    SplittableRandom r = new SplittableRandom(0);
    try (Arena arena = Arena.ofConfined()) {
      Image img = Image.read(arena, photo);
      byte[] px = img.toByteArray();
      for (int c = 0; c < CLASSES; c++) {
        Path dir = Files.createDirectories(root.resolve("class" + c));
        for (int i = 0; i < PER_CLASS; i++) {
          int w = Math.min(500, img.width());
          int h = Math.min(375, img.height());
          int x0 = r.nextInt(img.width() - w + 1);
          int y0 = r.nextInt(img.height() - h + 1);
          BufferedImage bi = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
          for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
              int p = 3 * ((y0 + y) * img.width() + x0 + x);
              bi.setRGB(x, y, ((px[p] & 0xff) << 16) | ((px[p + 1] & 0xff) << 8) | (px[p + 2] & 0xff));
            }
          }
          ImageIO.write(bi, "jpg", dir.resolve(i + ".jpg").toFile());
        }
      }
    }
  }
}
