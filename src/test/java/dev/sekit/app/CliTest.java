package dev.sekit.app;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command-line program end to end, run from its own module: outputs, SIGTERM writing a last checkpoint, --resume, errors. */
class CliTest {
  @TempDir Path dir;

  /**
   * The program as users run it: module dev.sekit.app (target/app-classes) on the module path
   * with the library module and the runtime dependencies.
   */
  private Process start(String... args) throws IOException {
    List<String> cmd = dev.sekit.TestSupport.sekitCliCommand(args);
    return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("out.log").toFile()).start();
  }

  private String log() throws IOException {
    return Files.readString(dir.resolve("out.log"));
  }

  @Test
  void sigtermWritesACheckpointAndResumeFinishes() throws Exception {
    Path out = dir.resolve("run");
    String[] args = {"train", "--epochs", "3", "--batch", "64", "--limit-train", "1280", "--limit-test", "500",
        "--no-progress", "--out", out.toString()};
    Process p = start(args);
    Path ckpt = out.resolve("checkpoint.safetensors");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (!Files.exists(ckpt) && p.isAlive() && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertTrue(Files.exists(ckpt), "no checkpoint after epoch 1: " + log());
    p.destroy(); // SIGTERM
    assertTrue(p.waitFor(120, TimeUnit.SECONDS));
    String first = log();
    assertTrue(first.contains("stopped: checkpoint written to"), first);
    assertTrue(first.contains("epoch 1/3"), first);

    Process q = start(concat(args, "--resume"));
    assertTrue(q.waitFor(300, TimeUnit.SECONDS));
    String second = log();
    assertEquals(0, q.exitValue(), second);
    assertTrue(second.contains("epoch 3/3"), second);
    assertTrue(second.matches("(?s).*test accuracy \\d+\\.\\d+% after 3 epochs.*"), second);
    for (String f : List.of("log.csv", "summary.json", "curves.png", "checkpoint.safetensors")) {
      assertTrue(Files.size(out.resolve(f)) > 0, f);
    }
    assertEquals(4, Files.readAllLines(out.resolve("log.csv")).size(), "header + 3 epochs");
  }

  @Test
  void clearErrors() throws Exception {
    Process p = start("train", "--data", dir.resolve("nowhere").toString(), "--out", dir.resolve("x").toString());
    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertEquals(2, p.exitValue());
    assertTrue(log().contains("train-images-idx3-ubyte.gz: not found; Debian's dataset-fashion-mnist provides these files"), log());
    Process q = start("train", "--attn", "cbam", "--out", dir.resolve("y").toString());
    assertTrue(q.waitFor(60, TimeUnit.SECONDS));
    assertEquals(2, q.exitValue());
    assertTrue(log().contains("--attn must be ese, se or none, got 'cbam'"), log());
  }

  @Test
  void resnetTinyTrainsAndBadVariantsAreRefused() throws Exception {
    Path out = dir.resolve("rn");
    Process p = start("train", "--model", "resnet-tiny", "--attn", "se", "--epochs", "1", "--batch", "64",
        "--limit-train", "256", "--limit-test", "128", "--no-progress", "--out", out.toString());
    assertTrue(p.waitFor(300, TimeUnit.SECONDS));
    assertEquals(0, p.exitValue(), log());
    assertTrue(log().contains("sekit train: resnet-tiny with se attention"), log());
    assertTrue(log().matches("(?s).*test accuracy \\d+\\.\\d+% after 1 epochs .*312,650 parameters.*"), log());
    Process q = start("ablate", "--model", "resnet-tiny", "--variants", "none,cbam", "--out", dir.resolve("a").toString());
    assertTrue(q.waitFor(60, TimeUnit.SECONDS));
    assertEquals(2, q.exitValue());
    assertTrue(log().contains("--variants must list none, se or ese, got 'cbam'"), log());
    Process r = start("train", "--model", "resnet-huge", "--out", dir.resolve("b").toString());
    assertTrue(r.waitFor(60, TimeUnit.SECONDS));
    assertEquals(2, r.exitValue());
    assertTrue(log().contains("--model must be one of ese-vovnet-tiny, resnet-tiny, got 'resnet-huge'"), log());
  }

  /**
   * --nproc-per-node 2 --sync-bn: two workers train together (rank 0 reports, with its prefix), and when
   * one of them is killed the launcher stops the other and exits non-zero naming the dead rank.
   */
  @Test
  void nprocPerNodeTrainsAndADeadWorkerStopsTheRun() throws Exception {
    Path out = dir.resolve("ddp");
    Process p = start("train", "--nproc-per-node", "2", "--sync-bn", "--epochs", "1", "--batch", "64", "--limit-train",
        "512", "--limit-test", "128", "--out", out.toString());
    assertTrue(p.waitFor(300, TimeUnit.SECONDS), log());
    String ok = log();
    assertEquals(0, p.exitValue(), ok);
    assertTrue(ok.contains("sekit train: 2 worker processes on 127.0.0.1:"), ok);
    assertTrue(ok.contains("[rank 0] sekit train: ese-vovnet-tiny with ese attention, 1 epochs, batch 64, cpu, 1 thread(s) "
        + "in each of 2 processes (SyncBatchNorm)"), ok);
    assertTrue(ok.matches("(?s).*\\[rank 0\\] test accuracy \\d+\\.\\d+% after 1 epochs.*"), ok);
    assertTrue(Files.size(out.resolve("checkpoint.safetensors")) > 0);
    // rank 0's checkpoint resumes in one process (every rank held the same state)
    Process alone = start("train", "--epochs", "2", "--batch", "64", "--limit-train", "512", "--limit-test", "128",
        "--no-progress", "--resume", "--out", out.toString());
    assertTrue(alone.waitFor(300, TimeUnit.SECONDS), log());
    String resumed = log();
    assertEquals(0, alone.exitValue(), resumed);
    assertTrue(resumed.contains("epoch 2/2") && !resumed.contains("epoch 1/2"), resumed);
    assertEquals(3, Files.readAllLines(out.resolve("log.csv")).size(), "header + 2 epochs");

    Process q = start("train", "--nproc-per-node", "2", "--epochs", "20", "--batch", "64", "--limit-train", "1024",
        "--limit-test", "64", "--dist-timeout", "20", "--out", dir.resolve("ddp2").toString());
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(240);
    while (!log().contains("[rank 0] epoch 1/20") && q.isAlive() && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertTrue(log().contains("[rank 0] epoch 1/20"), log());
    ProcessHandle rank1 = q.toHandle().children().max(java.util.Comparator.comparingLong(ProcessHandle::pid))
        .orElseThrow();
    rank1.destroyForcibly(); // SIGKILL
    assertTrue(q.waitFor(120, TimeUnit.SECONDS), log());
    String failed = log();
    assertEquals(1, q.exitValue(), failed);
    assertTrue(failed.contains("sekit: worker rank 1 exited with code 137 (killed by signal 9); stopping the other "
        + "workers"), failed);
    assertTrue(failed.contains("sekit: training failed: rank 1 of 2 died"), failed);
  }

  private static String[] concat(String[] a, String b) {
    String[] r = java.util.Arrays.copyOf(a, a.length + 1);
    r[a.length] = b;
    return r;
  }
}
