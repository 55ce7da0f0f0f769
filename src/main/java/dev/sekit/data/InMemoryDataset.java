package dev.sekit.data;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import java.io.ByteArrayInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * A data set held in memory: every input decoded once into off-heap float32 memory that this
 * object owns (in a shared arena, so that loader threads can read it), labels in a Java
 * array. {@link #close()} frees the memory.
 */
public final class InMemoryDataset implements Dataset, AutoCloseable {
  private final Arena arena;
  private final MemorySegment inputs;
  private final long[] labels;
  private final long[] sampleShape;
  private final long sampleBytes;
  private final int classes;

  private InMemoryDataset(Arena arena, MemorySegment inputs, long[] labels, long[] sampleShape, int classes) {
    this.arena = arena;
    this.inputs = inputs;
    this.labels = labels;
    this.sampleShape = sampleShape;
    this.sampleBytes = inputs.byteSize() / labels.length;
    this.classes = classes;
  }

  /**
   * A data set of {@code labels.length} samples whose inputs are {@code inputs} (float32,
   * row-major, each of {@code sampleShape}), copied.
   */
  public static InMemoryDataset of(MemorySegment inputs, long[] labels, int classes, long... sampleShape) {
    Objects.requireNonNull(inputs, "inputs");
    Objects.requireNonNull(labels, "labels");
    Objects.requireNonNull(sampleShape, "sampleShape");
    if (labels.length < 1) {
      throw new IllegalArgumentException("a data set needs at least one sample");
    }
    if (classes < 1) {
      throw new IllegalArgumentException("classes must be >= 1, got " + classes);
    }
    long per = 4;
    for (long s : sampleShape) {
      if (s < 1) {
        throw new IllegalArgumentException("sampleShape " + Arrays.toString(sampleShape) + " has a size below 1");
      }
      per = Math.multiplyExact(per, s);
    }
    if (inputs.byteSize() != per * labels.length) {
      throw new IllegalArgumentException("inputs hold " + inputs.byteSize() + " bytes but " + labels.length
          + " samples of " + Arrays.toString(sampleShape) + " float32 need " + per * labels.length);
    }
    for (int i = 0; i < labels.length; i++) {
      if (labels[i] < 0 || labels[i] >= classes) {
        throw new IllegalArgumentException("label " + i + " is " + labels[i] + ", outside [0, " + classes + ")");
      }
    }
    Arena arena = Arena.ofShared();
    MemorySegment copy = arena.allocate(inputs.byteSize(), 64);
    MemorySegment.copy(inputs, 0, copy, 0, inputs.byteSize());
    return new InMemoryDataset(arena, copy, labels.clone(), sampleShape.clone(), classes);
  }

  /**
   * Reads a pair of IDX files (the MNIST format, gzip-compressed or not): unsigned-byte
   * images [N, rows, cols] and labels [N]. Each pixel becomes {@code (p / 255 - mean) / std}
   * and each image one channel, so samples are [1, rows, cols]; at most {@code limit}
   * samples are kept.
   *
   * @throws MalformedDataException when a file is missing or not a valid IDX file of its kind
   */
  public static InMemoryDataset fromIdx(Path images, Path labels, int classes, double mean, double std, int limit) {
    Objects.requireNonNull(images, "images");
    Objects.requireNonNull(labels, "labels");
    if (limit < 1) {
      throw new IllegalArgumentException("limit must be >= 1, got " + limit);
    }
    if (!(std > 0)) {
      throw new IllegalArgumentException("std must be > 0, got " + std);
    }
    byte[] img = read(images);
    byte[] lab = read(labels);
    int n = header(images, img, 0x803, 16);
    int rows = readInt(img, 8);
    int cols = readInt(img, 12);
    if (rows < 1 || cols < 1) {
      throw new MalformedDataException(images, "declares images of " + rows + "x" + cols);
    }
    int nl = header(labels, lab, 0x801, 8);
    if (nl != n) {
      throw new MalformedDataException(labels, "holds " + nl + " labels but " + images.getFileName() + " holds "
          + n + " images");
    }
    long need = 16L + (long) n * rows * cols;
    if (img.length != need) {
      throw new MalformedDataException(images, "has " + img.length + " bytes after decompression, expected " + need
          + " for " + n + " images (truncated or padded)");
    }
    if (lab.length != 8 + n) {
      throw new MalformedDataException(labels, "has " + lab.length + " bytes after decompression, expected " + (8 + n));
    }
    int count = Math.min(n, limit);
    long pixels = (long) rows * cols;
    Arena arena = Arena.ofShared();
    MemorySegment x = arena.allocate(JAVA_FLOAT, count * pixels);
    float scale = (float) (1.0 / (255.0 * std));
    float shift = (float) (mean / std);
    for (long i = 0; i < count * pixels; i++) {
      x.setAtIndex(JAVA_FLOAT, i, (img[(int) (16 + i)] & 0xff) * scale - shift);
    }
    long[] y = new long[count];
    for (int i = 0; i < count; i++) {
      y[i] = lab[8 + i] & 0xff;
      if (y[i] >= classes) {
        arena.close();
        throw new MalformedDataException(labels, "label " + i + " is " + y[i] + ", outside 0.." + (classes - 1));
      }
    }
    return new InMemoryDataset(arena, x, y, new long[] {1, rows, cols}, classes);
  }

  private static byte[] read(Path p) {
    try {
      byte[] b = Files.readAllBytes(p);
      if (b.length >= 2 && (b[0] & 0xff) == 0x1f && (b[1] & 0xff) == 0x8b) {
        try (InputStream gz = new GZIPInputStream(new ByteArrayInputStream(b), 1 << 16)) {
          return gz.readAllBytes();
        }
      }
      return b;
    } catch (NoSuchFileException e) {
      throw new MalformedDataException(p, "not found");
    } catch (ZipException e) {
      throw new MalformedDataException(p, "is not a valid gzip file (" + e.getMessage() + ")");
    } catch (EOFException e) {
      throw new MalformedDataException(p, "is truncated (the gzip stream ends early)");
    } catch (IOException e) {
      throw new MalformedDataException(p, "cannot be read: " + e.getMessage());
    }
  }

  private static int header(Path p, byte[] b, int magic, int headerBytes) {
    if (b.length < headerBytes) {
      throw new MalformedDataException(p, "has " + b.length + " bytes, shorter than its " + headerBytes
          + "-byte IDX header");
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

  @Override
  public int size() {
    return labels.length;
  }

  @Override
  public long[] sampleShape() {
    return sampleShape.clone();
  }

  @Override
  public int classes() {
    return classes;
  }

  @Override
  public long read(int index, MemorySegment dst) {
    Objects.checkIndex(index, labels.length);
    MemorySegment.copy(inputs, index * sampleBytes, dst, 0, sampleBytes);
    return labels[index];
  }

  /** The label of sample {@code index}. */
  public long label(int index) {
    return labels[Objects.checkIndex(index, labels.length)];
  }

  /** Frees the inputs' memory. */
  @Override
  public void close() {
    arena.close();
  }

  /** A missing or malformed data file; the message names the file and what is wrong. */
  public static final class MalformedDataException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    MalformedDataException(Path file, String problem) {
      super(file + ": " + problem);
    }
  }
}
