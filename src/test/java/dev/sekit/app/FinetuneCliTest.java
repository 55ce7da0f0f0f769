package dev.sekit.app;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.Sekit;
import dev.sekit.data.InMemoryDataset;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.VoVNet;
import java.io.IOException;
import java.awt.image.BufferedImage;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code sekit finetune} end to end from its module: a timm checkpoint, IDX data and an image
 * folder, SIGTERM, --resume, errors.
 */
class FinetuneCliTest {
  @TempDir Path dir;

  private static final String MODEL = "ese_vovnet19b_slim_dw";

  private Process start(String... args) throws IOException {
    List<String> cmd = dev.sekit.TestSupport.sekitCliCommand(args);
    return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("out.log").toFile()).start();
  }

  private String log() throws IOException {
    return Files.readString(dir.resolve("out.log"));
  }

  /** A checkpoint as timm saves one (1000-class head), with random weights. */
  private Path timmCheckpoint() throws IOException {
    Path w = dir.resolve(MODEL + ".safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(3);
      SafeTensors.write(w, VoVNet.create(arena, MODEL).stateDict(), Map.of("format", "pt"));
    }
    return w;
  }

  @Test
  void fineTunesStopsOnSigtermAndResumes() throws Exception {
    Path weights = timmCheckpoint();
    Path out = dir.resolve("run");
    String[] args = {"finetune", "--model", MODEL, "--weights", weights.toString(), "--data",
        "/usr/share/datasets/fashion-mnist", "--classes", "10", "--freeze", "stem,stages.0", "--epochs", "3",
        "--limit-train", "640", "--limit-test", "100", "--no-progress", "--out", out.toString()};
    Process p = start(args);
    Path ckpt = out.resolve("checkpoint.safetensors");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
    while (!Files.exists(ckpt) && p.isAlive() && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertTrue(Files.exists(ckpt), "no checkpoint after epoch 1: " + log());
    p.destroy(); // SIGTERM during epoch 2
    assertTrue(p.waitFor(120, TimeUnit.SECONDS));
    String first = log();
    assertTrue(first.contains("epoch 1/3  test top-1 "), first);
    assertTrue(first.contains("stopped: checkpoint written to"), first);

    Process q = start(concat(args, "--resume"));
    assertTrue(q.waitFor(300, TimeUnit.SECONDS));
    String second = log();
    assertEquals(0, q.exitValue(), second);
    assertTrue(second.matches("(?s).*epoch 3/3  test top-1 \\d+\\.\\d+%  top-5 \\d+\\.\\d+%.*"), second);
    assertTrue(second.matches("(?s).*test top-1 \\d+\\.\\d+%, top-5 \\d+\\.\\d+% after 3 epochs.*"), second);
    assertEquals(4, Files.readAllLines(out.resolve("log.csv")).size(), "header + 3 epochs");
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors model = SafeTensors.open(arena, out.resolve("model.safetensors"));
      assertEquals(List.of(10L, 512L), java.util.Arrays.stream(model.tensor("head.fc.weight").shape()).boxed().toList());
      assertEquals("[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]", model.metadata().get("classes"));
      VoVNet net = VoVNet.builder(MODEL).numClasses(10).build(arena);
      net.loadStateDict(model.tensors()); // strict: the fine-tuned weights load back as they are
      SafeTensors timm = SafeTensors.open(arena, weights);
      assertEquals(0.0, dev.sekit.TestSupport.relativeError(timm.tensor("stem.0.conv.weight"),
          model.tensor("stem.0.conv.weight")), "frozen stem");
    }
  }

  /**
   * Fashion-MNIST's first samples as a folder of PNG files in torchvision's layout,
   * DIR/{train,val}/CLASS/N.png, padded with black to 32x32 (the smallest VoVNet input).
   */
  private static void writeFolder(Path root, String split, String prefix, int n) throws IOException {
    Path fm = Path.of("/usr/share/datasets/fashion-mnist");
    try (InMemoryDataset d = InMemoryDataset.fromIdx(fm.resolve(prefix + "-images-idx3-ubyte.gz"),
        fm.resolve(prefix + "-labels-idx1-ubyte.gz"), 10, 0, 1, n); Arena a = Arena.ofConfined()) {
      MemorySegment x = a.allocate(d.sampleBytes());
      for (int i = 0; i < d.size(); i++) {
        long label = d.read(i, x);
        BufferedImage img = new BufferedImage(32, 32, BufferedImage.TYPE_BYTE_GRAY);
        for (int y = 0; y < 28; y++) {
          for (int c = 0; c < 28; c++) {
            int p = Math.round(x.getAtIndex(ValueLayout.JAVA_FLOAT, y * 28 + c) * 255);
            img.getRaster().setSample(c + 2, y + 2, 0, p);
          }
        }
        Path f = root.resolve(split).resolve("class" + label).resolve(i + ".png");
        Files.createDirectories(f.getParent());
        javax.imageio.ImageIO.write(img, "png", f.toFile());
      }
    }
  }

  @Test
  void fineTunesFromAnImageFolder() throws Exception {
    Path weights = timmCheckpoint();
    Path data = dir.resolve("folder");
    writeFolder(data, "train", "train", 256);
    writeFolder(data, "val", "t10k", 64);
    Path out = dir.resolve("folder-run");
    Process p = start("finetune", "--model", MODEL, "--weights", weights.toString(), "--data", data.toString(),
        "--size", "32", "--crop-pct", "1", "--epochs", "1", "--batch", "32", "--limit-test", "48", "--no-progress",
        "--out", out.toString());
    assertTrue(p.waitFor(300, TimeUnit.SECONDS));
    String log = log();
    assertEquals(0, p.exitValue(), log);
    assertTrue(log.contains("10 classes, 256 training and 48 test samples"), log);
    assertTrue(log.matches("(?s).*epoch 1/1  test top-1 \\d+\\.\\d+%  top-5 \\d+\\.\\d+%.*"), log);
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors model = SafeTensors.open(arena, out.resolve("model.safetensors"));
      assertEquals("[\"class0\",\"class1\",\"class2\",\"class3\",\"class4\",\"class5\",\"class6\","
          + "\"class7\",\"class8\",\"class9\"]", model.metadata().get("classes"));
    }
    Process q = start("finetune", "--model", MODEL, "--weights", weights.toString(), "--data", data.toString(),
        "--size", "32", "--classes", "a,b", "--out", dir.resolve("y").toString());
    assertTrue(q.waitFor(60, TimeUnit.SECONDS));
    assertEquals(2, q.exitValue());
    assertTrue(log().contains("does not match the folders' classes"), log());
  }

  @Test
  void clearErrors() throws Exception {
    Path weights = timmCheckpoint();
    Process p = start("finetune", "--model", "resnet50", "--weights", weights.toString(), "--data", dir.toString());
    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertEquals(2, p.exitValue());
    assertTrue(log().contains("unknown VoVNet 'resnet50'"), log());
    Process q = start("finetune", "--model", MODEL, "--weights", weights.toString(), "--data",
        "/usr/share/datasets/fashion-mnist", "--freeze", "stage.0", "--limit-train", "64", "--limit-test", "64",
        "--out", dir.resolve("x").toString());
    assertTrue(q.waitFor(60, TimeUnit.SECONDS));
    assertEquals(2, q.exitValue());
    assertTrue(log().contains("no parameter of the model is under [stage.0]"), log());
    Process r = start("finetune", "--model", MODEL, "--weights", weights.toString(), "--data", dir.toString());
    assertTrue(r.waitFor(60, TimeUnit.SECONDS));
    assertEquals(2, r.exitValue());
    assertTrue(log().contains("neither an image folder"), log());
  }

  private static String[] concat(String[] a, String... b) {
    String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }
}
