package dev.sekit.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The IDX reader on Debian's files, and every kind of broken file. */
class FashionMnistTest {
  @TempDir Path dir;

  @Test
  void readsDebiansFiles() {
    try (Arena arena = Arena.ofConfined()) {
      FashionMnist.Split test = FashionMnist.test(arena, FashionMnist.DEBIAN_DIR);
      assertEquals(10_000, test.size());
      assertArrayEquals(new long[] {10_000, 1, 28, 28}, test.images().shape());
      assertArrayEquals(new long[] {9, 2, 1, 1, 6}, java.util.Arrays.copyOf(test.labels().toLongArray(), 5),
          "the first test labels: ankle boot, pullover, trouser, trouser, shirt");
      float[] px = test.images().toFloatArray();
      double mean = 0;
      for (float v : px) {
        mean += v;
      }
      assertEquals(0.0, mean / px.length, 0.05, "normalised pixels have mean ~0");
      assertEquals(FashionMnist.Split.blackValue(), px[0], 1e-6, "the corner pixel is black");
    }
  }

  private Path gz(String name, byte[] content) throws IOException {
    Path p = dir.resolve(name);
    try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(p))) {
      o.write(content);
    }
    return p;
  }

  private static byte[] idx(int magic, int n, int extra, int payload) {
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + extra * 4 + payload);
    b.putInt(magic).putInt(n);
    for (int i = 0; i < extra; i++) {
      b.putInt(28);
    }
    return b.array();
  }

  private void fails(String fragment) {
    try (Arena arena = Arena.ofConfined()) {
      FashionMnist.MalformedDataException e = assertThrows(FashionMnist.MalformedDataException.class,
          () -> FashionMnist.test(arena, dir));
      assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }
  }

  @Test
  void missingFilesNameTheFileAndThePackage() {
    try (Arena arena = Arena.ofConfined()) {
      FashionMnist.MalformedDataException e = assertThrows(FashionMnist.MalformedDataException.class,
          () -> FashionMnist.train(arena, dir));
      assertTrue(e.getMessage().contains("train-images-idx3-ubyte.gz: not found"), e.getMessage());
      assertTrue(e.getMessage().contains("apt-get install -y dataset-fashion-mnist"), e.getMessage());
    }
  }

  @Test
  void malformedFiles() throws IOException {
    gz("t10k-labels-idx1-ubyte.gz", idx(0x801, 2, 0, 2));
    Files.write(dir.resolve("t10k-images-idx3-ubyte.gz"), new byte[] {1, 2, 3});
    fails("is not a gzip file");
    byte[] ok = idx(0x803, 2, 2, 2 * 784);
    Files.write(dir.resolve("t10k-images-idx3-ubyte.gz"), java.util.Arrays.copyOf(gzBytes(ok), 40));
    fails("truncated");
    gz("t10k-images-idx3-ubyte.gz", idx(0x999, 2, 2, 2 * 784));
    fails("has IDX magic 0x00000999, expected 0x00000803");
    gz("t10k-images-idx3-ubyte.gz", idx(0x803, 2, 2, 784));
    fails("expected 1584 for 2 images");
    gz("t10k-images-idx3-ubyte.gz", ok);
    gz("t10k-labels-idx1-ubyte.gz", idx(0x801, 3, 0, 3));
    fails("holds 3 labels but t10k-images-idx3-ubyte.gz holds 2 images");
    byte[] labels = idx(0x801, 2, 0, 2);
    labels[9] = 12;
    gz("t10k-labels-idx1-ubyte.gz", labels);
    fails("label 1 is 12, outside 0..9");
    labels[9] = 3;
    gz("t10k-labels-idx1-ubyte.gz", labels);
    try (Arena arena = Arena.ofConfined()) {
      assertEquals(2, FashionMnist.test(arena, dir).size());
    }
  }

  private static byte[] gzBytes(byte[] b) throws IOException {
    java.io.ByteArrayOutputStream bo = new java.io.ByteArrayOutputStream();
    try (OutputStream o = new GZIPOutputStream(bo)) {
      o.write(b);
    }
    return bo.toByteArray();
  }
}
