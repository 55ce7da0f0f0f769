package dev.sekit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.data.InMemoryDataset;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.Attention;
import dev.sekit.nn.Module;
import dev.sekit.nn.SmallVoVNet;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real training runs on slices of Fashion-MNIST: learning, determinism, resume, checkpoints. */
class TrainingTest {
  @TempDir Path dir;

  private static final Path DEBIAN = Path.of("/usr/share/datasets/fashion-mnist");

  private static Trainer.Options small(int epochs, long seed) {
    return Trainer.Options.builder().epochs(epochs).batchSize(64).randomCrop(2, -0.2860 / 0.3530).seed(seed)
        .evalBatch(500).build();
  }

  static InMemoryDataset fashion(String split, int limit) {
    String p = split.equals("train") ? "train" : "t10k";
    return InMemoryDataset.fromIdx(DEBIAN.resolve(p + "-images-idx3-ubyte.gz"), DEBIAN.resolve(p + "-labels-idx1-ubyte.gz"),
        10, 0.2860, 0.3530, limit);
  }

  @Test
  void aFewHundredStepsLowerTheLoss() throws Exception {
    Sekit.setNumThreads(2);
    try (InMemoryDataset train = fashion("train", 2560); InMemoryDataset test = fashion("test", 1000);
        Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(1);
      Module model = SmallVoVNet.build(arena, Attention.ESE, 1, 10);
      Trainer t = new Trainer(arena, model, train, test, small(5, 1)); // 5 x 40 = 200 steps
      List<Double> losses = new ArrayList<>();
      Trainer.Result r = t.fit(null, new Trainer.Listener() {
        @Override
        public void onStep(int epoch, int step, double loss, double acc, double sps) {
          if (step == 0) {
            losses.add(loss);
          }
        }
      }, null);
      assertTrue(r.completed());
      assertEquals(200, r.steps());
      Trainer.EpochStats first = r.history().get(0);
      Trainer.EpochStats last = r.history().get(4);
      assertTrue(last.trainLoss() < 0.6 * first.trainLoss(), "train loss " + first.trainLoss() + " -> " + last.trainLoss());
      assertTrue(losses.get(0) > 2.0, "starts near ln(10): " + losses.get(0));
      assertTrue(last.testAccuracy() > 0.7, "test accuracy after 200 steps: " + last.testAccuracy());
    }
  }

  @Test
  void aListenerCanStopTrainingEarly() throws Exception {
    try (InMemoryDataset train = fashion("train", 256); InMemoryDataset test = fashion("test", 100);
        Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(3);
      Module model = SmallVoVNet.build(arena, Attention.NONE, 1, 10);
      Trainer t = new Trainer(arena, model, train, test, small(5, 3));
      List<Integer> epochs = new ArrayList<>();
      Trainer.Result r = t.fit(null, new Trainer.Listener() {
        @Override
        public boolean stopAfter(Trainer.EpochStats stats) {
          epochs.add(stats.epoch());
          return stats.epoch() == 2; // e.g. when the test loss stops improving
        }
      }, null);
      assertFalse(r.completed());
      assertEquals(List.of(1, 2), epochs);
      assertEquals(2 * t.stepsPerEpoch(), r.steps());
    }
  }

  /** All state-dict values of a model, for bitwise comparison. */
  private static Map<String, float[]> snapshot(Module m) {
    Map<String, float[]> r = new LinkedHashMap<>();
    m.stateDict().forEach((k, t) -> r.put(k, t.dtype() == dev.sekit.DType.INT64
        ? new float[] {t.toLongArray()[0]} : t.toFloatArray()));
    return r;
  }

  private Map<String, float[]> run(Path ckpt, long stopAfter, boolean resume, long seed) throws Exception {
    try (InMemoryDataset train = fashion("train", 640); Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(seed);
      Module model = SmallVoVNet.build(arena, Attention.ESE, 1, 10);
      Trainer t = new Trainer(arena, model, train, null, small(2, seed)); // 2 x 10 steps
      if (resume) {
        t.resume(ckpt);
      }
      AtomicLong steps = new AtomicLong();
      Trainer.Result r = t.fit(ckpt, null, () -> steps.incrementAndGet() >= stopAfter);
      assertEquals(stopAfter >= 20 || resume, r.completed());
      if (!resume && stopAfter < 20) {
        assertEquals(stopAfter, r.steps(), "one process asks `stop` once per step, no more");
      }
      return snapshot(model);
    }
  }

