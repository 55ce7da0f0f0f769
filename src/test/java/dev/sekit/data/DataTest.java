package dev.sekit.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.Tensor;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** IDX files (Debian's Fashion-MNIST and broken ones), epoch orders and shards, the batch loader. */
class DataTest {
  static final Path DEBIAN = Path.of("/usr/share/datasets/fashion-mnist");
  @TempDir Path dir;

  static InMemoryDataset fashionTest(int limit) {
    return InMemoryDataset.fromIdx(DEBIAN.resolve("t10k-images-idx3-ubyte.gz"),
        DEBIAN.resolve("t10k-labels-idx1-ubyte.gz"), 10, 0.2860, 0.3530, limit);
  }

  @Test
  void readsDebiansFashionMnist() {
    try (InMemoryDataset test = fashionTest(Integer.MAX_VALUE)) {
      assertEquals(10_000, test.size());
      assertArrayEquals(new long[] {1, 28, 28}, test.sampleShape());
      long[] first = new long[5];
      for (int i = 0; i < 5; i++) {
        first[i] = test.label(i);
      }
      assertArrayEquals(new long[] {9, 2, 1, 1, 6}, first, "ankle boot, pullover, trouser, trouser, shirt");
      try (Arena a = Arena.ofConfined()) {
        MemorySegment px = a.allocate(test.sampleBytes());
        assertEquals(9, test.read(0, px));
        assertEquals(-0.2860 / 0.3530, px.get(ValueLayout.JAVA_FLOAT, 0), 1e-6, "the corner pixel is black");
      }
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
    InMemoryDataset.MalformedDataException e = assertThrows(InMemoryDataset.MalformedDataException.class,
        () -> InMemoryDataset.fromIdx(dir.resolve("img.gz"), dir.resolve("lab.gz"), 10, 0, 1, 100).close());
    assertTrue(e.getMessage().contains(fragment), e.getMessage());
  }

  @Test
  void malformedIdxFilesNameTheFileAndTheProblem() throws IOException {
    fails("img.gz: not found");
    gz("lab.gz", idx(0x801, 2, 0, 2));
    byte[] ok = idx(0x803, 2, 2, 2 * 784);
    Files.write(dir.resolve("img.gz"), Arrays.copyOf(Files.readAllBytes(gz("full.gz", ok)), 40));
    fails("is truncated");
    Files.write(dir.resolve("img.gz"), new byte[] {0x1f, (byte) 0x8b, 3});
    fails("is not a valid gzip file");
    gz("img.gz", idx(0x999, 2, 2, 2 * 784));
    fails("has IDX magic 0x00000999, expected 0x00000803");
    gz("img.gz", idx(0x803, 2, 2, 784));
    fails("expected 1584 for 2 images");
    gz("img.gz", ok);
    gz("lab.gz", idx(0x801, 3, 0, 3));
    fails("holds 3 labels but img.gz holds 2 images");
    byte[] labels = idx(0x801, 2, 0, 2);
    labels[9] = 12;
    gz("lab.gz", labels);
    fails("label 1 is 12, outside 0..9");
    labels[9] = 3;
    Files.write(dir.resolve("lab.gz"), labels); // not compressed: read as it is
    try (InMemoryDataset d = InMemoryDataset.fromIdx(dir.resolve("img.gz"), dir.resolve("lab.gz"), 10, 0, 1, 100)) {
      assertEquals(2, d.size());
      assertEquals(3, d.label(1));
    }
  }

  @Test
  void epochOrdersArePermutationsOfSeedAndEpochAndShardsSplitThemEvenly() {
    int[] a = EpochOrder.permutation(1000, 7, 3);
    assertArrayEquals(a, EpochOrder.permutation(1000, 7, 3), "deterministic");
    assertNotEquals(Arrays.toString(a), Arrays.toString(EpochOrder.permutation(1000, 7, 4)), "another epoch");
    assertNotEquals(Arrays.toString(a), Arrays.toString(EpochOrder.permutation(1000, 8, 3)), "another seed");
    int[] sorted = a.clone();
    Arrays.sort(sorted);
    for (int i = 0; i < sorted.length; i++) {
      assertEquals(i, sorted[i]);
    }
    assertArrayEquals(a, EpochOrder.shard(1000, 7, 3, 0, 1), "one process gets the whole permutation");
    Set<Integer> seen = new HashSet<>();
    for (int rank = 0; rank < 3; rank++) {
      int[] s = EpochOrder.shard(1000, 7, 3, rank, 3);
      assertEquals(334, s.length, "1000 / 3 rounded up, padded from the start as DistributedSampler does");
      for (int i = 0; i < s.length; i++) {
        assertEquals(a[(rank + 3 * i) % 1000], s[i]);
        seen.add(s[i]);
      }
    }
    assertEquals(1000, seen.size(), "the shards cover every sample");
    assertThrows(IllegalArgumentException.class, () -> EpochOrder.shard(10, 0, 0, 3, 3));
    assertThrows(IllegalArgumentException.class, () -> EpochOrder.permutation(10, 0, -1));
  }

  @Test
  void theLoaderGivesBatchesInOrderAheadOfTheConsumer() {
    int n = 10;
    float[] values = new float[n * 2 * 3];
    long[] labels = new long[n];
    for (int i = 0; i < n; i++) {
      for (int k = 0; k < 6; k++) {
        values[i * 6 + k] = i * 100 + k;
      }
      labels[i] = i % 4;
    }
    try (InMemoryDataset d = InMemoryDataset.of(MemorySegment.ofArray(values), labels, 4, 2, 3)) {
      int[] order = {9, 0, 8, 1, 7, 2, 6, 3, 5, 4};
      for (boolean dropLast : new boolean[] {true, false}) {
        try (BatchLoader loader = new BatchLoader(d, order, 4, dropLast, 2)) {
          assertEquals(dropLast ? 2 : 3, loader.batches());
          int at = 0;
          for (int b = 0; b < loader.batches(); b++) {
            try (BatchLoader.Batch batch = loader.next(); Arena step = Arena.ofConfined()) {
              Tensor x = batch.inputs(step);
              Tensor y = batch.labels(step);
              assertArrayEquals(new long[] {batch.size(), 2, 3}, x.shape());
              float[] xs = x.toFloatArray();
              long[] ys = y.toLongArray();
              for (int i = 0; i < batch.size(); i++, at++) {
                assertEquals(order[at] * 100f, xs[i * 6], "sample " + at + " of the order");
                assertEquals(order[at] % 4, ys[i]);
              }
            }
          }
          assertEquals(null, loader.next(), "then nothing");
        }
      }
      try (BatchLoader loader = new BatchLoader(d, order, 3, true, 1)) {
        loader.skip(2); // resume in the middle of an epoch
        try (BatchLoader.Batch batch = loader.next(); Arena step = Arena.ofConfined()) {
          assertEquals(order[6] * 100f, batch.inputs(step).toFloatArray()[0]);
        }
      }
      assertThrows(IndexOutOfBoundsException.class, () -> new BatchLoader(d, new int[] {10}, 1, false, 1));
    }
  }

  /**
   * Batches whose samples fail surface as that batch's exception; the loader goes on with
   * the next batches, and null comes only at the end of the data.
   */
  @Test
  void failedBatchesAreExceptionsAndTheEpochGoesOn() {
    int n = 12;
    float[] values = new float[n];
    long[] labels = new long[n];
    for (int i = 0; i < n; i++) {
      values[i] = i;
    }
    try (InMemoryDataset d = InMemoryDataset.of(MemorySegment.ofArray(values), labels, 1, 1)) {
      Dataset failing = new Dataset() {
        public int size() { return d.size(); }
        public long[] sampleShape() { return d.sampleShape(); }
        public int classes() { return d.classes(); }
        public long read(int index, MemorySegment dst) {
          if (index % 4 == 1) {
            throw new MalformedImageException("sample " + index + " is broken");
          }
          return d.read(index, dst);
        }
      };
      int[] order = java.util.stream.IntStream.range(0, n).toArray();
      for (int threads : new int[] {1, 3}) {
        try (BatchLoader loader = new BatchLoader(failing, order, 2, false, threads)) {
          int good = 0;
          List<String> failures = new ArrayList<>();
          for (int b = 0; b < loader.batches(); b++) {
            try (BatchLoader.Batch batch = loader.next(); Arena step = Arena.ofConfined()) {
              assertNotNull(batch, "batch " + b + " of " + loader.batches() + " is null");
              assertEquals(2 * b, (int) batch.inputs(step).toFloatArray()[0], "batch " + b);
              good++;
            } catch (MalformedImageException e) {
              failures.add(e.getMessage());
            }
          }
          assertEquals(List.of("sample 1 is broken", "sample 5 is broken", "sample 9 is broken"), failures);
          assertEquals(3, good);
          assertEquals(null, loader.next(), "then the end of the data");
        }
      }
    }
  }

  /** A read stuck where interrupts do not reach (a hung network file system) does not hold close() up. */
  @Test
  void closeReturnsPromptlyWhileAReadIsStuck() throws Exception {
    java.util.concurrent.CountDownLatch entered = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    Dataset stuck = new Dataset() {
      public int size() { return 4; }
      public long[] sampleShape() { return new long[] {1}; }
      public int classes() { return 1; }
      public long read(int index, MemorySegment dst) {
        entered.countDown();
        while (true) {
          try {
            release.await();
            return 0;
          } catch (InterruptedException e) {
            // ignored, as a read blocked in the kernel ignores it
          }
        }
      }
    };
    BatchLoader loader = new BatchLoader(stuck, new int[] {0, 1, 2, 3}, 1, false, 1);
    Thread consumer = Thread.ofPlatform().daemon().start(() -> {
      try {
        loader.next();
      } catch (RuntimeException e) {
        // cancelled by close()
      }
    });
    try {
      assertTrue(entered.await(10, java.util.concurrent.TimeUnit.SECONDS));
      // close() ends the waiting next() while the read is still stuck (release is counted down
      // only at the end); the join's bound is a watchdog, not a timing: main's next() never ended.
      loader.close();
      consumer.join(60_000);
      assertFalse(consumer.isAlive(), "next() still waits after close()");
      assertEquals(1, release.getCount(), "the read was still stuck");
    } finally {
      release.countDown();
    }
  }
}
