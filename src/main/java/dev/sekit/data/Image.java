package dev.sekit.data;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import dev.sekit.SekitException;
import dev.sekit.internal.NativeImage;
import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.Objects;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;

/**
 * An 8-bit RGB image in off-heap memory: {@code height × width × 3} bytes, row-major,
 * channels interleaved (HWC), as PIL's {@code Image.convert("RGB")} holds it. The memory
 * belongs to the arena the image was made in.
 *
 * <p>Decoding gives PIL's pixels: JPEG through libjpeg-turbo with PIL's settings (the same
 * library and code path as Debian's PIL, so equal bit for bit), PNG and BMP through the
 * JDK's ImageIO (lossless formats) converted to RGB as PIL does (palettes looked up,
 * gray replicated, alpha dropped, 16-bit colour channels cut to their high byte).
 * {@link #resize} is PIL's bicubic resampling, bit for bit.
 *
 * <p>Limits: a file that declares more than {@link #maxPixels()} pixels (by default PIL's
 * {@code Image.MAX_IMAGE_PIXELS}, 178,956,970) is refused with a
 * {@link MalformedImageException} before any pixel memory is allocated, as a decompression
 * bomb would be: a 1 KB JPEG may declare 65500 × 65500 pixels (12.8 GB). Raise or lower the
 * limit with {@link #setMaxPixels} or the system property {@code sekit.image.maxPixels}. A
 * progressive JPEG with more than 500 scans (real ones have about 10) is refused too:
 * each scan costs a pass over the whole image, so thousands of empty ones would keep the
 * decoder busy for minutes. A JPEG whose entropy-coded data is broken is refused, as PIL
 * refuses it ("broken data stream"); libjpeg's warnings (extraneous bytes, a scan that
 * ends early) are not errors, as in PIL.
 */
public record Image(int width, int height, MemorySegment pixels) {
  /** Checks that {@code pixels} holds exactly {@code height * width * 3} bytes. */
  public Image {
    Objects.requireNonNull(pixels, "pixels");
    if (width < 1 || height < 1) {
      throw new IllegalArgumentException("an image needs a size of at least 1x1, got " + width + "x" + height);
    }
    if (pixels.byteSize() != 3L * width * height) {
      throw new IllegalArgumentException("pixels hold " + pixels.byteSize() + " bytes but a " + width + "x" + height
          + " RGB image needs " + 3L * width * height);
    }
  }

  /** PIL's {@code Image.MAX_IMAGE_PIXELS}: the default {@link #maxPixels()}. */
  public static final long DEFAULT_MAX_PIXELS = 178_956_970L;

  /** The system property that sets {@link #maxPixels()} at start-up (a positive integer). */
  public static final String MAX_PIXELS_PROPERTY = "sekit.image.maxPixels";

  private static volatile long maxPixels;

  /**
   * The most pixels (width × height) a file may declare to be decoded: {@link #setMaxPixels}'s
   * value, else the system property {@value #MAX_PIXELS_PROPERTY}, else
   * {@link #DEFAULT_MAX_PIXELS}.
   *
   * @throws IllegalArgumentException when the system property is not a positive integer
   */
  public static long maxPixels() {
    long m = maxPixels;
    if (m > 0) {
      return m;
    }
    String p = System.getProperty(MAX_PIXELS_PROPERTY);
    if (p == null) {
      return DEFAULT_MAX_PIXELS;
    }
    try {
      m = Long.parseLong(p.strip().replace("_", ""));
    } catch (NumberFormatException e) {
      m = 0;
    }
    if (m < 1) {
      throw new IllegalArgumentException("the system property " + MAX_PIXELS_PROPERTY
          + " must be a positive number of pixels, got \"" + shorten(p, 40) + "\"");
    }
    return m;
  }

