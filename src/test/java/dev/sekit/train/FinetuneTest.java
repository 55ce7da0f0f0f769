package dev.sekit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.DType;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.data.Dataset;
import dev.sekit.data.InMemoryDataset;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.Module;
import dev.sekit.nn.VoVNet;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fine-tuning end to end on slices of Fashion-MNIST: a tiny VoVNet pretrained on another
 * labelling, loaded with a new head, fine-tuned with frozen stages and a lower backbone rate;
 * frozen parameters stay bit for bit, evaluation gives top-1 and top-5, a stopped run resumes
 * to the same weights bit for bit. And the README's fine-tuning example, compiled and run.
 */
class FinetuneTest {
  @TempDir Path dir;

  @TempDir static Path shared;

  private static Path weights;

  @BeforeAll
  static void pretrain() throws Exception {
    weights = pretrained(shared);
  }

  /** The fine-tuning groups of these tests: stem and first stage frozen, backbone at a tenth. */
  private static final ParamGroups GROUPS = ParamGroups.builder().freeze("stem", "stages.0").backbone(0.1, "head")
      .build();

  /**
   * Fashion-MNIST padded from 28x28 to 32x32 with black (a VoVNet's four poolings need 32
   * pixels), its labels folded onto {@code classes} classes (4: the "pretraining" task).
   */
  private record Prepared(Dataset base, int classes) implements Dataset {
    static final int SIZE = 32;
    static final float BLACK = (float) (-0.2860 / 0.3530);

    @Override
    public int size() {
      return base.size();
    }

    @Override
    public long[] sampleShape() {
      return new long[] {1, SIZE, SIZE};
    }

    @Override
    public long read(int index, MemorySegment dst) {
      try (Arena a = Arena.ofConfined()) {
        MemorySegment img = a.allocate(base.sampleBytes());
        long label = base.read(index, img);
        int h = (int) base.sampleShape()[1];
        int w = (int) base.sampleShape()[2];
        int top = (SIZE - h) / 2;
        int left = (SIZE - w) / 2;
        for (int y = 0; y < SIZE; y++) {
          for (int x = 0; x < SIZE; x++) {
            int sy = y - top;
            int sx = x - left;
            float v = sy >= 0 && sy < h && sx >= 0 && sx < w ? img.getAtIndex(ValueLayout.JAVA_FLOAT, (long) sy * w + sx)
                : BLACK;
            dst.setAtIndex(ValueLayout.JAVA_FLOAT, (long) y * SIZE + x, v);
          }
        }
        return label % classes;
      }
    }
  }

  /** Pretrains the tiny VoVNet on a 4-class folding of Fashion-MNIST and saves it as a timm checkpoint would be. */
  private static Path pretrained(Path dir) throws Exception {
    Path file = dir.resolve("pretrained.safetensors");
    try (InMemoryDataset train = TrainingTest.fashion("train", 640); Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(11);
      VoVNet net = ParamGroupsTest.tinyVoVNet(arena, 1, 4);
      new Trainer(arena, net, new Prepared(train, 4), null, Trainer.Options.builder().epochs(2).batchSize(64).seed(11)
          .build()).fit(null, null, null);
      net.to(dev.sekit.MemoryFormat.CONTIGUOUS);
      SafeTensors.write(file, net.stateDict(), Map.of());
    }
    return file;
  }

  private static Map<String, float[]> snapshot(Map<String, Tensor> state) {
    Map<String, float[]> r = new LinkedHashMap<>();
    state.forEach((k, t) -> r.put(k, t.dtype() == DType.INT64 ? new float[] {t.toLongArray()[0]}
        : t.contiguous(t.arena(), dev.sekit.MemoryFormat.CONTIGUOUS).toFloatArray()));
    return r;
  }

  private record Run(Map<String, float[]> state, Trainer.Result result, Trainer.Evaluation before,
      Trainer.Evaluation evaluation, List<String> frozenWithGrad, Module.LoadResult load) {}

