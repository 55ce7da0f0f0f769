package dev.sekit.dist;

import dev.sekit.DType;
import dev.sekit.SekitException;
import dev.sekit.Tensor;
import dev.sekit.data.InMemoryDataset;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.ClassifierHead;
import dev.sekit.nn.EffectiveSqueezeExcitation;
import dev.sekit.nn.Module;
import dev.sekit.nn.Sequential;
import dev.sekit.nn.SmallVoVNet;
import dev.sekit.nn.SqueezeExcitation;
import dev.sekit.train.Losses;
import dev.sekit.train.Optimizer;
import dev.sekit.train.Trainer;
import java.lang.foreign.Arena;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One rank of the data-parallel tests, in a JVM of its own; the group comes from torchrun's
 * variables in the environment. Modes:
 *
 * <ul>
 *   <li>{@code collectives}: prints the results of each collective;
 *   <li>{@code train FIXTURE OUT}: the SGD steps of {@code ddp_sgd.safetensors} on this rank's
 *       half of each batch, rank 0 starting from the fixture's weights and the others from
 *       their own random ones; writes the final state dict to OUT (with the rank in the name);
 *   <li>{@code batchnorm OUT}: {@link #bnSteps} on this rank's half of each batch, once with
 *       SyncBatchNorm and once with plain BatchNorm; writes both state dicts next to OUT;
 *   <li>{@code endless [syncbn]}: DDP steps (with SyncBatchNorm) until a collective fails;
 *       prints the failure;
 *   <li>{@code mismatch}: collectives and a DDP whose tensors, reductions, roots or models
 *       differ on the last rank; prints each failure, then a collective that fits.
 * </ul>
 */
public final class DistWorker {
  private DistWorker() {}

  public static void main(String[] args) throws Exception {
    long timeoutMs = Long.parseLong(System.getProperty("dist.timeout.ms", "60000"));
    try (ProcessGroup pg = ProcessGroup.fromEnvironment(Duration.ofMillis(timeoutMs))) {
      System.out.println("JOINED rank " + pg.rank() + " of " + pg.worldSize() + " local " + pg.localRank());
      switch (args[0]) {
        case "collectives" -> collectives(pg);
        case "train" -> train(pg, Path.of(args[1]), Path.of(args[2]));
        case "endless" -> endless(pg, args.length > 1 && args[1].equals("syncbn"));
        case "batchnorm" -> batchNorm(pg, Path.of(args[1]));
        case "checkpoint" -> checkpoint(pg, Path.of(args[1]));
        case "mismatch" -> mismatch(pg);
        default -> throw new IllegalArgumentException(args[0]);
      }
    }
    System.out.println("DONE");
  }

  private static void collectives(ProcessGroup pg) {
    int r = pg.rank();
    try (Arena a = Arena.ofConfined()) {
      Tensor t = Tensor.copyOf(a, new float[] {r + 1, 10 * (r + 1)}, 2);
      pg.allReduce(t, ReduceOp.SUM);
      System.out.println("SUM " + Arrays.toString(t.toFloatArray()));
      Tensor u = Tensor.copyOf(a, new double[] {r + 1, -(r + 1)}, 2);
      pg.allReduce(u, ReduceOp.AVG);
      System.out.println("AVG " + Arrays.toString(u.toDoubleArray()));
      Tensor m = Tensor.copyOf(a, new long[] {r, -r}, 2);
      pg.allReduce(m, ReduceOp.MAX);
      System.out.println("MAX " + Arrays.toString(m.toLongArray()));
      pg.allReduce(m, ReduceOp.MIN);
      System.out.println("MIN " + Arrays.toString(m.toLongArray()));
      Tensor b = Tensor.copyOf(a, new float[] {100 + r, 200 + r, 300 + r}, 3);
      pg.broadcast(b, pg.worldSize() - 1);
      System.out.println("BROADCAST " + Arrays.toString(b.toFloatArray()));
      pg.barrier();
      Tensor g = pg.allGather(a, Tensor.copyOf(a, new float[] {r, r + 0.5f}, 2));
      System.out.println("GATHER " + Arrays.toString(g.shape()) + " " + Arrays.toString(g.toFloatArray()));
      System.out.println("METRICS " + Arrays.toString(pg.allReduce(new double[] {r, 1}, ReduceOp.SUM)));
    }
  }

  /** Runs {@code call}, printing "MISMATCH name: code message" for the exception it must throw. */
  private static void expectMismatch(String name, Runnable call) {
    try {
      call.run();
      System.out.println("NO FAILURE " + name);
    } catch (SekitException e) {
      System.out.println("MISMATCH " + name + ": " + e.code() + " " + e.getMessage().replace('\n', ' '));
    }
  }

  private static void mismatch(ProcessGroup pg) {
    boolean odd = pg.rank() == pg.worldSize() - 1;
    try (Arena a = Arena.ofConfined()) {
      expectMismatch("allReduce shape", () -> pg.allReduce(Tensor.zeros(a, DType.FLOAT32, dev.sekit.Device.CPU,
          odd ? 1000 : 10), ReduceOp.SUM));
      expectMismatch("allReduce dtype", () -> pg.allReduce(Tensor.zeros(a, odd ? DType.FLOAT64 : DType.FLOAT32,
          dev.sekit.Device.CPU, 64), ReduceOp.SUM));
      expectMismatch("allReduce op", () -> pg.allReduce(Tensor.zeros(a, DType.FLOAT32, dev.sekit.Device.CPU, 4),
          odd ? ReduceOp.MAX : ReduceOp.SUM));
      expectMismatch("allGather shape", () -> pg.allGather(a, Tensor.zeros(a, DType.FLOAT32, dev.sekit.Device.CPU,
          odd ? 3 : 2, 500)));
      expectMismatch("broadcast shape", () -> pg.broadcast(Tensor.zeros(a, DType.FLOAT32, dev.sekit.Device.CPU,
          odd ? 4096 : 16), 0));
      expectMismatch("broadcast root", () -> pg.broadcast(Tensor.zeros(a, DType.FLOAT32, dev.sekit.Device.CPU, 8),
          odd ? 1 : 0));
      expectMismatch("DDP model", () -> DistributedDataParallel.of(a, pg, network(a, odd ? 16 : 8, 3)));
      expectMismatch("DDP frozen", () -> {
        Module net = network(a, 8, 3);
        if (odd) {
          net.namedParameters().values().iterator().next().requiresGrad(false);
        }
        DistributedDataParallel.of(a, pg, net);
      });
      Tensor t = Tensor.copyOf(a, new float[] {pg.rank() + 1}, 1);
      pg.allReduce(t, ReduceOp.SUM);
      System.out.println("AFTER " + Arrays.toString(t.toFloatArray()));
      DistributedDataParallel.of(a, pg, network(a, 8, 3)).close();
      System.out.println("DDP OK");
    }
  }

  /** The fixture's network: SE, eSE and a classifier head, as ddp_fixtures.py builds it. */
  static Module network(Arena arena, int channels, int classes) {
    return Sequential.of(arena, SqueezeExcitation.of(arena, channels), EffectiveSqueezeExcitation.of(arena, channels),
        ClassifierHead.of(arena, channels, classes, 0.0));
  }

  /** Rows [from, from + n) of step k of x [steps, batch, C, H, W] (or of y [steps, batch]). */
  static Tensor rows(Arena a, Tensor all, int k, int from, int n) {
    long[] s = all.shape();
    long per = 1;
    for (int i = 2; i < s.length; i++) {
      per *= s[i];
    }
    long elem = all.dtype() == DType.INT64 ? 8 : 4;
    MemorySegment data = all.data().asSlice(((k * s[1]) + from) * per * elem, n * per * elem);
    long[] shape = new long[s.length - 1];
    shape[0] = n;
    System.arraycopy(s, 2, shape, 1, s.length - 2);
    return Tensor.copyOf(a, data, all.dtype(), shape);
  }

  /**
   * {@code steps} training steps on this rank's rows [rank·per, (rank+1)·per) of each batch of
   * x [steps, batch, ...] and y [steps, batch], through {@code ddp} when not null.
   */
  static void sgdSteps(Module net, Optimizer opt, DistributedDataParallel ddp, Tensor x, Tensor y, int steps, int rank,
      int per) {
    for (int k = 0; k < steps; k++) {
      try (Arena step = Arena.ofConfined()) {
        Tensor xb = rows(step, x, k, rank * per, per);
        Tensor yb = rows(step, y, k, rank * per, per);
        Tensor logits = ddp == null ? net.forward(step, xb, true) : ddp.forward(step, xb, true);
        Tensor loss = Losses.crossEntropy(logits, yb, 0);
        opt.zeroGrad();
        loss.backward();
        opt.step();
      }
    }
  }

  /** SGD steps with the fixture's data and hyper-parameters; world 1 uses the whole batches. */
  static Map<String, Tensor> trainSteps(Arena arena, Path fixture, ProcessGroup pg, boolean loadInit)
      throws Exception {
    SafeTensors st = SafeTensors.open(arena, fixture);
    Map<String, String> meta = st.metadata();
    int steps = Integer.parseInt(meta.get("steps"));
    int batch = Integer.parseInt(meta.get("batch"));
    int world = pg == null ? 1 : pg.worldSize();
    int rank = pg == null ? 0 : pg.rank();
    Module net = network(arena, Integer.parseInt(meta.get("channels")), Integer.parseInt(meta.get("classes")));
    if (loadInit) {
      net.loadStateDict(st.tensors("init."));
    }
    Optimizer opt = Optimizer.sgd(net, Double.parseDouble(meta.get("lr")))
        .momentum(Double.parseDouble(meta.get("momentum"))).weightDecay(Double.parseDouble(meta.get("weight_decay")))
        .build(arena);
    DistributedDataParallel ddp = pg == null ? null : DistributedDataParallel.of(arena, pg, net);
    Tensor x = st.tensors().get("x");
    Tensor y = st.tensors().get("y");
    sgdSteps(net, opt, ddp, x, y, steps, rank, batch / world);
    if (ddp != null) {
      DistributedDataParallel.Stats s = ddp.stats();
      System.out.println("STATS buckets " + s.buckets() + " reductions " + s.reductions());
    }
    return net.stateDict();
  }

  /** A network with BatchNorm in three places (two ConvNormAct and a channel-last input). */
  static Module bnNetwork(Arena arena) {
    return Sequential.of(arena, dev.sekit.nn.ConvNormAct.of(arena, 3, 8, 3, 1), dev.sekit.nn.ConvNormAct.of(arena, 8, 16,
        3, 2), EffectiveSqueezeExcitation.of(arena, 16), ClassifierHead.of(arena, 16, 5, 0.0));
  }

  static final int BN_STEPS = 4;
  static final int BN_BATCH = 8;

  /**
   * SGD steps of {@link #bnNetwork} (created after {@code manualSeed(5)}, channels-last) on a
   * fixed random batch sequence; with a group, on this rank's share of each batch, SyncBatchNorm
   * when {@code sync}. Returns the state dict (weights and running statistics).
   */
  static Map<String, Tensor> bnSteps(Arena arena, ProcessGroup pg, boolean sync) {
    int world = pg == null ? 1 : pg.worldSize();
    int rank = pg == null ? 0 : pg.rank();
    dev.sekit.Sekit.manualSeed(5 + 1000L * rank); // rank 1 starts from other weights: DDP broadcasts rank 0's
    Module net = bnNetwork(arena);
    net.to(dev.sekit.MemoryFormat.CHANNELS_LAST);
    if (sync) {
      System.out.println("SYNCBN " + SyncBatchNorm.convert(net, pg));
    }
    Optimizer opt = Optimizer.sgd(net, 0.1).momentum(0.9).build(arena);
    DistributedDataParallel ddp = pg == null ? null : DistributedDataParallel.of(arena, pg, net);
    java.util.Random rnd = new java.util.Random(77);
    float[] pixels = new float[BN_STEPS * BN_BATCH * 3 * 9 * 9];
    for (int i = 0; i < pixels.length; i++) {
      pixels[i] = (float) (1.5 * rnd.nextGaussian() + 0.3); // statistics away from 0 and 1
    }
    Tensor x = Tensor.copyOf(arena, pixels, BN_STEPS, BN_BATCH, 3, 9, 9);
    long[] labels = new long[BN_STEPS * BN_BATCH];
    for (int i = 0; i < labels.length; i++) {
      labels[i] = rnd.nextInt(5);
    }
    Tensor y = Tensor.copyOf(arena, labels, BN_STEPS, BN_BATCH);
    sgdSteps(net, opt, ddp, x, y, BN_STEPS, rank, BN_BATCH / world);
    if (ddp != null) {
      ddp.close();
    }
    return net.stateDict();
  }

  private static void batchNorm(ProcessGroup pg, Path out) throws Exception {
    for (boolean sync : new boolean[] {true, false}) {
      try (Arena arena = Arena.ofConfined()) {
        Map<String, Tensor> state = bnSteps(arena, pg, sync);
        String name = out.getFileName().toString().replace(".safetensors",
            (sync ? "-sync" : "-plain") + "-rank" + pg.rank() + ".safetensors");
        SafeTensors.write(out.resolveSibling(name), new LinkedHashMap<>(state), Map.of());
      }
    }
  }

  private static void train(ProcessGroup pg, Path fixture, Path out) throws Exception {
    try (Arena arena = Arena.ofConfined()) {
      dev.sekit.Sekit.manualSeed(1000 + pg.rank()); // rank 1 starts from other weights
      Map<String, Tensor> state = trainSteps(arena, fixture, pg, pg.rank() == 0);
      String name = out.getFileName().toString().replace(".safetensors", "-rank" + pg.rank() + ".safetensors");
      SafeTensors.write(out.resolveSibling(name), new LinkedHashMap<>(state), Map.of());
    }
  }

  /** One epoch of a Trainer whose checkpoint rank 0 cannot write (its folder is a file there). */
  private static void checkpoint(ProcessGroup pg, Path dir) throws Exception {
    Path blocked = dir.resolve("rank0-blocked");
    if (pg.rank() == 0) {
      Files.writeString(blocked, "a file where the checkpoint's folder should be");
    }
    Path images = Path.of("/usr/share/datasets/fashion-mnist");
    try (InMemoryDataset train = InMemoryDataset.fromIdx(images.resolve("train-images-idx3-ubyte.gz"),
        images.resolve("train-labels-idx1-ubyte.gz"), 10, 0.2860, 0.3530, 128); Arena arena = Arena.ofConfined()) {
      Module net = SmallVoVNet.build(arena, dev.sekit.nn.Attention.ESE, 1, 10);
      Trainer t = new Trainer(arena, net, train, null, Trainer.Options.builder().epochs(2).batchSize(32).build(), pg);
      t.fit(blocked.resolve("checkpoint.safetensors"), null, null);
      System.out.println("SAVED");
    } catch (IOException e) {
      System.out.println("CHECKPOINT FAILED: " + e.getMessage());
    }
  }

  private static void endless(ProcessGroup pg, boolean syncBatchNorm) {
    try (Arena arena = Arena.ofConfined()) {
      Module net = syncBatchNorm ? bnNetwork(arena) : network(arena, 8, 10);
      if (syncBatchNorm) {
        SyncBatchNorm.convert(net, pg);
      }
      Optimizer opt = Optimizer.sgd(net, 0.01).build(arena);
      DistributedDataParallel ddp = DistributedDataParallel.of(arena, pg, net);
      for (int k = 0; ; k++) {
        try (Arena step = Arena.ofConfined()) {
          Tensor x = Tensor.randn(step, DType.FLOAT32, dev.sekit.Device.CPU, 4, syncBatchNorm ? 3 : 8, 5, 5);
          Tensor y = Tensor.copyOf(step, new long[] {1, 2, 3, 4}, 4);
          Tensor loss = Losses.crossEntropy(ddp.forward(step, x, true), y, 0);
          opt.zeroGrad();
          loss.backward();
          opt.step();
          System.out.println("STEP " + k);
          Thread.sleep(20);
        }
      }
    } catch (SekitException e) {
      System.out.println("FAILED " + e.code() + ": " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
