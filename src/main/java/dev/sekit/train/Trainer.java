package dev.sekit.train;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import com.google.gson.Gson;
import com.google.gson.reflect.TypeToken;
import dev.sekit.DType;
import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.data.FashionMnist;
import dev.sekit.nn.Module;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.function.BooleanSupplier;

/**
 * A classification training loop on sekit: SGD with Nesterov momentum (or AdamW), cosine
 * schedule with warm-up, label smoothing, gradient clipping, random crop + flip, evaluation
 * after every epoch, and checkpoints that resume bit for bit. With {@code channelsLast} (the
 * default) the model and its inputs are laid out NHWC, which makes CPU convolutions faster.
 *
 * <p>Everything random is derived from the seed: the shuffle of epoch e, the augmentation
 * and dropout of step s. So a run is repeatable on the CPU (same thread count), and a run
 * stopped and resumed from its checkpoint ends with exactly the same weights as one that
 * was not.
 */
public final class Trainer {

  /** Hyper-parameters; {@link #defaults()} are the demo's. */
  public record Config(int epochs, int batchSize, String optimizer, double lr, double momentum,
      double weightDecay, double labelSmoothing, double warmupEpochs, double clipNorm, int cropPad,
      boolean flip, long seed, int evalBatch, boolean channelsLast) {
    public Config {
      if (epochs < 1 || batchSize < 2 || evalBatch < 1) {
        throw new IllegalArgumentException("need epochs >= 1, batchSize >= 2, evalBatch >= 1");
      }
      if (!optimizer.equals("sgd") && !optimizer.equals("adamw")) {
        throw new IllegalArgumentException("optimizer must be 'sgd' or 'adamw', got '" + optimizer + "'");
      }
      if (!(lr > 0)) {
        throw new IllegalArgumentException("lr must be > 0, got " + lr);
      }
    }

    public static Config defaults() {
      return new Config(6, 128, "sgd", 0.1, 0.9, 5e-4, 0.1, 0.3, 5.0, 2, true, 0, 1000, true);
    }

    public Config withEpochs(int e) {
      return new Config(e, batchSize, optimizer, lr, momentum, weightDecay, labelSmoothing, warmupEpochs,
          clipNorm, cropPad, flip, seed, evalBatch, channelsLast);
    }

    public Config withSeed(long s) {
      return new Config(epochs, batchSize, optimizer, lr, momentum, weightDecay, labelSmoothing, warmupEpochs,
          clipNorm, cropPad, flip, s, evalBatch, channelsLast);
    }
  }

  /** One epoch's numbers. */
  public record EpochStats(int epoch, double trainLoss, double trainAccuracy, double testLoss,
      double testAccuracy, double samplesPerSecond, double seconds) {}

  /** Progress callbacks (all on the training thread). */
  public interface Listener {
    default void onEpochStart(int epoch, int steps) {}

    default void onStep(int epoch, int stepInEpoch, double loss, double accuracy, double samplesPerSecond) {}

    default void onEpochEnd(EpochStats stats) {}

    default void onCheckpoint(Path file, boolean interrupted) {}
  }

  /** The outcome of {@link #fit}. */
  public record Result(List<EpochStats> history, boolean completed, long steps) {
    public double finalTestAccuracy() {
      return history.isEmpty() ? Double.NaN : history.get(history.size() - 1).testAccuracy();
    }
  }

  private final Module model;
  private final Config cfg;
  private final Arena arena;
  private final Optimizer optimizer;
  private final CosineSchedule schedule;
  private final int stepsPerEpoch;
  private final FashionMnist.Split train;
  private final FashionMnist.Split test;
  private final List<EpochStats> history = new ArrayList<>();
  private long globalStep;

