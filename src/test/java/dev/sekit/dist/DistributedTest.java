package dev.sekit.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sekit.Tensor;
import dev.sekit.TestSupport;
import dev.sekit.io.SafeTensors;
import dev.sekit.train.Optimizer;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Data-parallel training on c10d/Gloo over loopback, each rank a JVM of its own: the
 * collectives, DDP against one process with the whole batch and against PyTorch's own
 * DistributedDataParallel (fixture ddp_sgd.safetensors, made by ddp_fixtures.py with
 * torch.distributed), and a rank killed in the middle of training.
 */
class DistributedTest {
  @TempDir Path dir;

  @Test
  void collectivesGiveEveryRankTheReducedValues() throws Exception {
    try (Workers w = Workers.start(dir, 2, 60_000, "collectives")) {
      for (int r = 0; r < 2; r++) {
        assertEquals(0, w.await(r), w.output(r));
        String out = w.output(r);
        assertTrue(out.contains("JOINED rank " + r + " of 2 local " + r), out);
        assertTrue(out.contains("SUM [3.0, 30.0]"), out);
        assertTrue(out.contains("AVG [1.5, -1.5]"), out);
        assertTrue(out.contains("MAX [1, 0]"), out);
        assertTrue(out.contains("MIN [1, 0]"), out);
        assertTrue(out.contains("BROADCAST [101.0, 201.0, 301.0]"), out);
        assertTrue(out.contains("GATHER [2, 2] [0.0, 0.5, 1.0, 1.5]"), out);
        assertTrue(out.contains("METRICS [1.0, 2.0]"), out);
        assertTrue(out.contains("DONE"), out);
      }
      assertTrue(w.crashLogs().isEmpty(), "crash logs: " + w.crashLogs());
    }
  }

  /**
   * Collectives whose tensors (or reductions, roots, models) differ between ranks end in a
   * DISTRIBUTED exception naming the difference on every rank, before any data moves, and the
   * group stays usable; without the check Gloo's transport thread aborts the JVM.
   */
  @Test
  void mismatchedCollectivesFailOnEveryRankAndTheJvmLives() throws Exception {
    try (Workers w = Workers.start(dir, 2, 20_000, "mismatch")) {
      for (int r = 0; r < 2; r++) {
        assertEquals(0, w.await(r), w.output(r));
        String out = w.output(r);
        assertTrue(out.contains("MISMATCH allReduce shape: DISTRIBUTED all_reduce on rank " + r + " of 2: the ranks' "
            + "calls differ, rank 0 has a tensor of float32 [10], rank 1 one of float32 [1000]"), out);
        assertTrue(out.contains("MISMATCH allReduce dtype: DISTRIBUTED") && out.contains("float64 [64]"), out);
        assertTrue(out.contains("MISMATCH allReduce op: DISTRIBUTED") && out.contains("rank 0 reduces with SUM, "
            + "rank 1 with MAX"), out);
        assertTrue(out.contains("MISMATCH allGather shape: DISTRIBUTED") && out.contains("float32 [3, 500]"), out);
        assertTrue(out.contains("MISMATCH broadcast shape: DISTRIBUTED") && out.contains("float32 [4096]"), out);
        assertTrue(out.contains("MISMATCH broadcast root: DISTRIBUTED") && out.contains("from root 1"), out);
        assertTrue(out.contains("MISMATCH DDP model: DISTRIBUTED DistributedDataParallel on rank " + r
            + " of 2: the ranks' models differ"), out);
        assertTrue(out.contains("MISMATCH DDP frozen: DISTRIBUTED") && out.contains("frozen"), out);
        assertTrue(!out.contains("NO FAILURE"), out);
        assertTrue(out.contains("AFTER [3.0]") && out.contains("DDP OK") && out.contains("DONE"), out);
      }
      assertTrue(w.crashLogs().isEmpty(), "crash logs: " + w.crashLogs());
    }
  }

