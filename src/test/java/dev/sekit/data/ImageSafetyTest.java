package dev.sekit.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
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
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
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
      Image.decode(arena, jpeg); // the native library loaded before the clock starts
      long t0 = System.nanoTime();
      var e = assertThrows(MalformedImageException.class, () -> Image.decode(arena, bomb));
      assertTrue(e.getMessage().contains("more than 500 scans"), e.getMessage());
      assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(2), "refused in "
          + (System.nanoTime() - t0) / 1e6 + " ms");
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
}