  /**
   * @param arena owns the optimizer and the training scratch (the caller closes it)
   */
  public Trainer(Arena arena, Module model, FashionMnist.Split train, FashionMnist.Split test, Config cfg) {
    this.arena = Objects.requireNonNull(arena, "arena");
    this.model = Objects.requireNonNull(model, "model");
    this.train = Objects.requireNonNull(train, "train");
    this.test = test;
    this.cfg = Objects.requireNonNull(cfg, "cfg");
    this.stepsPerEpoch = train.size() / cfg.batchSize();
    if (stepsPerEpoch < 1) {
      throw new IllegalArgumentException("the training split (" + train.size() + ") is smaller than a batch ("
          + cfg.batchSize() + ")");
    }
    this.optimizer = cfg.optimizer().equals("sgd")
        ? Optimizer.sgd(model, cfg.lr()).momentum(cfg.momentum()).nesterov(cfg.momentum() > 0)
            .weightDecay(cfg.weightDecay()).build(arena)
        : Optimizer.adamW(model, cfg.lr()).weightDecay(cfg.weightDecay()).build(arena);
    if (cfg.channelsLast()) {
      model.to(MemoryFormat.CHANNELS_LAST);
    }
    long total = (long) stepsPerEpoch * cfg.epochs();
    long warmup = Math.min(total - 1, Math.round(cfg.warmupEpochs() * stepsPerEpoch));
    this.schedule = new CosineSchedule(cfg.lr(), 0.0, warmup, total);
  }

  public Optimizer optimizer() {
    return optimizer;
  }

  public int stepsPerEpoch() {
    return stepsPerEpoch;
  }

  /**
   * Restores model, optimizer and position from a checkpoint written by this class. The
   * checkpoint is checked first (its seed, its keys and shapes); when it does not fit,
   * nothing changes.
   */
  public void resume(Path checkpoint) throws IOException {
    Map<String, String> meta = Checkpoint.load(checkpoint, model, optimizer, m -> {
      for (String key : List.of("global_step", "seed", "history")) {
        if (!m.containsKey(key)) {
          throw new IllegalArgumentException(checkpoint + " is not a checkpoint of this trainer: no \"" + key + "\"");
        }
      }
      long savedSeed = Long.parseLong(m.get("seed"));
      if (savedSeed != cfg.seed()) {
        throw new IllegalArgumentException("the checkpoint was trained with seed " + savedSeed
            + " but this run uses seed " + cfg.seed());
      }
    });
    globalStep = Long.parseLong(meta.get("global_step"));
    history.clear();
    List<EpochStats> h = new Gson().fromJson(meta.get("history"), new TypeToken<List<EpochStats>>() {}.getType());
    history.addAll(h);
  }

