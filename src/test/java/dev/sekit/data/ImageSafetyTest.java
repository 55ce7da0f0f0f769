package dev.sekit.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Files that must not crash, hang, exhaust memory or be silently accepted: decompression
 * bombs, progressive JPEGs with thousands of scans, damaged data (as PIL decides), FIFOs,
 * sizes that overflow, and a seeded fuzz run over the test photographs' variants.
 */
class ImageSafetyTest {
  @TempDir Path dir;

  static byte[] fixture(String name) throws IOException {
    return Files.readAllBytes(ImageTest.images().resolve("files").resolve(name));
  }

  /** The offset of the first marker {@code 0xFF m} after SOI (headers only: no entropy data before it). */
  static int marker(byte[] jpeg, int m) {
    int i = 2;
    while ((jpeg[i + 1] & 0xff) != m) {
      i += 2 + (((jpeg[i + 2] & 0xff) << 8) | (jpeg[i + 3] & 0xff));
    }
    return i;
  }

  @Test
  void aProgressiveJpegWithThousandsOfScansIsRefusedAtOnce() throws IOException {
    byte[] jpeg = fixture("progressive.jpg");
    // 10,000 empty AC scans of the first component before EOI: each would cost a pass over
    // the image (libjpeg only warns about them).
    byte[] empty = {(byte) 0xFF, (byte) 0xDA, 0, 8, 1, 1, 0, 1, 63, 0};
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.write(jpeg, 0, jpeg.length - 2);
    for (int i = 0; i < 10_000; i++) {
      b.write(empty);
    }
    b.write(jpeg, jpeg.length - 2, 2);
    byte[] bomb = b.toByteArray();
    try (Arena arena = Arena.ofConfined()) {
      // Refused by the marker walk before any scan is decoded (the message says so; main
      // accepted the file after seconds of decoding).
      var e = assertThrows(MalformedImageException.class, () -> Image.decode(arena, bomb));
      assertTrue(e.getMessage().contains("more than 500 scans"), e.getMessage());
      // 100 such scans are within the limit and decode (libjpeg only warns about them)
      b.reset();
      b.write(jpeg, 0, jpeg.length - 2);
      for (int i = 0; i < 100; i++) {
        b.write(empty);
      }
      b.write(jpeg, jpeg.length - 2, 2);
      assertEquals(203, Image.decode(arena, b.toByteArray()).width());
    }
  }

  @Test
  void aJpegThatFailsInItsHeaderDoesNotPoisonTheThreadsDecoder() throws IOException {
    byte[] good = fixture("q90_420.jpg");
    // Cut inside the frame header: libjpeg fails while reading the header.
    byte[] bad = Arrays.copyOf(good, marker(good, 0xC0) + 6);
    try (Arena arena = Arena.ofConfined()) {
      byte[] expected = Image.decode(arena, good).toByteArray();
      for (int round = 0; round < 3; round++) {
        assertThrows(MalformedImageException.class, () -> Image.decode(arena, bad));
        assertTrue(Arrays.equals(expected, Image.decode(arena, good).toByteArray()), "round " + round);
        assertEquals(203, Image.decode(arena, fixture("gray.jpg")).width());
      }
    }
  }

  @Test
  void filesDeclaringMorePixelsThanTheLimitAreRefusedBeforeAllocating() throws IOException {
    // 20000 x 10000 = 200,000,000 pixels, over PIL's limit of 178,956,970.
    byte[] jpeg = fixture("q90_420.jpg");
    int sof = marker(jpeg, 0xC0);
    ByteBuffer.wrap(jpeg, sof + 5, 4).order(ByteOrder.BIG_ENDIAN).putShort((short) 10000).putShort((short) 20000);
    byte[] png = fixture("rgb.png");
    ByteBuffer.wrap(png, 16, 8).order(ByteOrder.BIG_ENDIAN).putInt(20000).putInt(10000);
    CRC32 crc = new CRC32();
    crc.update(png, 12, 17);
    ByteBuffer.wrap(png, 29, 4).order(ByteOrder.BIG_ENDIAN).putInt((int) crc.getValue());
    byte[] bmp = fixture("rgb.bmp");
    ByteBuffer.wrap(bmp, 18, 8).order(ByteOrder.LITTLE_ENDIAN).putInt(20000).putInt(10000);
    // and a file size in the header that covers them (the JDK's reader compares the two)
    ByteBuffer.wrap(bmp, 2, 4).order(ByteOrder.LITTLE_ENDIAN).putInt(Integer.MAX_VALUE);
    try (Arena arena = Arena.ofConfined()) {
      // Refused from the header, before the pixels are allocated or decoded.
      for (byte[] file : List.of(jpeg, png, bmp)) {
        var e = assertThrows(MalformedImageException.class, () -> Image.decode(arena, file));
        assertTrue(e.getMessage().contains("20000x10000 = 200,000,000 pixels, more than the limit of 178,956,970"),
            e.getMessage());
      }
    }
  }