  /** Fine-tunes the pretrained net with a new 10-class head on {@code samples} training images, 2 epochs. */
  private static Run finetune(int samples, Path ckpt, long stopAfter, boolean resume) throws Exception {
    try (InMemoryDataset train = TrainingTest.fashion("train", samples);
        InMemoryDataset test = TrainingTest.fashion("test", 200); Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(12);
      VoVNet net = ParamGroupsTest.tinyVoVNet(arena, 1, 10);
      Module.LoadResult load;
      try (Arena file = Arena.ofConfined()) {
        load = net.loadPretrained(SafeTensors.open(file, weights).tensors());
      }
      Trainer.Options opts = Trainer.Options.finetuning().epochs(2).batchSize(32).lr(0.1).seed(12)
          .paramGroups(GROUPS).build();
      Dataset trainData = new Prepared(train, 10);
      Dataset testData = new Prepared(test, 10);
      Trainer t = new Trainer(arena, net, trainData, testData, opts);
      Trainer.Evaluation before = t.evaluate(testData);
      if (resume) {
        t.resume(ckpt);
      }
      AtomicLong steps = new AtomicLong();
      Trainer.Result r = t.fit(ckpt, null, () -> steps.incrementAndGet() >= stopAfter);
      List<String> frozenWithGrad = net.namedParameters().entrySet().stream()
          .filter(e -> GROUPS.isFrozen(e.getKey()) && (e.getValue().grad().isPresent() || e.getValue().requiresGrad()))
          .map(Map.Entry::getKey).toList();
      return new Run(snapshot(net.stateDict()), r, before, t.evaluate(testData), frozenWithGrad, load);
    }
  }

  @Test
  void aPretrainedBackboneFineTunesWithANewHeadAndFrozenStages() throws Exception {
    Run run = finetune(640, dir.resolve("a.safetensors"), Long.MAX_VALUE, false);
    assertTrue(run.result().completed());
    assertEquals(List.of("head.fc.bias", "head.fc.weight"), run.load().missingKeys().stream().sorted().toList());
    assertEquals(List.of("head.fc.bias", "head.fc.weight"), run.load().unexpectedKeys().stream().sorted().toList());

    try (Arena arena = Arena.ofConfined()) {
      Map<String, float[]> before = snapshot(SafeTensors.open(arena, weights).tensors());
      int frozen = 0;
      int moved = 0;
      for (Map.Entry<String, float[]> e : run.state().entrySet()) {
        String k = e.getKey();
        boolean isParam = !k.contains("running_") && !k.endsWith("num_batches_tracked");
        if (isParam && GROUPS.isFrozen(k)) {
          assertArrayEquals(before.get(k), e.getValue(), k + " is frozen but changed");
          frozen++;
        } else if (isParam && !k.startsWith("head.") && !java.util.Arrays.equals(before.get(k), e.getValue())) {
          moved++;
        }
      }
      assertTrue(frozen > 10, "frozen parameters checked: " + frozen);
      assertTrue(moved > 10, "backbone parameters that trained: " + moved);
    }
    assertEquals(List.of(), run.frozenWithGrad(), "frozen parameters neither require nor get gradients");

    List<Trainer.EpochStats> h = run.result().history();
    assertEquals(2, h.size());
    for (Trainer.EpochStats s : h) {
      assertTrue(s.testTop5() >= s.testAccuracy() && s.testTop5() <= 1, s.toString());
    }
    Trainer.EpochStats last = h.get(1);
    assertEquals(last.testAccuracy(), run.evaluation().top1(), 0, "evaluate() is what the epoch reported");
    assertEquals(last.testTop5(), run.evaluation().top5(), 0);
    System.out.printf("fine-tune: new head top-1 %.3f top-5 %.3f; epoch 1 top-1 %.3f top-5 %.3f, epoch 2 top-1 %.3f "
        + "top-5 %.3f%n", run.before().top1(), run.before().top5(), h.get(0).testAccuracy(), h.get(0).testTop5(),
        last.testAccuracy(), last.testTop5());
    // 40 steps on 640 images with a tiny, partly frozen backbone: learning, not accuracy, is the point
    assertTrue(last.testAccuracy() > run.before().top1() + 0.05 && last.testAccuracy() > 0.15,
        "the new head learns: top-1 " + run.before().top1() + " -> " + last.testAccuracy());
    assertTrue(last.testTop5() > run.before().top5(), "top-5 " + run.before().top5() + " -> " + last.testTop5());
  }