  /**
   * Joining honours its timeout whatever the world size (a rank that waits for 999 others
   * gives up after the timeout, not one timeout per missing rank), an absurd world size and
   * an overflowing timeout are refused at once with what to do.
   */
  @Test
  void joiningHonoursItsTimeoutAndRefusesAbsurdArguments() throws Exception {
    // The meeting's one deadline ends it (its message counts who joined); main waited one
    // connection timeout per missing rank inside Gloo and said so in Gloo's words.
    dev.sekit.SekitException e = assertThrows(dev.sekit.SekitException.class,
        () -> ProcessGroup.create("127.0.0.1", Workers.freePort(), 0, 1000, Duration.ofSeconds(2)));
    assertTrue(e.getMessage().contains("within 2000 ms: only 1 of 1000 ranks joined"), e.getMessage());
    IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
        () -> ProcessGroup.create("127.0.0.1", Workers.freePort(), 0, 10_000, Duration.ofSeconds(2)));
    assertTrue(big.getMessage().contains("at most " + ProcessGroup.MAX_WORLD_SIZE), big.getMessage());
    IllegalArgumentException forever = assertThrows(IllegalArgumentException.class,
        () -> ProcessGroup.create("127.0.0.1", Workers.freePort(), 0, 2, Duration.ofSeconds(Long.MAX_VALUE)));
    assertTrue(forever.getMessage().contains("timeout must be between 1 ms and"), forever.getMessage());
  }

  /** Ranks started with different WORLD_SIZEs fail on both sides with a message that says so. */
  @Test
  void differentWorldSizesAreNamed() throws Exception {
    try (Workers w = Workers.startMain(dir, 2, java.util.List.of("-Ddist.timeout.ms=20000",
        DistWorker.class.getName(), "collectives"), Map.of(1, Map.of("WORLD_SIZE", "3")))) {
      for (int r = 0; r < 2; r++) {
        assertTrue(w.await(r) != 0, w.output(r));
        assertTrue(w.output(r).contains("the ranks were started with different world sizes: rank 0 with WORLD_SIZE 2, "
            + "rank 1 with 3; start every rank with the same WORLD_SIZE"), w.output(r));
      }
      assertTrue(w.crashLogs().isEmpty(), "crash logs: " + w.crashLogs());
    }
  }

  /**
   * 2 processes x half of each batch end with the weights of 1 process x the whole batch, and
   * with PyTorch DDP's (2 processes, Gloo), to float32 rounding; the two replicas are equal
   * bit for bit although rank 1 started from other random weights.
   */
  @Test
  void twoProcessesMatchOneProcessAndPyTorchDdp() throws Exception {
    Path fixture = TestSupport.fixtures().resolve("ddp_sgd.safetensors");
    try (Workers w = Workers.start(dir, 2, 60_000, "train", fixture.toString(), dir.resolve("out.safetensors")
        .toString())) {
      for (int r = 0; r < 2; r++) {
        assertEquals(0, w.await(r), w.output(r));
        assertTrue(w.output(r).contains("STATS buckets 1 reductions 5"), w.output(r));
      }
      assertTrue(w.crashLogs().isEmpty(), "crash logs: " + w.crashLogs());
    }
    try (Arena arena = Arena.ofConfined()) {
      SafeTensors fx = SafeTensors.open(arena, fixture);
      Map<String, Tensor> rank0 = SafeTensors.open(arena, dir.resolve("out-rank0.safetensors")).tensors();
      Map<String, Tensor> rank1 = SafeTensors.open(arena, dir.resolve("out-rank1.safetensors")).tensors();
      Map<String, Tensor> alone = DistWorker.trainSteps(arena, fixture, null, true);
      Map<String, Tensor> torchDdp = fx.tensors("ddp.");
      Map<String, Tensor> torchSingle = fx.tensors("single.");
      Map<String, Tensor> init = fx.tensors("init.");
      assertEquals(torchDdp.keySet(), rank0.keySet());
      double vsAlone = 0;
      double vsTorch = 0;
      double vsTorchSingle = 0;
      double moved = 0;
      for (String k : torchDdp.keySet()) {
        float[] a = rank0.get(k).toFloatArray();
        float[] b = rank1.get(k).toFloatArray();
        assertTrue(java.util.Arrays.equals(a, b), "rank 0 and rank 1 differ in " + k);
        vsAlone = Math.max(vsAlone, maxDiff(a, alone.get(k).toFloatArray()));
        vsTorch = Math.max(vsTorch, maxDiff(a, torchDdp.get(k).toFloatArray()));
        vsTorchSingle = Math.max(vsTorchSingle, maxDiff(torchDdp.get(k).toFloatArray(),
            torchSingle.get(k).toFloatArray()));
        moved = Math.max(moved, maxDiff(a, init.get(k).toFloatArray()));
      }
      System.out.printf(Locale.ROOT, "DDP max |diff|: sekit 2 procs vs 1 proc %.3g, vs PyTorch DDP %.3g "
          + "(PyTorch DDP vs PyTorch 1 proc %.3g); weights moved by up to %.3g%n", vsAlone, vsTorch, vsTorchSingle, moved);
      assertTrue(moved > 1e-2, "training changed the weights by only " + moved);
      assertTrue(vsAlone < 1e-5, "2 processes vs 1 process: " + vsAlone);
      assertTrue(vsTorch < 1e-5, "sekit DDP vs PyTorch DDP: " + vsTorch);
    }
  }

  /**
   * SyncBatchNorm: 2 processes × half of each batch end with the weights and running
   * statistics of 1 process × the whole batch with plain BatchNorm, to float32 rounding (as
   * PyTorch's SyncBatchNorm promises; PyTorch's own runs only on CUDA, so it cannot be the
   * reference here). Plain BatchNorm in 2 processes does not (each normalises with its half's
   * statistics), which shows the comparison can fail.
   */
  @Test
  void syncBatchNormInTwoProcessesMatchesOneProcessWithTheWholeBatch() throws Exception {
    try (Workers w = Workers.start(dir, 2, 60_000, "batchnorm", dir.resolve("bn.safetensors").toString())) {
      for (int r = 0; r < 2; r++) {
        assertEquals(0, w.await(r), w.output(r));
        assertTrue(w.output(r).contains("SYNCBN 2"), w.output(r));
      }
      assertTrue(w.crashLogs().isEmpty(), "crash logs: " + w.crashLogs());
    }
    try (Arena arena = Arena.ofConfined()) {
      Map<String, Tensor> alone = DistWorker.bnSteps(arena, null, false);
      Map<String, Tensor> sync0 = SafeTensors.open(arena, dir.resolve("bn-sync-rank0.safetensors")).tensors();
      Map<String, Tensor> sync1 = SafeTensors.open(arena, dir.resolve("bn-sync-rank1.safetensors")).tensors();
      Map<String, Tensor> plain0 = SafeTensors.open(arena, dir.resolve("bn-plain-rank0.safetensors")).tensors();
      assertEquals(alone.keySet(), sync0.keySet());
      double syncVsAlone = 0;
      double plainVsAlone = 0;
      double statsSync = 0;
      double statsPlain = 0;
      for (String k : alone.keySet()) {
        if (k.endsWith("num_batches_tracked")) {
          assertEquals(DistWorker.BN_STEPS, sync0.get(k).item(), k);
          continue;
        }
        float[] a = alone.get(k).toFloatArray();
        float[] s0 = sync0.get(k).toFloatArray();
        assertTrue(java.util.Arrays.equals(s0, sync1.get(k).toFloatArray()), "rank 0 and rank 1 differ in " + k);
        double ds = maxDiff(s0, a);
        double dp = maxDiff(plain0.get(k).toFloatArray(), a);
        syncVsAlone = Math.max(syncVsAlone, ds);
        plainVsAlone = Math.max(plainVsAlone, dp);
        if (k.contains("running_")) {
          statsSync = Math.max(statsSync, ds);
          statsPlain = Math.max(statsPlain, dp);
        }
      }
      System.out.printf(Locale.ROOT, "SyncBatchNorm max |diff| vs 1 process: %.3g (running stats %.3g); plain "
          + "BatchNorm in 2 processes: %.3g (running stats %.3g)%n", syncVsAlone, statsSync, plainVsAlone, statsPlain);
      assertTrue(syncVsAlone < 1e-5, "SyncBatchNorm in 2 processes vs 1 process: " + syncVsAlone);
      assertTrue(plainVsAlone > 100 * syncVsAlone && plainVsAlone > 1e-3,
          "plain BatchNorm in 2 processes should differ from 1 process, and does by only " + plainVsAlone);
    }
  }

  /** In a group of one, SyncBatchNorm's forward and backward are BatchNorm's (ATen's), in this JVM. */
  @Test
  void syncBatchNormInAGroupOfOneIsBatchNorm() throws Exception {
    try (ProcessGroup pg = ProcessGroup.create("127.0.0.1", Workers.freePort(), 0, 1, Duration.ofSeconds(30));
        Arena a = Arena.ofConfined()) {
      Map<String, Tensor> plain = DistWorker.bnSteps(a, null, false);
      Map<String, Tensor> sync = DistWorker.bnSteps(a, pg, true);
      double d = 0;
      for (String k : plain.keySet()) {
        d = Math.max(d, maxDiff(plain.get(k).to(dev.sekit.DType.FLOAT32).toFloatArray(),
            sync.get(k).to(dev.sekit.DType.FLOAT32).toFloatArray()));
      }
      assertTrue(d < 2e-5, "SyncBatchNorm in a group of one vs BatchNorm: " + d);
      dev.sekit.nn.Module m = DistWorker.bnNetwork(a);
      assertEquals(2, SyncBatchNorm.convert(m, pg));
      assertEquals(2, SyncBatchNorm.revert(m));
      assertEquals(0, SyncBatchNorm.convert(DistWorker.network(a, 4, 3), pg));
    }
  }

  /**
   * Frozen parameters (fine-tuning's ParamGroups.freeze) under DDP: accepted, never reduced,
   * unchanged by training; the trained ones end where training without DDP ends (a group of
   * one, in this JVM: the same gradients, through the buckets).
   */
  @Test
  void frozenParametersAreSkippedByDdp() throws Exception {
    try (ProcessGroup pg = ProcessGroup.create("127.0.0.1", Workers.freePort(), 0, 1, Duration.ofSeconds(30));
        Arena a = Arena.ofConfined()) {
      Map<String, Tensor> withDdp = frozenRun(a, pg);
      Map<String, Tensor> alone = frozenRun(a, null);
      dev.sekit.Sekit.manualSeed(5);
      Map<String, Tensor> init = DistWorker.bnNetwork(a).stateDict();
      for (String k : alone.keySet()) {
        float[] d = withDdp.get(k).to(dev.sekit.DType.FLOAT32).toFloatArray();
        assertTrue(java.util.Arrays.equals(d, alone.get(k).to(dev.sekit.DType.FLOAT32).toFloatArray()), k);
        boolean frozen = k.startsWith("0.") && !k.contains("running_") && !k.contains("num_batches");
        double moved = maxDiff(d, init.get(k).to(dev.sekit.DType.FLOAT32).toFloatArray());
        assertTrue(frozen ? moved == 0 : moved > 0 || k.contains("num_batches"), k + " moved by " + moved);
      }
      dev.sekit.nn.Module all = DistWorker.bnNetwork(a);
      all.namedParameters().values().forEach(t -> t.requiresGrad(false));
      dev.sekit.SekitException e = assertThrows(dev.sekit.SekitException.class,
          () -> DistributedDataParallel.of(a, pg, all));
      assertTrue(e.getMessage().contains("every parameter of the module is frozen"), e.getMessage());
    }
  }

  private static Map<String, Tensor> frozenRun(Arena a, ProcessGroup pg) {
    dev.sekit.Sekit.manualSeed(5);
    dev.sekit.nn.Module net = DistWorker.bnNetwork(a);
    Optimizer opt = Optimizer.sgd(net, 0.1).momentum(0.9)
        .paramGroups(dev.sekit.train.ParamGroups.builder().freeze("0").build()).build(a);
    DistributedDataParallel ddp = pg == null ? null : DistributedDataParallel.of(a, pg, net);
    dev.sekit.Sekit.manualSeed(100);
    Tensor x = Tensor.randn(a, dev.sekit.DType.FLOAT32, dev.sekit.Device.CPU, 3, 4, 3, 9, 9);
    Tensor y = Tensor.copyOf(a, new long[] {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1}, 3, 4);
    DistWorker.sgdSteps(net, opt, ddp, x, y, 3, 0, 4);
    return net.stateDict();
  }

  private static double maxDiff(float[] a, float[] b) {
    assertEquals(a.length, b.length);
    double m = 0;
    for (int i = 0; i < a.length; i++) {
      m = Math.max(m, Math.abs((double) a[i] - b[i]));
    }
    return m;
  }

  @Test
  void aKilledRankMakesTheOtherFailNamingIt() throws Exception {
    for (int victim : new int[] {1, 0}) {
      Path d = java.nio.file.Files.createDirectories(dir.resolve("victim" + victim));
      // rank 1 killed in plain DDP; rank 0 killed with SyncBatchNorm's collectives in each forward and backward too
      try (Workers w = Workers.start(d, 2, 10_000, "endless", victim == 0 ? "syncbn" : "plain")) {
        int survivor = 1 - victim;
        w.awaitOutput(survivor, "STEP 3");
        w.processes.get(victim).destroyForcibly(); // SIGKILL
        w.await(victim);
        assertEquals(0, w.await(survivor), w.output(survivor));
        String out = w.output(survivor);
        out.lines().filter(s -> s.startsWith("FAILED")).forEach(s -> System.out.println("survivor of a killed rank " + victim + ": " + s));
        assertTrue(out.contains("FAILED DISTRIBUTED: "), out);
        assertTrue(out.contains("rank " + victim + " is lost"), out);
        assertTrue(w.crashLogs().isEmpty(), "crash logs: " + w.crashLogs() + "\n" + out);
      }
    }
  }

  /**
   * Rank 0 cannot write the checkpoint: both ranks fail at that save, rank 0 with its own error
   * and rank 1 saying so, rather than rank 1 going on as if it were written (and waiting for
   * rank 0 in the next collective until the timeout).
   */
  @Test
  void aCheckpointRankZeroCannotWriteFailsEveryRank() throws Exception {
    try (Workers w = Workers.start(dir, 2, 60_000, "checkpoint", dir.toString())) {
      long t0 = System.nanoTime();
      for (int r = 0; r < 2; r++) {
        assertEquals(0, w.await(r), w.output(r));
      }
      assertTrue(System.nanoTime() - t0 < 45e9, "both ranks stop before the group's 60 s timeout");
      assertTrue(w.output(0).contains("CHECKPOINT FAILED: ") && w.output(0).contains("rank0-blocked"), w.output(0));
      assertTrue(w.output(1).contains("CHECKPOINT FAILED: rank 0 failed to write the checkpoint "), w.output(1));
      assertTrue(!w.output(1).contains("SAVED"), w.output(1));
    }
  }

  /** The README's data-parallel example, extracted and run as a source-file program in 2 processes. */
  @Test
  void readmeExampleRunsInTwoProcesses() throws Exception {
    String readme = java.nio.file.Files.readString(Path.of("README.md"));
    int marker = readme.indexOf("<!-- ddp-example");
    assertTrue(marker >= 0, "README.md has no ddp-example block");
    int start = readme.indexOf("```java\n", marker) + "```java\n".length();
    int end = readme.indexOf("```", start);
    Path src = dir.resolve("DataParallel.java");
    java.nio.file.Files.writeString(src, readme.substring(start, end));
    try (Workers w = Workers.startMain(dir, 2, java.util.List.of(src.toString()))) {
      for (int r = 0; r < 2; r++) {
        assertEquals(0, w.await(r), w.output(r));
      }
      assertTrue(w.output(0).matches("(?s).*step 2 loss \\d+\\.\\d{4}.*"), w.output(0));
      assertTrue(w.crashLogs().isEmpty(), "crash logs: " + w.crashLogs());
    }
  }

  @Test
  void badArgumentsAndMissingVariablesAreExplained() {
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> ProcessGroup.fromEnvironment(Map.of("MASTER_ADDR", "127.0.0.1"), Duration.ofSeconds(1)));
    assertTrue(e.getMessage().contains("MASTER_PORT is not set"), e.getMessage());
    e = assertThrows(IllegalStateException.class, () -> ProcessGroup.fromEnvironment(
        Map.of("MASTER_ADDR", "h", "MASTER_PORT", "x"), Duration.ofSeconds(1)));
    assertTrue(e.getMessage().contains("MASTER_PORT must be an integer, got 'x'"), e.getMessage());
    IllegalArgumentException a = assertThrows(IllegalArgumentException.class,
        () -> ProcessGroup.create("127.0.0.1", 29500, 2, 2, Duration.ofSeconds(1)));
    assertTrue(a.getMessage().contains("need 0 <= rank < worldSize, got rank 2 of 2"), a.getMessage());
  }

  @Test
  void aRankWhosePeersNeverComeTimesOut() throws Exception {
    // Rank 1 of 2 with no rank 0: the rendezvous gives up after the timeout.
    dev.sekit.SekitException e = assertThrows(dev.sekit.SekitException.class,
        () -> ProcessGroup.create("127.0.0.1", Workers.freePort(), 1, 2, Duration.ofMillis(1500)));
    assertEquals(dev.sekit.SekitException.Code.DISTRIBUTED, e.code());
    assertTrue(e.getMessage().contains("rank 1 of 2 could not join the process group"), e.getMessage());
  }

  @Test
  void aGroupOfOneNeedsNoPeers() throws Exception {
    try (ProcessGroup pg = ProcessGroup.create("127.0.0.1", Workers.freePort(), 0, 1, Duration.ofSeconds(30));
        Arena a = Arena.ofConfined()) {
      Tensor t = Tensor.copyOf(a, new float[] {2, 4}, 2);
      pg.allReduce(t, ReduceOp.AVG);
      assertEquals("[2.0, 4.0]", java.util.Arrays.toString(t.toFloatArray()));
      pg.barrier();
      pg.close();
      assertThrows(IllegalStateException.class, pg::barrier);
    }
  }
}