  @Test
  void thePixelLimitIsASetting() throws IOException {
    assertEquals(Image.DEFAULT_MAX_PIXELS, Image.maxPixels());
    try (Arena arena = Arena.ofConfined()) {
      // The limit is a setting: lowered below a 203 x 157 image, it refuses it.
      Image.setMaxPixels(203 * 157 - 1);
      try {
        var e = assertThrows(MalformedImageException.class, () -> Image.decode(arena, fixture("q90_420.jpg")));
        assertTrue(e.getMessage().contains("Image.setMaxPixels"), e.getMessage());
        Image.setMaxPixels(203 * 157);
        assertEquals(157, Image.decode(arena, fixture("q90_420.jpg")).height());
      } finally {
        Image.setMaxPixels(Image.DEFAULT_MAX_PIXELS);
      }
      assertThrows(IllegalArgumentException.class, () -> Image.setMaxPixels(0));
    }
  }

  @Test
  void sizesThatOverflowAreClearErrors() {
    try (Arena arena = Arena.ofConfined()) {
      Image img = Image.allocate(arena, 4, 3);
      var e = assertThrows(IllegalArgumentException.class, () -> img.resize(arena, 100_000, 100_000));
      assertTrue(e.getMessage().contains("to 100000x100000"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> img.resizeShorterSide(arena, 1_000_000_000));
      assertTrue(e.getMessage().contains("1000000000"), e.getMessage());
      Image tall = Image.allocate(arena, 1, 3000);
      e = assertThrows(IllegalArgumentException.class, () -> tall.resizeShorterSide(arena, 1_000_000));
      assertTrue(e.getMessage().contains("1000000"), e.getMessage());
    }
    var e = assertThrows(IllegalArgumentException.class, () -> ImageTransform.eval(224, 1e-9));
    assertTrue(e.getMessage().contains("cropPct 1.0E-9"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ImageTransform.eval(100_000, 0.875));
    assertTrue(e.getMessage().contains("100000"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> ImageTransform.train(100_000));
    assertTrue(e.getMessage().contains("100000"), e.getMessage());
  }

  /** PIL's verdict on JPEGs with damaged entropy-coded data: what it refuses is refused, what it decodes decodes alike. */
  @Test
  void damagedJpegsAreRefusedOrDecodedAsPilDoes() throws IOException {
    int refused = 0;
    int decoded = 0;
    for (JsonElement el : ImageTest.index().getAsJsonArray("damaged")) {
      JsonObject c = el.getAsJsonObject();
      String name = c.get("name").getAsString();
      try (Arena arena = Arena.ofConfined()) {
        if (c.get("pil_decodes").getAsBoolean()) {
          Image img = ImageTest.read(arena, name);
          ImageTest.assertSameBytes(Files.readAllBytes(ImageTest.images().resolve(name + ".rgb")), img.toByteArray(),
              name);
          decoded++;
        } else {
          var e = assertThrows(MalformedImageException.class, () -> ImageTest.read(arena, name),
              name + ": PIL says " + c.get("pil_error").getAsString());
          assertTrue(e.getMessage().contains("cannot decode the JPEG file"), e.getMessage());
          refused++;
        }
      }
    }
    assertTrue(refused >= 10 && decoded >= 10, refused + " refused, " + decoded + " decoded");
  }

  @Test
  void fifosAreNeitherListedNorOpened() throws Exception {
    Path cls = Files.createDirectories(dir.resolve("root/cls"));
    Files.write(cls.resolve("a.jpg"), fixture("q90_420.jpg"));
    Path fifo = cls.resolve("b.jpg");
    Process p = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
    assertEquals(0, p.waitFor());
    ImageFolder folder = ImageFolder.open(dir.resolve("root"), ImageTransform.eval(32, 1), 0);
    assertEquals(1, folder.size());
    assertEquals(cls.resolve("a.jpg"), folder.path(0));
    // A writer that opens the FIFO and closes it at once: a reader that opened it (as main did)
    // gets an empty file and fails otherwise, instead of blocking in open(2) for ever.
    Thread writer = Thread.ofPlatform().daemon().start(() -> {
      try (var out = Files.newOutputStream(fifo)) {
        // nothing: end of file for the reader
      } catch (IOException ignored) {
        // the test reports what the reader saw
      }
    });
    try (Arena arena = Arena.ofConfined()) {
      var e = assertThrows(IOException.class, () -> Image.read(arena, fifo));
      assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
    } finally {
      // Not opened by the reader: this read-write open, held until the writer is done, lets
      // the writer's open return whenever it comes.
      try (var end = new java.io.RandomAccessFile(fifo.toFile(), "rw")) {
        writer.join();
      }
      Files.delete(fifo);
    }
  }

  @Test
  void missingAndBrokenFilesSayWhatIsWrong() throws IOException {
    Path cls = Files.createDirectories(dir.resolve("root/cls"));
    Path jpg = Files.write(cls.resolve("a.jpg"), fixture("q90_420.jpg"));
    byte[] bmp = fixture("rgb.bmp");
    Path bmpFile = Files.write(cls.resolve("b.bmp"), Arrays.copyOf(bmp, bmp.length / 2));
    ImageFolder folder = ImageFolder.open(dir.resolve("root"), ImageTransform.eval(32, 1), 0);
    Files.delete(jpg);
    try (Arena arena = Arena.ofConfined()) {
      var missing = assertThrows(UncheckedIOException.class, () -> folder.read(0, arena.allocate(4 * 3 * 32 * 32)));
      assertEquals("cannot read sample 0, " + jpg + ": no such file (was it moved or deleted after the folder was "
          + "listed? list it again)", missing.getMessage());
      var truncated = assertThrows(MalformedImageException.class, () -> folder.read(1, arena.allocate(4 * 3 * 32 * 32)));
      assertEquals(bmpFile + ": cannot decode the BMP file: the file ends early (truncated)", truncated.getMessage());
    }
    // 300 class folders without an image: a message of a few names, not of all of them
    for (int c = 0; c < 300; c++) {
      Files.createDirectories(dir.resolve("root").resolve(String.format("empty-class-number-%03d", c)));
    }
    var empty = assertThrows(IllegalArgumentException.class,
        () -> ImageFolder.open(dir.resolve("root"), ImageTransform.eval(32, 1), 0));
    assertTrue(empty.getMessage().contains("for the classes [empty-class-number-000, ") && empty.getMessage()
        .contains("... (300 in all)]") && empty.getMessage().length() < 500, empty.getMessage());
  }

  /**
   * Seeded mutations of the test images (bytes overwritten, cut, inserted, repeated): every
   * decode ends within two seconds (milliseconds, normally), with an image or a MalformedImageException of one line of
   * reasonable length. The pixel limit bounds the memory a mutated header can ask for.
   */
  @Test
  void fuzzedImagesDecodeOrAreRefusedQuickly() throws IOException {
    List<String> names = List.of("q90_420.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg", "odd_420.jpg", "rgb.png",
        "palette.png", "gray16.png", "rgb.bmp", "rgb565.bmp");
    SplittableRandom random = new SplittableRandom(29);
    try (Arena arena = Arena.ofConfined()) {
      Image.decode(arena, fixture("q90_420.jpg")); // the native library loaded before the clock starts
    }
    Image.setMaxPixels(4_000_000);
    int decoded = 0;
    int refused = 0;
    long slowest = 0;
    try {
      for (String name : names) {
        byte[] original = fixture(name);
        for (int k = 0; k < 300; k++) {
          byte[] b = mutate(original, random);
          long t0 = System.nanoTime();
          try (Arena arena = Arena.ofConfined()) {
            Image img = Image.decode(arena, b);
            assertTrue((long) img.width() * img.height() <= 4_000_000);
            decoded++;
          } catch (MalformedImageException e) {
            String m = e.getMessage();
            assertTrue(m.length() <= 400 && !m.contains("\n") && !m.contains("null"),
                name + " mutation " + k + ": " + m);
            refused++;
          } catch (RuntimeException | Error e) {
            throw new AssertionError(name + " mutation " + k + " threw " + e, e);
          }
          slowest = Math.max(slowest, System.nanoTime() - t0);
        }
      }
    } finally {
      Image.setMaxPixels(Image.DEFAULT_MAX_PIXELS);
    }
    // The slowest decode is reported, not asserted: timings belong in benchmarks.
    System.out.printf("image fuzz: %d decoded, %d refused, slowest %.1f ms%n", decoded, refused, slowest / 1e6);
    assertTrue(decoded > 100 && refused > 100, decoded + " decoded, " + refused + " refused");
  }

  private static byte[] mutate(byte[] in, SplittableRandom r) {
    byte[] b = in.clone();
    switch (r.nextInt(5)) {
      case 0 -> { // a few bytes anywhere, headers included
        for (int i = r.nextInt(1, 4); i > 0; i--) {
          b[r.nextInt(b.length)] = (byte) r.nextInt(256);
        }
      }
      case 1 -> { // a byte in the first 100 (the headers)
        b[r.nextInt(Math.min(100, b.length))] = (byte) r.nextInt(256);
      }
      case 2 -> b = Arrays.copyOf(b, r.nextInt(1, b.length)); // cut
      case 3 -> { // random bytes inserted
        int at = r.nextInt(b.length);
        byte[] extra = new byte[r.nextInt(1, 64)];
        r.nextBytes(extra);
        byte[] c = new byte[b.length + extra.length];
        System.arraycopy(b, 0, c, 0, at);
        System.arraycopy(extra, 0, c, at, extra.length);
        System.arraycopy(b, at, c, at + extra.length, b.length - at);
        b = c;
      }
      default -> { // a stretch repeated
        int from = r.nextInt(b.length);
        int len = Math.min(r.nextInt(1, 2000), b.length - from);
        byte[] c = new byte[b.length + len];
        System.arraycopy(b, 0, c, 0, from + len);
        System.arraycopy(b, from, c, from + len, b.length - from);
        b = c;
      }
    }
    return b;
  }
}
