package dev.sekit.data;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.DType;
import dev.sekit.Tensor;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Objects;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Fashion-MNIST (Zalando, 70,000 28×28 grey images in 10 classes) from its IDX files, as
 * Debian's {@code dataset-fashion-mnist} installs them under
 * {@code /usr/share/datasets/fashion-mnist}. Each split is decoded once into off-heap
 * memory owned by an {@link Arena}: images as normalised float32 [N, 1, 28, 28], labels as
 * int64 [N]; batches are then gathered natively from these tensors.
 */
public final class FashionMnist {
  /** Where Debian's dataset-fashion-mnist puts the files. */
  public static final Path DEBIAN_DIR = Path.of("/usr/share/datasets/fashion-mnist");
  /** Mean and standard deviation of the training pixels (in [0, 1]). */
  public static final double MEAN = 0.2860;
  public static final double STD = 0.3530;
  public static final int CLASSES = 10;
  public static final String[] CLASS_NAMES = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

  private static final String PACKAGE_HINT =
      "Debian's dataset-fashion-mnist provides it (apt-get install -y dataset-fashion-mnist)";

  /** One split: images [N, 1, 28, 28] float32 (normalised), labels [N] int64. */
  public record Split(Tensor images, Tensor labels, int size) {
    /** The value a black pixel has after normalisation (for padding). */
    public static double blackValue() {
      return -MEAN / STD;
    }
  }

  private FashionMnist() {}

  /** The 60,000 training images. */
  public static Split train(Arena arena, Path dir) {
    return load(arena, dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", Integer.MAX_VALUE);
  }

  /** The 10,000 test images. */
  public static Split test(Arena arena, Path dir) {
    return load(arena, dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", Integer.MAX_VALUE);
  }

  /** The first {@code limit} samples of a split ("train" or "test"). */
  public static Split load(Arena arena, Path dir, String split, int limit) {
    return switch (split) {
      case "train" -> load(arena, dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", limit);
      case "test" -> load(arena, dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", limit);
      default -> throw new IllegalArgumentException("split must be 'train' or 'test', got '" + split + "'");
    };
  }

  private static Split load(Arena arena, Path dir, String imagesFile, String labelsFile, int limit) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(dir, "dir");
    if (limit < 1) {
      throw new IllegalArgumentException("limit must be >= 1, got " + limit);
    }
    Path ip = dir.resolve(imagesFile);
    Path lp = dir.resolve(labelsFile);
    byte[] images = read(ip);
    byte[] labels = read(lp);
    int n = header(ip, images, 0x803, 16);
    int rows = readInt(images, 8);
    int cols = readInt(images, 12);
    if (rows != 28 || cols != 28) {
      throw new MalformedDataException(ip, "images are " + rows + "x" + cols + ", expected 28x28");
    }
    int nl = header(lp, labels, 0x801, 8);
    if (nl != n) {
      throw new MalformedDataException(lp, "holds " + nl + " labels but " + ip.getFileName() + " holds " + n + " images");
    }
    long need = 16L + (long) n * 28 * 28;
    if (images.length != need) {
      throw new MalformedDataException(ip, "has " + images.length + " bytes after decompression, expected " + need
          + " for " + n + " images (truncated or padded)");
    }
    if (labels.length != 8 + n) {
      throw new MalformedDataException(lp, "has " + labels.length + " bytes after decompression, expected " + (8 + n));
    }
    int count = Math.min(n, limit);
    MemorySegment img = arena.allocate(JAVA_FLOAT, (long) count * 784);
    float scale = (float) (1.0 / (255.0 * STD));
    float shift = (float) (MEAN / STD);
    for (int i = 0; i < count * 784; i++) {
      img.setAtIndex(JAVA_FLOAT, i, (images[16 + i] & 0xff) * scale - shift);
    }
    MemorySegment lab = arena.allocate(JAVA_LONG, count);
    for (int i = 0; i < count; i++) {
      int c = labels[8 + i] & 0xff;
      if (c >= CLASSES) {
        throw new MalformedDataException(lp, "label " + i + " is " + c + ", outside 0..9");
      }
      lab.setAtIndex(JAVA_LONG, i, c);
    }
    return new Split(Tensor.wrap(arena, img, DType.FLOAT32, count, 1, 28, 28),
        Tensor.wrap(arena, lab, DType.INT64, count), count);
  }

  private static byte[] read(Path p) {
    try (InputStream in = new GZIPInputStream(Files.newInputStream(p), 1 << 16)) {
      return in.readAllBytes();
    } catch (NoSuchFileException e) {
      throw new MalformedDataException(p, "not found; " + PACKAGE_HINT);
    } catch (ZipException e) {
      throw new MalformedDataException(p, "is not a gzip file (" + e.getMessage() + "); reinstall: " + PACKAGE_HINT);
    } catch (EOFException e) {
      throw new MalformedDataException(p, "is truncated (the gzip stream ends early); reinstall: " + PACKAGE_HINT);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + p + ": " + e.getMessage(), e);
    }
  }

  private static int header(Path p, byte[] b, int magic, int headerBytes) {
    if (b.length < headerBytes) {
      throw new MalformedDataException(p, "has " + b.length + " bytes, shorter than its " + headerBytes + "-byte IDX header");
    }
    int m = readInt(b, 0);
    if (m != magic) {
      throw new MalformedDataException(p, String.format("has IDX magic 0x%08x, expected 0x%08x", m, magic));
    }
    int n = readInt(b, 4);
    if (n < 1) {
      throw new MalformedDataException(p, "declares " + n + " items");
    }
    return n;
  }

  private static int readInt(byte[] b, int off) {
    return ((b[off] & 0xff) << 24) | ((b[off + 1] & 0xff) << 16) | ((b[off + 2] & 0xff) << 8) | (b[off + 3] & 0xff);
  }

  /** A missing or malformed data file; the message names the file and what is wrong. */
  public static final class MalformedDataException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    MalformedDataException(Path file, String problem) {
      super(file + ": " + problem);
    }
  }
}
