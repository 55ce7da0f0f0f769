import dev.sekit.data.Image;
import dev.sekit.data.ImageTransform;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;

/**
 * JPEG decoding on the same files: the JDK's ImageIO against sekit's libjpeg-turbo path
 * (images/s, one thread), how many pixels of ImageIO's output differ from libjpeg-turbo's
 * (which equals PIL's, see ImageTest), and the cost of timm's evaluation transform.
 *
 *   java --enable-native-access=ALL-UNNAMED -cp "target/classes:$(cat target/classpath.txt)" \
 *     benchmarks/quick/DecodeTiming.java FILE.jpg...
 */
public class DecodeTiming {
  public static void main(String[] args) throws Exception {
    List<byte[]> files = new ArrayList<>();
    for (String a : args) {
      files.add(Files.readAllBytes(Path.of(a)));
    }
    long differ = 0;
    long total = 0;
    int maxDiff = 0;
    for (byte[] f : files) {
      BufferedImage bi = ImageIO.read(new ByteArrayInputStream(f));
      long differBefore = differ;
      try (Arena arena = Arena.ofConfined()) {
        Image img = Image.decode(arena, f);
        byte[] px = img.toByteArray();
        for (int y = 0; y < img.height(); y++) {
          for (int x = 0; x < img.width(); x++) {
            int rgb = bi.getRGB(x, y);
            int i = 3 * (y * img.width() + x);
            int dr = Math.abs(((rgb >> 16) & 0xff) - (px[i] & 0xff));
            int dg = Math.abs(((rgb >> 8) & 0xff) - (px[i + 1] & 0xff));
            int db = Math.abs((rgb & 0xff) - (px[i + 2] & 0xff));
            int d = Math.max(dr, Math.max(dg, db));
            if (d != 0) {
              differ++;
            }
            maxDiff = Math.max(maxDiff, d);
            total++;
          }
        }
        System.out.printf("%dx%d, %d bytes: %d pixels differ between ImageIO and libjpeg-turbo%n", img.width(),
            img.height(), f.length, differ - differBefore);
      }
    }
    System.out.printf("ImageIO vs libjpeg-turbo (= PIL): %d of %d pixels differ (%.1f%%), by up to %d%n", differ, total,
        100.0 * differ / total, maxDiff);
    int rounds = Integer.getInteger("rounds", 3);
    for (int round = 0; round < rounds; round++) {
      int n = 0;
      long t0 = System.nanoTime();
      while (System.nanoTime() - t0 < 3e9) {
        for (byte[] f : files) {
          ImageIO.read(new ByteArrayInputStream(f));
          n++;
        }
      }
      double imageio = n / ((System.nanoTime() - t0) / 1e9);
      n = 0;
      t0 = System.nanoTime();
      while (System.nanoTime() - t0 < 3e9) {
        for (byte[] f : files) {
          try (Arena arena = Arena.ofConfined()) {
            Image.decode(arena, f);
          }
          n++;
        }
      }
      double turbo = n / ((System.nanoTime() - t0) / 1e9);
      n = 0;
      t0 = System.nanoTime();
      ImageTransform eval = ImageTransform.eval(224, 0.875);
      while (System.nanoTime() - t0 < 3e9) {
        for (byte[] f : files) {
          try (Arena arena = Arena.ofConfined()) {
            MemorySegment dst = arena.allocate(4 * 3 * 224 * 224);
            eval.apply(Image.decode(arena, f), dst, null);
          }
          n++;
        }
      }
      double full = n / ((System.nanoTime() - t0) / 1e9);
      System.out.printf("round %d: ImageIO %.1f images/s, libjpeg-turbo %.1f images/s (%.2fx), "
          + "decode + eval transform %.1f images/s%n", round, imageio, turbo, turbo / imageio, full);
    }
  }
}