  @Test
  void aStoppedFineTuneResumesBitForBit() throws Exception {
    Map<String, float[]> straight = finetune(320, dir.resolve("s.safetensors"), Long.MAX_VALUE, false).state();
    for (long stop : new long[] {4, 10}) { // in the middle of epoch 1; at its end (10 steps an epoch)
      Path ckpt = dir.resolve("stop" + stop + ".safetensors");
      Run first = finetune(320, ckpt, stop, false);
      assertFalse(first.result().completed());
      Run rest = finetune(320, ckpt, Long.MAX_VALUE, true);
      assertTrue(rest.result().completed());
      assertEquals(straight.keySet(), rest.state().keySet());
      straight.forEach((k, v) -> assertArrayEquals(v, rest.state().get(k), k + " differs after stopping at step "
          + stop + " and resuming"));
    }
  }

  /** The README's fine-tuning example, extracted, compiled and run on random data and a random "timm" checkpoint. */
  @Test
  void readmeExampleCompilesAndRuns() throws Exception {
    String readme = Files.readString(Path.of("README.md"));
    int marker = readme.indexOf("<!-- finetune:");
    assertTrue(marker >= 0, "README.md has no fine-tuning example");
    int start = readme.indexOf("```java\n", marker) + "```java\n".length();
    String src = readme.substring(start, readme.indexOf("```", start));
    Path srcDir = Files.createDirectories(dir.resolve("src"));
    Path classes = Files.createDirectories(dir.resolve("classes"));
    Files.writeString(srcDir.resolve("FineTune.java"), src);
    int rc = ToolProvider.getSystemJavaCompiler().run(null, null, null, "-d", classes.toString(), "-cp",
        System.getProperty("java.class.path"), srcDir.resolve("FineTune.java").toString());
    assertEquals(0, rc, "the README's example does not compile");

    String model = "ese_vovnet19b_slim_dw";
    Path weights = dir.resolve(model + ".safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(5);
      SafeTensors.write(weights, VoVNet.create(arena, model).stateDict(), Map.of()); // as timm would save it
    }
    int n = 64;
    long[] shape = {3, 32, 32};
    Random r = new Random(5);
    try (Arena data = Arena.ofConfined()) {
      MemorySegment x = data.allocate(ValueLayout.JAVA_FLOAT, n * 3 * 32 * 32);
      for (long i = 0; i < x.byteSize() / 4; i++) {
        x.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) r.nextGaussian());
      }
      long[] labels = new long[n];
      for (int i = 0; i < n; i++) {
        labels[i] = i % 3;
      }
      try (InMemoryDataset train = InMemoryDataset.of(x, labels, 3, shape);
          InMemoryDataset val = InMemoryDataset.of(x, labels, 3, shape);
          URLClassLoader loader = new URLClassLoader(new URL[] {classes.toUri().toURL()}, getClass().getClassLoader())) {
        Method m = loader.loadClass("FineTune").getMethod("fineTune", String.class, Path.class, Dataset.class,
            Dataset.class, Path.class);
        Path run = dir.resolve("run");
        Trainer.EpochStats last = (Trainer.EpochStats) m.invoke(null, model, weights, train, val, run);
        assertEquals(5, last.epoch());
        assertEquals(1.0, last.testTop5(), 0, "3 classes: the top 5 hold every one");
        assertTrue(Files.isRegularFile(run.resolve("checkpoint.safetensors")));
        Trainer.EpochStats again = (Trainer.EpochStats) m.invoke(null, model, weights, train, val, run);
        assertEquals(last, again, "a finished run resumes to its end and reports the same");
      }
    }
  }
}