  private static void assertSameWeights(Map<String, float[]> a, Map<String, float[]> b) {
    assertEquals(a.keySet(), b.keySet());
    a.forEach((k, v) -> assertArrayEquals(v, b.get(k), k + " differs"));
  }

  @Test
  void resumeContinuesBitForBit() throws Exception {
    Map<String, float[]> straight = run(dir.resolve("a.safetensors"), Long.MAX_VALUE, false, 5);
    Map<String, float[]> again = run(dir.resolve("b.safetensors"), Long.MAX_VALUE, false, 5);
    assertSameWeights(straight, again); // a seed makes a CPU run repeatable

    Path ckpt = dir.resolve("c.safetensors");
    run(ckpt, 10, false, 5); // stops after epoch 1 and writes the checkpoint
    assertSameWeights(straight, run(ckpt, Long.MAX_VALUE, true, 5));

    Path mid = dir.resolve("d.safetensors");
    run(mid, 13, false, 5); // stops in the middle of epoch 2
    assertSameWeights(straight, run(mid, Long.MAX_VALUE, true, 5));

    Map<String, float[]> other = run(dir.resolve("e.safetensors"), Long.MAX_VALUE, false, 6);
    assertFalse(java.util.Arrays.equals(straight.get("7.fc.weight"), other.get("7.fc.weight")));
  }

  @Test
  void aSaveKilledMidwayLeavesTheOldCheckpointLoadable() throws Exception {
    Path ckpt = dir.resolve("ckpt.safetensors");
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    for (int attempt = 0; attempt < 3; attempt++) {
      Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp",
          System.getProperty("java.class.path"), SaveLoop.class.getName(), ckpt.toString())
          .redirectErrorStream(true).start();
      // Wait for the first complete checkpoint, then kill while later saves are in flight.
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (!Files.exists(ckpt) && System.nanoTime() < deadline) {
        Thread.sleep(20);
      }
      Thread.sleep(150 + 170L * attempt);
      p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
      try (Arena arena = Arena.ofConfined()) {
        SafeTensors st = SafeTensors.open(arena, ckpt); // validates the whole header
        Module m = dev.sekit.nn.VoVNet.create(arena, "ese_vovnet19b_slim_dw");
        Checkpoint.load(ckpt, m, null);
        long version = Long.parseLong(st.metadata().get("version"));
        Tensor marker = st.tensor("model.head.fc.bias");
        assertEquals((float) version, marker.toFloatArray()[0], "a checkpoint mixes two saves");
      }
    }
    // The killed saves left their temporary files; the next save of the same file removes them.
    try (Arena arena = Arena.ofConfined()) {
      Checkpoint.save(ckpt, dev.sekit.nn.VoVNet.create(arena, "ese_vovnet19b_slim_dw"), null, Map.of());
    }
    try (var files = Files.list(dir)) {
      assertEquals(List.of(), files.filter(f -> f.getFileName().toString().endsWith(".tmp")).toList(),
          "temporary files of killed saves are cleaned up by the next save");
    }
  }

  /** Saves a checkpoint over and over (each with its own version), until killed. */
  public static final class SaveLoop {
    public static void main(String[] args) throws Exception {
      Path file = Path.of(args[0]);
      try (Arena arena = Arena.ofConfined()) {
        Module m = dev.sekit.nn.VoVNet.create(arena, "ese_vovnet19b_slim_dw");
        Tensor bias = m.stateDict().get("head.fc.bias");
        for (long v = 1; ; v++) {
          bias.data().fill((byte) 0);
          bias.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, v);
          Checkpoint.save(file, m, null, Map.of("version", Long.toString(v)));
        }
      }
    }
  }
}
