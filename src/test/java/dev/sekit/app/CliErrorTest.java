package dev.sekit.app;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.Sekit;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.VoVNet;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a user gets wrong on the command line is one line on stderr, without a stack trace:
 * exit code 2 for a value that is not acceptable, 1 for a command that failed.
 */
class CliErrorTest {
  @TempDir Path dir;

  private static final String MODEL = "ese_vovnet19b_slim_dw";

  /** A command line started, and what it must end with. */
  private record Run(String[] args, int code, String fragment, Process process, Path log) {}

  private final List<Run> runs = new ArrayList<>();

  /** Starts the program (all of them run at once, each loading libtorch); {@link #check} waits. */
  private void fails(int code, String fragment, String... args) throws IOException {
    Path log = Files.createTempFile(dir, "out", ".log");
    Process p = new ProcessBuilder(dev.sekit.TestSupport.sekitCliCommand(args)).redirectErrorStream(true)
        .redirectOutput(log.toFile()).start();
    runs.add(new Run(args, code, fragment, p, log));
  }

  private void check() throws Exception {
    for (Run r : runs) {
      assertTrue(r.process.waitFor(120, TimeUnit.SECONDS), Arrays.toString(r.args));
      check(r.code, r.fragment, r.args, r.process.exitValue(), Files.readString(r.log));
    }
  }

  private static void check(int code, String fragment, String[] args, int exit, String out) {
    String what = String.join(" ", args) + " ->\n" + out;
    assertEquals(code, exit, what);
    List<String> errors = new ArrayList<>(out.lines().filter(l -> l.startsWith("sekit: ")).toList());
    assertEquals(1, errors.size(), what);
    assertTrue(errors.get(0).contains(fragment), what);
    assertTrue(errors.get(0).length() < 500, what);
    assertFalse(out.contains("\tat ") || out.contains("Exception in") || out.contains("Caused by"), what);
  }

  @Test
  void mistakesAreOneLineWithoutAStackTrace() throws Exception {
    Path data = dir.resolve("folder");
    for (String split : List.of("train", "val")) {
      for (String cls : List.of("a", "b")) {
        Path f = data.resolve(split).resolve(cls).resolve("x.png");
        Files.createDirectories(f.getParent());
        javax.imageio.ImageIO.write(new BufferedImage(40, 30, BufferedImage.TYPE_INT_RGB), "png", f.toFile());
      }
    }
    Path weights = dir.resolve(MODEL + ".safetensors");
    try (Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(3);
      SafeTensors.write(weights, VoVNet.create(arena, MODEL).stateDict(), Map.of("format", "pt"));
    }
    byte[] bytes = Files.readAllBytes(weights);
    Path truncated = Files.write(dir.resolve("truncated.safetensors"), Arrays.copyOf(bytes, bytes.length / 2));
    Path notSafetensors = Files.writeString(dir.resolve("weights.txt"), "not a checkpoint\n");
    Path aFile = Files.writeString(dir.resolve("a-file"), "x");
    String[] base = {"finetune", "--model", MODEL, "--data", data.toString(), "--epochs", "1", "--threads", "1"};

    fails(2, "size must be in [1, 16384] pixels, got 100000",
        concat(base, "--weights", weights.toString(), "--size", "100000", "--out", dir.resolve("o1").toString()));
    fails(2, "cropPct 1.0E-9",
        concat(base, "--weights", weights.toString(), "--crop-pct", "1e-9", "--out", dir.resolve("o2").toString()));
    fails(1, aFile + ": already exists", concat(base, "--weights", weights.toString(), "--out", aFile.toString()));
    fails(1, "not a valid safetensors file",
        concat(base, "--weights", notSafetensors.toString(), "--out", dir.resolve("o3").toString()));
    fails(1, truncated.toString(), concat(base, "--weights", truncated.toString(), "--out", dir.resolve("o4").toString()));
    Path run = Files.createDirectories(dir.resolve("run"));
    Files.copy(truncated, run.resolve("checkpoint.safetensors"));
    fails(1, "checkpoint.safetensors", "train", "--resume", "--epochs", "1", "--batch", "32", "--limit-train", "64", "--limit-test", "64",
        "--no-progress", "--out", run.toString());
    Path mismatched = dir.resolve("mismatched"); // 300 classes in train, 300 others in val
    for (int c = 0; c < 300; c++) {
      for (String split : List.of("train", "val")) {
        Path f = mismatched.resolve(split).resolve(split + "-class-" + c).resolve("x.png");
        Files.createDirectories(f.getParent());
        javax.imageio.ImageIO.write(new BufferedImage(8, 8, BufferedImage.TYPE_INT_RGB), "png", f.toFile());
      }
    }
    fails(2, "only in train: train-class-0, ", "finetune", "--model", MODEL, "--weights", weights.toString(),
        "--data", mismatched.toString(), "--out", dir.resolve("o5").toString());
    check();
  }

  private static String[] concat(String[] a, String... b) {
    String[] r = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }
}