  /**
   * Sets the most pixels a decoded file may declare, for every thread (PIL's
   * {@code Image.MAX_IMAGE_PIXELS}); raise it only for files you trust.
   *
   * @param pixels at least 1
   */
  public static void setMaxPixels(long pixels) {
    if (pixels < 1) {
      throw new IllegalArgumentException("the pixel limit must be >= 1, got " + pixels);
    }
    maxPixels = pixels;
  }

  /** Refuses a declared size over the pixel limit, before anything of that size is allocated. */
  private static void checkPixels(String format, long width, long height) {
    long limit = maxPixels();
    if (width * height > limit) {
      throw new MalformedImageException(String.format(java.util.Locale.ROOT,
          "the %s file declares %dx%d = %,d pixels, more than the limit of %,d (a decompression bomb?); "
              + "if the file is trusted, raise the limit with Image.setMaxPixels or -D%s",
          format, width, height, width * height, limit, MAX_PIXELS_PROPERTY));
    }
  }

  /** A black image of the given size in {@code arena}. */
  public static Image allocate(Arena arena, int width, int height) {
    Objects.requireNonNull(arena, "arena");
    if (width < 1 || height < 1) {
      throw new IllegalArgumentException("an image needs a size of at least 1x1, got " + width + "x" + height);
    }
    return new Image(width, height, arena.allocate(Math.multiplyExact(3L * width, (long) height), 16));
  }