  /** The permutation of epoch {@code epoch}. */
  private int[] permutation(int epoch) {
    int[] p = new int[train.size()];
    for (int i = 0; i < p.length; i++) {
      p[i] = i;
    }
    SplittableRandom r = new SplittableRandom(cfg.seed() * 0x9E3779B97F4A7C15L + epoch);
    for (int i = p.length - 1; i > 0; i--) {
      int j = r.nextInt(i + 1);
      int t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /**
   * Trains until the configured epochs are done or {@code stop} says so (checked after every
   * step; then a checkpoint is written, when {@code checkpoint} is not null).
   */
  public Result fit(Path checkpoint, Listener listener, BooleanSupplier stop) throws IOException {
    Listener l = listener == null ? new Listener() {} : listener;
    BooleanSupplier s = stop == null ? () -> false : stop;
    MemorySegment idx = arena.allocate(JAVA_LONG, cfg.batchSize());
    model.train();
    while (globalStep < (long) stepsPerEpoch * cfg.epochs()) {
      int epoch = (int) (globalStep / stepsPerEpoch);
      int first = (int) (globalStep % stepsPerEpoch);
      int[] perm = permutation(epoch);
      l.onEpochStart(epoch, stepsPerEpoch);
      double lossSum = 0;
      long correct = 0;
      long seen = 0;
      long t0 = System.nanoTime();
      for (int b = first; b < stepsPerEpoch; b++) {
        for (int i = 0; i < cfg.batchSize(); i++) {
          idx.setAtIndex(JAVA_LONG, i, perm[b * cfg.batchSize() + i]);
        }
        double[] lc = step(idx);
        lossSum += lc[0] * cfg.batchSize();
        correct += (long) lc[1];
        seen += cfg.batchSize();
        globalStep++;
        double secs = (System.nanoTime() - t0) / 1e9;
        l.onStep(epoch, b, lossSum / seen, (double) correct / seen, seen / secs);
        if (s.getAsBoolean() && globalStep < (long) stepsPerEpoch * cfg.epochs()) {
          if (checkpoint != null) {
            save(checkpoint);
            l.onCheckpoint(checkpoint, true);
          }
          return new Result(List.copyOf(history), false, globalStep);
        }
      }
      double secs = (System.nanoTime() - t0) / 1e9;
      double[] ev = test == null ? new double[] {Double.NaN, Double.NaN} : evaluate(test);
      EpochStats st = new EpochStats(epoch + 1, lossSum / seen, (double) correct / seen, ev[0], ev[1],
          seen / secs, secs);
      history.add(st);
      l.onEpochEnd(st);
      if (checkpoint != null) {
        save(checkpoint);
        l.onCheckpoint(checkpoint, false);
      }
    }
    return new Result(List.copyOf(history), true, globalStep);
  }

  private double[] step(MemorySegment idxSeg) {
    try (Arena step = Arena.ofConfined()) {
      Tensor idx = Tensor.wrap(step, idxSeg, DType.INT64, cfg.batchSize());
      Tensor x = train.images().indexSelect(step, 0, idx);
      Tensor y = train.labels().indexSelect(step, 0, idx);
      if (cfg.cropPad() > 0 || cfg.flip()) {
        x = Losses.randomCropFlip(step, x, cfg.cropPad(), FashionMnist.Split.blackValue(), cfg.flip(),
            cfg.seed() * 1_000_003L + globalStep);
      }
      x = layout(step, x);
      Sekit.manualSeed(cfg.seed() * 7_919L + globalStep); // dropout, if any
      Tensor logits = model.forward(step, x, true);
      Tensor loss = Losses.crossEntropy(logits, y, cfg.labelSmoothing());
      optimizer.zeroGrad();
      loss.backward();
      if (cfg.clipNorm() > 0) {
        model.clipGradNorm(cfg.clipNorm());
      }
      optimizer.setLearningRate(schedule.at(globalStep));
      optimizer.step();
      return new double[] {loss.item(), Losses.countCorrect(logits, y)};
    }
  }

  private Tensor layout(Arena a, Tensor x) {
    return cfg.channelsLast() ? x.contiguous(a, MemoryFormat.CHANNELS_LAST) : x;
  }

  /** Mean loss (without label smoothing) and accuracy on {@code split}, in eval mode. */
  public double[] evaluate(FashionMnist.Split split) {
    model.eval();
    double loss = 0;
    long correct = 0;
    try {
      for (int start = 0; start < split.size(); start += cfg.evalBatch()) {
        int n = Math.min(cfg.evalBatch(), split.size() - start);
        try (Arena b = Arena.ofConfined()) {
          // evaluation batches are consecutive rows: views, not gathers
          Tensor x = split.images().narrow(b, 0, start, n);
          Tensor y = split.labels().narrow(b, 0, start, n);
          Tensor logits = model.forward(b, layout(b, x), false);
          loss += Losses.crossEntropy(logits, y, 0).item() * n;
          correct += Losses.countCorrect(logits, y);
        }
      }
    } finally {
      model.train();
    }
    return new double[] {loss / split.size(), (double) correct / split.size()};
  }

  private void save(Path file) throws IOException {
    Map<String, String> meta = new LinkedHashMap<>();
    meta.put("global_step", Long.toString(globalStep));
    meta.put("epoch", Long.toString(globalStep / stepsPerEpoch));
    meta.put("seed", Long.toString(cfg.seed()));
    Gson gson = new com.google.gson.GsonBuilder().serializeSpecialFloatingPointValues().create();
    meta.put("config", gson.toJson(cfg));
    meta.put("history", gson.toJson(history));
    Path dir = file.toAbsolutePath().getParent();
    if (dir != null) {
      Files.createDirectories(dir);
    }
    Checkpoint.save(file, model, optimizer, meta);
  }
}