  /**
   * Reads and decodes an image file (JPEG, PNG or BMP, recognised by its first bytes, not
   * its name) into {@code arena}.
   *
   * <p>Only regular files are read: a FIFO, a device or a directory is refused without
   * being opened (opening a FIFO would wait for a writer forever).
   *
   * @throws IOException when the file cannot be read, or is not a regular file
   * @throws MalformedImageException when it is not an image sekit decodes, is corrupt, or
   *     declares more than {@link #maxPixels()} pixels
   */
  public static Image read(Arena arena, Path file) throws IOException {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(file, "file");
    BasicFileAttributes attrs = Files.readAttributes(file, BasicFileAttributes.class);
    if (!attrs.isRegularFile()) {
      throw new FileSystemException(file.toString(), null, (attrs.isDirectory() ? "a directory"
          : "not a regular file (a FIFO, socket or device)") + "; only regular image files are read");
    }
    // The file goes straight into off-heap memory, where the JPEG decoder reads it; only
    // the other formats (ImageIO) need it on the heap.
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ); Arena tmp = Arena.ofConfined()) {
      long size = ch.size();
      if (size > Integer.MAX_VALUE - 8) {
        throw new MalformedImageException(file + ": " + size + " bytes is too large for an image file");
      }
      MemorySegment data = tmp.allocate(size);
      ByteBuffer buf = data.asByteBuffer();
      while (buf.hasRemaining() && ch.read(buf) >= 0) {
        // read until full or end of file
      }
      data = data.asSlice(0, buf.position()); // a file that shrank while being read
      try {
        return isJpeg(data) ? decodeJpeg(arena, data) : decodeWithImageIO(arena, data.toArray(JAVA_BYTE));
      } catch (MalformedImageException e) {
        throw new MalformedImageException(file + ": " + e.getMessage(), e);
      }
    }
  }

  /** Decodes the bytes of an image file (JPEG, PNG or BMP) into {@code arena}. */
  public static Image decode(Arena arena, byte[] encoded) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(encoded, "encoded");
    if (isJpeg(encoded)) {
      try (Arena tmp = Arena.ofConfined()) {
        MemorySegment data = tmp.allocate(encoded.length);
        MemorySegment.copy(encoded, 0, data, JAVA_BYTE, 0, encoded.length);
        return decodeJpeg(arena, data);
      }
    }
    return decodeWithImageIO(arena, encoded);
  }

  /** Decodes a JPEG file held in off-heap memory with libjpeg-turbo (as PIL does). */
  public static Image decodeJpeg(Arena arena, MemorySegment jpeg) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(jpeg, "jpeg");
    if (!jpeg.isNative()) {
      throw new IllegalArgumentException("jpeg must be an off-heap segment; use decode(arena, byte[]) for heap bytes");
    }
    try {
      int[] size = NativeImage.jpegSize(jpeg);
      checkPixels("JPEG", size[0], size[1]);
      Image img = allocate(arena, size[0], size[1]);
      NativeImage.jpegDecodeRgb(jpeg, img.pixels);
      return img;
    } catch (SekitException e) {
      throw new MalformedImageException(e.getMessage(), e);
    }
  }

  private static boolean isJpeg(byte[] b) {
    return b.length >= 3 && (b[0] & 0xff) == 0xff && (b[1] & 0xff) == 0xd8 && (b[2] & 0xff) == 0xff;
  }

  private static boolean isJpeg(MemorySegment b) {
    return b.byteSize() >= 3 && (b.get(JAVA_BYTE, 0) & 0xff) == 0xff && (b.get(JAVA_BYTE, 1) & 0xff) == 0xd8
        && (b.get(JAVA_BYTE, 2) & 0xff) == 0xff;
  }

  private static boolean isPng(byte[] b) {
    return b.length >= 8 && (b[0] & 0xff) == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G';
  }

  private static boolean isBmp(byte[] b) {
    return b.length >= 2 && b[0] == 'B' && b[1] == 'M';
  }

  /** PNG and BMP: ImageIO's raw samples, converted to RGB as PIL's convert("RGB"). */
  private static Image decodeWithImageIO(Arena arena, byte[] encoded) {
    String format = isPng(encoded) ? "png" : isBmp(encoded) ? "bmp" : null;
    if (format == null) {
      throw new MalformedImageException("not an image sekit decodes (JPEG, PNG or BMP): it starts with "
          + head(encoded));
    }
    BufferedImage bi;
    // In memory: ImageIO.createImageInputStream would cache the stream in a temporary file.
    try (ImageInputStream in = new MemoryCacheImageInputStream(new ByteArrayInputStream(encoded))) {
      Iterator<ImageReader> readers = ImageIO.getImageReadersByFormatName(format);
      if (!readers.hasNext()) {
        throw new MalformedImageException("this JDK has no ImageIO reader for " + format);
      }
      ImageReader reader = readers.next();
      try {
        reader.setInput(in, true, true);
        checkPixels(format.toUpperCase(java.util.Locale.ROOT), reader.getWidth(0), reader.getHeight(0));
        bi = reader.read(0);
      } finally {
        reader.dispose();
      }
    } catch (IOException | RuntimeException e) {
      if (e instanceof MalformedImageException m) {
        throw m;
      }
      throw new MalformedImageException("cannot decode the " + format.toUpperCase(java.util.Locale.ROOT)
          + " file: " + reason(e), e);
    }
    int w = bi.getWidth();
    int h = bi.getHeight();
    Raster r = bi.getRaster();
    Image img = allocate(arena, w, h);
    byte[] row = new byte[3 * w];
    int bands = r.getNumBands();
    int[] px = new int[w * bands];
    if (bi.getColorModel() instanceof IndexColorModel icm && bands == 1) {
      // Palettes, and gray below 8 bits (ImageIO gives those a linear gray palette: the
      // values PIL scales them to, e.g. 0, 85, 170, 255 for 2 bits).
      for (int y = 0; y < h; y++) {
        r.getSamples(0, y, w, 1, 0, px);
        for (int x = 0; x < w; x++) {
          row[3 * x] = (byte) icm.getRed(px[x]);
          row[3 * x + 1] = (byte) icm.getGreen(px[x]);
          row[3 * x + 2] = (byte) icm.getBlue(px[x]);
        }
        MemorySegment.copy(row, 0, img.pixels, JAVA_BYTE, (long) y * 3 * w, 3 * w);
      }
      return img;
    }
    int bits = r.getSampleModel().getSampleSize(0);
    if (bits < 8 && bands >= 3) {
      packedToRgb(r, w, h, img);
      return img;
    }
    if (bits != 8 && bits != 16) {
      throw new MalformedImageException("cannot convert " + bits + "-bit " + format.toUpperCase() + " samples");
    }
    boolean gray = bands <= 2;
    for (int y = 0; y < h; y++) {
      r.getPixels(0, y, w, 1, px);
      for (int x = 0; x < w; x++) {
        for (int c = 0; c < 3; c++) {
          int v = px[x * bands + (gray ? 0 : c)];
          if (bits == 16) {
            // PIL keeps the high byte of 16-bit colour channels; 16-bit gray without
            // alpha becomes its 32-bit integer mode, which convert("RGB") clips to 255.
            v = gray && bands == 1 ? Math.min(v, 255) : v >>> 8;
          }
          row[3 * x + c] = (byte) v;
        }
      }
      MemorySegment.copy(row, 0, img.pixels, JAVA_BYTE, (long) y * 3 * w, 3 * w);
    }
    return img;
  }

  /**
   * Colour channels of fewer than 8 bits (16-bit BMPs: 5-6-5 or 5-5-5) scaled to 0..255 as
   * PIL unpacks them: {@code v * 255 / max}, rounded down.
   */
  private static void packedToRgb(Raster r, int w, int h, Image img) {
    int bands = r.getNumBands();
    int[] max = new int[3];
    for (int c = 0; c < 3; c++) {
      max[c] = (1 << r.getSampleModel().getSampleSize(c)) - 1;
    }
    int[] px = new int[w * bands];
    byte[] row = new byte[3 * w];
    for (int y = 0; y < h; y++) {
      r.getPixels(0, y, w, 1, px);
      for (int x = 0; x < w; x++) {
        for (int c = 0; c < 3; c++) {
          row[3 * x + c] = (byte) (px[x * bands + c] * 255 / max[c]);
        }
      }
      MemorySegment.copy(row, 0, img.pixels, JAVA_BYTE, (long) y * 3 * w, 3 * w);
    }
  }

  /** Why a decoder failed, in one short line: its message, or what its type says. */
  static String reason(Throwable e) {
    String m = e.getMessage();
    if (e instanceof java.io.EOFException || (m == null && e.getCause() instanceof java.io.EOFException)) {
      return "the file ends early (truncated)";
    }
    if (m == null || m.isBlank()) {
      m = e.getCause() != null && e.getCause().getMessage() != null ? e.getCause().getMessage()
          : "the data is inconsistent (" + e.getClass().getSimpleName() + ")";
    } else if (e.getCause() != null && e.getCause().getMessage() != null && !m.contains(e.getCause().getMessage())) {
      m = m + " (" + e.getCause().getMessage() + ")";
    }
    return shorten(m, 300);
  }

  /** {@code s} on one line and at most {@code max} characters. */
  static String shorten(String s, int max) {
    String one = s.replaceAll("\\s+", " ").strip();
    return one.length() <= max ? one : one.substring(0, max - 3) + "...";
  }

  private static String head(byte[] b) {
    StringBuilder s = new StringBuilder();
    for (int i = 0; i < Math.min(4, b.length); i++) {
      s.append(String.format("%02X ", b[i] & 0xff));
    }
    return b.length == 0 ? "nothing (the file is empty)" : s.toString().trim();
  }

  /** The value (0..255) of channel {@code c} (0 = red) at column {@code x}, row {@code y}. */
  public int get(int x, int y, int c) {
    Objects.checkIndex(x, width);
    Objects.checkIndex(y, height);
    Objects.checkIndex(c, 3);
    return pixels.get(JAVA_BYTE, (((long) y * width + x) * 3) + c) & 0xff;
  }

  /** The pixels as a heap array (height × width × 3). */
  public byte[] toByteArray() {
    return pixels.toArray(JAVA_BYTE);
  }

  /** A copy in {@code arena}. */
  public Image copy(Arena arena) {
    Image out = allocate(arena, width, height);
    MemorySegment.copy(pixels, 0, out.pixels, 0, pixels.byteSize());
    return out;
  }

  /**
   * This image resized to {@code width × height} with PIL's bicubic filter
   * ({@code Image.resize(size, Image.BICUBIC)}), bit for bit: separable, horizontal pass
   * first, the filter widened by the scale when shrinking (antialiasing), 22-bit fixed-point
   * weights and 8-bit rounding after each pass.
   */
  public Image resize(Arena arena, int width, int height) {
    return PillowResize.bicubic(arena, this, width, height);
  }

  /**
   * The region {@code [left, left + width) × [top, top + height)} (PIL's
   * {@code crop((left, top, left + width, top + height))}); pixels outside the image are black.
   */
  public Image crop(Arena arena, int left, int top, int width, int height) {
    Image out = allocate(arena, width, height);
    int x0 = Math.max(left, 0);
    int x1 = Math.min(left + width, this.width);
    if (x1 <= x0) {
      return out;
    }
    for (int y = Math.max(top, 0); y < Math.min(top + height, this.height); y++) {
      MemorySegment.copy(pixels, ((long) y * this.width + x0) * 3, out.pixels,
          ((long) (y - top) * width + (x0 - left)) * 3, (long) (x1 - x0) * 3);
    }
    return out;
  }

  /** This image mirrored left to right. */
  public Image flipHorizontal(Arena arena) {
    Image out = allocate(arena, width, height);
    byte[] src = new byte[3 * width];
    byte[] dst = new byte[3 * width];
    for (int y = 0; y < height; y++) {
      MemorySegment.copy(pixels, JAVA_BYTE, (long) y * 3 * width, src, 0, 3 * width);
      for (int x = 0; x < width; x++) {
        int s = 3 * (width - 1 - x);
        dst[3 * x] = src[s];
        dst[3 * x + 1] = src[s + 1];
        dst[3 * x + 2] = src[s + 2];
      }
      MemorySegment.copy(dst, 0, out.pixels, JAVA_BYTE, (long) y * 3 * width, 3 * width);
    }
    return out;
  }

  /**
   * torchvision's {@code Resize(size)} with an int: the shorter side becomes {@code size},
   * the longer {@code int(size * long / short)}, bicubic.
   */
  public Image resizeShorterSide(Arena arena, int size) {
    if (size < 1) {
      throw new IllegalArgumentException("size must be >= 1, got " + size);
    }
    int shortSide = Math.min(width, height);
    int longSide = Math.max(width, height);
    double newLongExact = (double) ((long) size * longSide) / shortSide;
    if (newLongExact >= Integer.MAX_VALUE) {
      throw new IllegalArgumentException("resizing the shorter side of a " + width + "x" + height + " image to "
          + size + " makes the longer side " + (long) newLongExact + " pixels, too large; use a smaller size");
    }
    int newLong = (int) newLongExact;
    int w = width <= height ? size : newLong;
    int h = width <= height ? newLong : size;
    return w == width && h == height ? copy(arena) : resize(arena, w, h);
  }

  /**
   * torchvision's {@code CenterCrop}: offsets {@code round((size - crop) / 2)} (rounding
   * halves to even, as Python), black padding where the crop is larger than the image.
   */
  public Image centerCrop(Arena arena, int width, int height) {
    return crop(arena, centerOffset(this.width, width), centerOffset(this.height, height), width, height);
  }

  /** The offset of a centred crop of {@code crop} in {@code size}; negative when it pads. */
  static int centerOffset(int size, int crop) {
    if (crop > size) {
      return -((crop - size) / 2);
    }
    return (int) Math.rint((size - crop) / 2.0);
  }
}
