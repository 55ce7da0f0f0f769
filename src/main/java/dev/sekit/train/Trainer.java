package dev.sekit.train;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.reflect.TypeToken;
import dev.sekit.Device;
import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.Tensor;
import dev.sekit.data.Augment;
import dev.sekit.data.BatchLoader;
import dev.sekit.data.Dataset;
import dev.sekit.data.EpochOrder;
import dev.sekit.dist.DistributedDataParallel;
import dev.sekit.dist.ProcessGroup;
import dev.sekit.dist.SyncBatchNorm;
import dev.sekit.dist.ReduceOp;
import dev.sekit.nn.Module;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.BooleanSupplier;

/**
 * A classification training loop on sekit: SGD with Nesterov momentum (or AdamW), parameter
 * groups (frozen layers, a lower rate for a pretrained backbone: {@link ParamGroups}), cosine
 * schedule with warm-up, label smoothing, gradient clipping, random crop + flip, evaluation
 * (loss, top-1, top-5) after every epoch, and checkpoints that resume bit for bit. Batches
 * are read ahead by a {@link BatchLoader} on threads of their own. With {@code channelsLast} (the default) the
 * model and its inputs are laid out NHWC, which makes CPU convolutions faster.
 *
 * <pre>{@code
 * Trainer.Options opts = Trainer.Options.builder().epochs(6).batchSize(128).build();
 * Trainer t = new Trainer(arena, model, trainData, testData, opts);
 * Trainer.Result r = t.fit(Path.of("run/checkpoint.safetensors"), listener, () -> false);
 * }</pre>
 *
 * <p>Everything random is derived from the seed: the shuffle of epoch e
 * ({@link EpochOrder}), the augmentation and dropout of step s. So a run is repeatable on the
 * CPU (same thread count), and a run stopped and resumed from its checkpoint ends with
 * exactly the same weights as one that was not.
 */
public final class Trainer {

  /** The optimizers a trainer can build. */
  public enum OptimizerKind {
    /** torch.optim.SGD with Nesterov momentum (when momentum > 0). */
    SGD,
    /** torch.optim.AdamW. */
    ADAMW
  }

  /**
   * Hyper-parameters. {@link #DEFAULTS} are the Fashion-MNIST demo's; build others with
   * {@link #builder()} (which starts from them) or {@link #toBuilder()}. {@link #FINETUNE}
   * are settings for fine-tuning a pretrained VoVNet with a new head ({@link #finetuning()}).
   */
  public static final class Options {
    /** The demo's settings. */
    public static final Options DEFAULTS = new Builder().build();

    /** Learning rate of the backbone (everything but {@code head.*}) over the head's in {@link #FINETUNE}. */
    public static final double FINETUNE_BACKBONE_LR_SCALE = 0.1;

    /**
     * Fine-tuning settings: 10 epochs, batch 32, SGD with Nesterov momentum at lr 0.01 for the
     * head and {@link #FINETUNE_BACKBONE_LR_SCALE} times that for the backbone, weight decay
     * 1e-4, one epoch of warm-up, label smoothing 0.1, flips but no padded crop (the images'
     * own transform crops). The rest as {@link #DEFAULTS}.
     */
    public static final Options FINETUNE = new Builder().epochs(10).batchSize(32).lr(0.01).weightDecay(1e-4)
        .warmupEpochs(1).randomCrop(0, 0).evalBatch(100)
        .paramGroups(ParamGroups.builder().backbone(FINETUNE_BACKBONE_LR_SCALE, "head").build()).build();

    private final int epochs;
    private final int batchSize;
    private final OptimizerKind optimizer;
    private final double lr;
    private final double momentum;
    private final double weightDecay;
    private final double labelSmoothing;
    private final double warmupEpochs;
    private final double clipNorm;
    private final int cropPad;
    private final double cropFill;
    private final boolean flip;
    private final long seed;
    private final int evalBatch;
    private final boolean channelsLast;
    private final int loaderThreads;
    private final ParamGroups paramGroups;
    private final boolean syncBatchNorm;

    private Options(Builder b) {
      this.epochs = b.epochs;
      this.batchSize = b.batchSize;
      this.optimizer = b.optimizer;
      this.lr = b.lr;
      this.momentum = b.momentum;
      this.weightDecay = b.weightDecay;
      this.labelSmoothing = b.labelSmoothing;
      this.warmupEpochs = b.warmupEpochs;
      this.clipNorm = b.clipNorm;
      this.cropPad = b.cropPad;
      this.cropFill = b.cropFill;
      this.flip = b.flip;
      this.seed = b.seed;
      this.evalBatch = b.evalBatch;
      this.channelsLast = b.channelsLast;
      this.loaderThreads = b.loaderThreads;
      this.paramGroups = b.paramGroups;
      this.syncBatchNorm = b.syncBatchNorm;
    }

    /** A builder that starts from {@link #DEFAULTS}. */
    public static Builder builder() {
      return new Builder();
    }

    /** A builder that starts from {@link #FINETUNE}. */
    public static Builder finetuning() {
      return FINETUNE.toBuilder();
    }

    /** A builder that starts from these options. */
    public Builder toBuilder() {
      Builder b = new Builder();
      b.epochs = epochs;
      b.batchSize = batchSize;
      b.optimizer = optimizer;
      b.lr = lr;
      b.momentum = momentum;
      b.weightDecay = weightDecay;
      b.labelSmoothing = labelSmoothing;
      b.warmupEpochs = warmupEpochs;
      b.clipNorm = clipNorm;
      b.cropPad = cropPad;
      b.cropFill = cropFill;
      b.flip = flip;
      b.seed = seed;
      b.evalBatch = evalBatch;
      b.channelsLast = channelsLast;
      b.loaderThreads = loaderThreads;
      b.paramGroups = paramGroups;
      b.syncBatchNorm = syncBatchNorm;
      return b;
    }

    public int epochs() {
      return epochs;
    }

    public int batchSize() {
      return batchSize;
    }

    public OptimizerKind optimizer() {
      return optimizer;
    }

    public double lr() {
      return lr;
    }

    public double momentum() {
      return momentum;
    }

    public double weightDecay() {
      return weightDecay;
    }

    public double labelSmoothing() {
      return labelSmoothing;
    }

    public double warmupEpochs() {
      return warmupEpochs;
    }

    public double clipNorm() {
      return clipNorm;
    }

    public int cropPad() {
      return cropPad;
    }

    public double cropFill() {
      return cropFill;
    }

    public boolean flip() {
      return flip;
    }

    public long seed() {
      return seed;
    }

    public int evalBatch() {
      return evalBatch;
    }

    public boolean channelsLast() {
      return channelsLast;
    }

    public int loaderThreads() {
      return loaderThreads;
    }

    public ParamGroups paramGroups() {
      return paramGroups;
    }

    public boolean syncBatchNorm() {
      return syncBatchNorm;
    }

    /** Options of a trainer; every setter checks its value. */
    public static final class Builder {
      private int epochs = 6;
      private int batchSize = 128;
      private OptimizerKind optimizer = OptimizerKind.SGD;
      private double lr = 0.1;
      private double momentum = 0.9;
      private double weightDecay = 5e-4;
      private double labelSmoothing = 0.1;
      private double warmupEpochs = 0.3;
      private double clipNorm = 5.0;
      private int cropPad = 2;
      private double cropFill;
      private boolean flip = true;
      private long seed;
      private int evalBatch = 1000;
      private boolean channelsLast = true;
      private int loaderThreads = 1;
      private ParamGroups paramGroups = ParamGroups.ALL;
      private boolean syncBatchNorm;

      private Builder() {}

      public Builder epochs(int v) {
        this.epochs = atLeast("epochs", v, 1);
        return this;
      }

      public Builder batchSize(int v) {
        this.batchSize = atLeast("batchSize", v, 2);
        return this;
      }

      /** SGD (Nesterov when momentum > 0, the default) or AdamW (momentum unused). */
      public Builder optimizer(OptimizerKind v) {
        this.optimizer = Objects.requireNonNull(v, "optimizer");
        return this;
      }

      /** Peak learning rate of the cosine schedule. */
      public Builder lr(double v) {
        if (!(v > 0) || Double.isInfinite(v)) {
          throw new IllegalArgumentException("lr must be a finite number > 0, got " + v);
        }
        this.lr = v;
        return this;
      }

      public Builder momentum(double v) {
        this.momentum = inRange("momentum", v, 0, 1);
        return this;
      }

      public Builder weightDecay(double v) {
        this.weightDecay = inRange("weightDecay", v, 0, Double.MAX_VALUE);
        return this;
      }

      public Builder labelSmoothing(double v) {
        if (!(v >= 0 && v < 1)) {
          throw new IllegalArgumentException("labelSmoothing must be in [0, 1), got " + v);
        }
        this.labelSmoothing = v;
        return this;
      }

      /** Epochs of linear warm-up (fractions allowed). */
      public Builder warmupEpochs(double v) {
        this.warmupEpochs = inRange("warmupEpochs", v, 0, Double.MAX_VALUE);
        return this;
      }

      /** Largest global gradient norm; 0 turns clipping off. */
      public Builder clipNorm(double v) {
        this.clipNorm = inRange("clipNorm", v, 0, Double.MAX_VALUE);
        return this;
      }

      /** Random crop after padding each side by {@code pad} with {@code fill} (0 turns it off). */
      public Builder randomCrop(int pad, double fill) {
        this.cropPad = atLeast("crop pad", pad, 0);
        this.cropFill = fill;
        return this;
      }

      /** Random horizontal flips. */
      public Builder flip(boolean v) {
        this.flip = v;
        return this;
      }

      public Builder seed(long v) {
        this.seed = v;
        return this;
      }

      /** Batch size of evaluation. */
      public Builder evalBatch(int v) {
        this.evalBatch = atLeast("evalBatch", v, 1);
        return this;
      }

      /** Lay the model and its inputs out NHWC (default; faster CPU convolutions). */
      public Builder channelsLast(boolean v) {
        this.channelsLast = v;
        return this;
      }

      /** Threads that read batches ahead of the model. */
      public Builder loaderThreads(int v) {
        this.loaderThreads = atLeast("loaderThreads", v, 1);
        return this;
      }

      /** Frozen parameters and groups with their own learning rate (default: none, one group). */
      public Builder paramGroups(ParamGroups v) {
        this.paramGroups = Objects.requireNonNull(v, "paramGroups");
        return this;
      }

      /**
       * On more than one rank, BatchNorm normalises with the statistics of the whole global
       * batch ({@link dev.sekit.dist.SyncBatchNorm}); default false: each rank's own share, as
       * PyTorch's BatchNorm under DDP. No effect in one process.
       */
      public Builder syncBatchNorm(boolean v) {
        this.syncBatchNorm = v;
        return this;
      }

      public Options build() {
        return new Options(this);
      }

      private static int atLeast(String name, int v, int min) {
        if (v < min) {
          throw new IllegalArgumentException(name + " must be >= " + min + ", got " + v);
        }
        return v;
      }

      private static double inRange(String name, double v, double lo, double hi) {
        if (!(v >= lo && v <= hi)) {
          throw new IllegalArgumentException(name + " must be in [" + lo + ", " + hi + "], got " + v);
        }
        return v;
      }
    }
  }

  /**
   * One epoch's numbers; the test ones are NaN without test data. {@code testAccuracy} is
   * top-1, {@code testTop5} top-5 (every class counts when there are fewer than 5).
   */
  public record EpochStats(int epoch, double trainLoss, double trainAccuracy, double testLoss,
      double testAccuracy, double testTop5, double samplesPerSecond, double seconds) {}

  /** Mean loss (without label smoothing), top-1 and top-5 accuracy of a model on a data set. */
  public record Evaluation(double loss, double top1, double top5) {}

  /**
   * Hooks into the loop, all called on the training thread: progress and logging, checkpoints,
   * and early stopping ({@link #stopAfter}).
   */
  public interface Listener {
    default void onEpochStart(int epoch, int steps) {}

    default void onStep(int epoch, int stepInEpoch, double loss, double accuracy, double samplesPerSecond) {}

    default void onEpochEnd(EpochStats stats) {}

    default void onCheckpoint(Path file, boolean interrupted) {}

    /** Asked after each epoch (and its checkpoint): true ends training there (early stopping). */
    default boolean stopAfter(EpochStats stats) {
      return false;
    }
  }

  /** The outcome of {@link #fit}. */
  public record Result(List<EpochStats> history, boolean completed, long steps) {
    /** Top-1 test accuracy after the last epoch. */
    public double finalTestAccuracy() {
      return history.isEmpty() ? Double.NaN : history.get(history.size() - 1).testAccuracy();
    }

    /** Top-5 test accuracy after the last epoch. */
    public double finalTestTop5() {
      return history.isEmpty() ? Double.NaN : history.get(history.size() - 1).testTop5();
    }
  }

  private final Module model;
  private final Options opts;
  private final Optimizer optimizer;
  private final CosineSchedule schedule;
  private final int stepsPerEpoch;
  private final Dataset train;
  private final Dataset test;
  private final Device device;
  private final List<EpochStats> history = new ArrayList<>();
  private final ProcessGroup group;
  private final DistributedDataParallel ddp;
  private final int rank;
  private final int world;
  private final int localBatch;
  private long globalStep;

  /**
   * @param arena owns the optimizer (the caller closes it)
   * @param test evaluated after every epoch; may be null
   */
  public Trainer(Arena arena, Module model, Dataset train, Dataset test, Options options) {
    this(arena, model, train, test, options, null);
  }

  /**
   * A data-parallel trainer: this process is one rank of {@code group}. The batch size of the
   * options is the global one: each rank trains on {@code batchSize / worldSize} samples of
   * its shard of each epoch ({@link EpochOrder#shard}), the model is wrapped in a
   * {@link DistributedDataParallel} (gradients averaged over the ranks), the epoch metrics
   * and evaluation are reduced over the ranks, and only rank 0 writes checkpoints. Since every
   * rank holds the same weights and optimizer state, a checkpoint resumes at any world size.
   *
   * @param group null (or a group of one) trains in this process alone
   */
  public Trainer(Arena arena, Module model, Dataset train, Dataset test, Options options, ProcessGroup group) {
    Objects.requireNonNull(arena, "arena");
    this.model = Objects.requireNonNull(model, "model");
    this.train = Objects.requireNonNull(train, "train");
    this.test = test;
    this.opts = Objects.requireNonNull(options, "options");
    this.world = group == null ? 1 : group.worldSize();
    this.rank = group == null ? 0 : group.rank();
    if (opts.batchSize() % world != 0) {
      throw new IllegalArgumentException("the batch size " + opts.batchSize() + " is the global one and must be a "
          + "multiple of the world size " + world);
    }
    this.localBatch = opts.batchSize() / world;
    int shard = (train.size() + world - 1) / world; // the length of EpochOrder.shard's shards
    this.stepsPerEpoch = shard / localBatch;
    if (stepsPerEpoch < 1) {
      throw new IllegalArgumentException("the training data (" + train.size() + " samples) is smaller than a batch ("
          + opts.batchSize() + ")");
    }
    this.device = model.device();
    this.optimizer = opts.optimizer() == OptimizerKind.SGD
        ? Optimizer.sgd(model, opts.lr()).momentum(opts.momentum()).nesterov(opts.momentum() > 0)
            .weightDecay(opts.weightDecay()).paramGroups(opts.paramGroups()).build(arena)
        : Optimizer.adamW(model, opts.lr()).weightDecay(opts.weightDecay()).paramGroups(opts.paramGroups())
            .build(arena);
    if (opts.channelsLast()) {
      model.to(MemoryFormat.CHANNELS_LAST);
    }
    this.group = world > 1 ? group : null;
    if (world > 1 && opts.syncBatchNorm()) {
      SyncBatchNorm.convert(model, group);
    }
    // With SyncBatchNorm every rank's running statistics are the same by construction: no
    // buffer broadcast before each forward.
    this.ddp = world > 1
        ? DistributedDataParallel.builder(group, model).broadcastBuffers(!opts.syncBatchNorm()).build(arena)
        : null;
    long total = (long) stepsPerEpoch * opts.epochs();
    long warmup = Math.min(total - 1, Math.round(opts.warmupEpochs() * stepsPerEpoch));
    this.schedule = new CosineSchedule(opts.lr(), 0.0, warmup, total);
  }

  public Optimizer optimizer() {
    return optimizer;
  }

  public int stepsPerEpoch() {
    return stepsPerEpoch;
  }

  /** The data-parallel wrapper of the model, when this trainer runs on more than one rank. */
  public java.util.Optional<DistributedDataParallel> distributed() {
    return java.util.Optional.ofNullable(ddp);
  }

  /**
   * Restores model, optimizer and position from a checkpoint written by this class. The
   * checkpoint is checked first (its seed, step and history, its keys, shapes and dtypes);
   * when anything does not fit, nothing changes.
   *
   * @throws IllegalArgumentException naming what does not fit; the model, the optimizer and
   *     the trainer's position are unchanged then
   */
  public void resume(Path checkpoint) throws IOException {
    long[] step = new long[1];
    List<EpochStats> restored = new ArrayList<>();
    Checkpoint.load(checkpoint, model, optimizer, m -> {
      for (String key : List.of("global_step", "seed", "history")) {
        if (!m.containsKey(key)) {
          throw new IllegalArgumentException(checkpoint + " is not a checkpoint of this trainer: no \"" + key + "\"");
        }
      }
      long savedSeed = metadataLong(checkpoint, m, "seed");
      if (savedSeed != opts.seed()) {
        throw new IllegalArgumentException("the checkpoint was trained with seed " + savedSeed
            + " but this run uses seed " + opts.seed());
      }
      step[0] = metadataLong(checkpoint, m, "global_step");
      if (step[0] < 0) {
        throw new IllegalArgumentException(checkpoint + ": global_step must be >= 0, got " + step[0]
            + " (a damaged checkpoint: resume from another one)");
      }
      restored.addAll(history(checkpoint, m.get("history")));
    });
    globalStep = step[0];
    history.clear();
    history.addAll(restored);
  }

  private static long metadataLong(Path checkpoint, Map<String, String> meta, String key) {
    String v = meta.get(key);
    try {
      return Long.parseLong(v.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(checkpoint + ": \"" + key + "\" must be an integer, got '" + abbreviate(v)
          + "' (a damaged checkpoint: resume from another one)");
    }
  }

  private static List<EpochStats> history(Path checkpoint, String json) {
    List<EpochStats> h;
    try {
      h = new Gson().fromJson(json, new TypeToken<List<EpochStats>>() {}.getType());
    } catch (RuntimeException e) { // JsonParseException, or a value of the wrong type
      throw new IllegalArgumentException(checkpoint + ": \"history\" is not a list of epoch statistics: "
          + abbreviate(String.valueOf(e.getMessage())) + " (a damaged checkpoint: resume from another one)");
    }
    if (h == null || h.contains(null)) {
      throw new IllegalArgumentException(checkpoint + ": \"history\" must be a list of epoch statistics, got '"
          + abbreviate(json) + "' (a damaged checkpoint: resume from another one)");
    }
    return h;
  }

  private static String abbreviate(String s) {
    return s.length() <= 80 ? s : s.substring(0, 77) + "...";
  }

  /**
   * Trains until the configured epochs are done, a listener stops it early, or {@code stop}
   * says so (checked after every step, or with several ranks every 16 steps and at each
   * epoch's end, where the ranks agree; then a checkpoint is written, when {@code checkpoint}
   * is not null).
   */
  public Result fit(Path checkpoint, Listener listener, BooleanSupplier stop) throws IOException {
    Listener l = listener == null ? new Listener() {} : listener;
    BooleanSupplier s = stop == null ? () -> false : stop;
    model.train();
    while (globalStep < (long) stepsPerEpoch * opts.epochs()) {
      int epoch = (int) (globalStep / stepsPerEpoch);
      int first = (int) (globalStep % stepsPerEpoch);
      l.onEpochStart(epoch, stepsPerEpoch);
      train.setEpoch(epoch); // a data set with random transforms draws this epoch's (ImageFolder)
      double lossSum = 0;
      long correct = 0;
      long seen = 0;
      long t0 = System.nanoTime();
      try (BatchLoader loader = new BatchLoader(train, EpochOrder.shard(train.size(), opts.seed(), epoch, rank, world),
          localBatch, true, opts.loaderThreads())) {
        loader.skip(first);
        for (int b = first; b < stepsPerEpoch; b++) {
          double[] lc;
          try (BatchLoader.Batch batch = loader.next()) {
            lc = step(batch);
          }
          lossSum += lc[0] * localBatch;
          correct += (long) lc[1];
          seen += localBatch;
          globalStep++;
          double secs = (System.nanoTime() - t0) / 1e9;
          l.onStep(epoch, b, lossSum / seen, (double) correct / seen, seen * world / secs);
          if ((group == null || globalStep % STOP_POLL_STEPS == 0) && stopRequested(s)
              && globalStep < (long) stepsPerEpoch * opts.epochs()) {
            if (checkpoint != null) {
              save(checkpoint);
              l.onCheckpoint(checkpoint, true);
            }
            return new Result(List.copyOf(history), false, globalStep);
          }
        }
      }
      double secs = (System.nanoTime() - t0) / 1e9;
      if (group != null) { // the epoch's numbers over every rank
        double[] sums = group.allReduce(new double[] {lossSum, correct, seen}, ReduceOp.SUM);
        lossSum = sums[0];
        correct = Math.round(sums[1]);
        seen = Math.round(sums[2]);
      }
      Evaluation ev = test == null ? new Evaluation(Double.NaN, Double.NaN, Double.NaN) : evaluate(test);
      EpochStats st = new EpochStats(epoch + 1, lossSum / seen, (double) correct / seen, ev.loss(), ev.top1(),
          ev.top5(), seen / secs, secs);
      history.add(st);
      l.onEpochEnd(st);
      if (checkpoint != null) {
        save(checkpoint);
        l.onCheckpoint(checkpoint, false);
      }
      // The listener is asked at every epoch's end. `stop` was asked after this epoch's last
      // step already, unless several ranks are between polls: then this vote is where they
      // agree on it too (one collective for both).
      boolean mine = l.stopAfter(st);
      if (group != null && globalStep % STOP_POLL_STEPS != 0) {
        mine |= s.getAsBoolean();
      }
      if (anyRank(mine) && globalStep < (long) stepsPerEpoch * opts.epochs()) {
        return new Result(List.copyOf(history), false, globalStep);
      }
    }
    return new Result(List.copyOf(history), true, globalStep);
  }

  private double[] step(BatchLoader.Batch batch) {
    try (Arena step = Arena.ofConfined()) {
      Tensor x = onDevice(step, batch.inputs(step));
      Tensor y = onDevice(step, batch.labels(step));
      if (opts.cropPad() > 0 || opts.flip()) {
        x = Augment.randomCropFlip(step, x, opts.cropPad(), opts.cropFill(), opts.flip(),
            perRank(opts.seed() * 1_000_003L + globalStep));
      }
      x = layout(step, x);
      Sekit.manualSeed(perRank(opts.seed() * 7_919L + globalStep)); // dropout, if any
      Tensor logits = ddp != null ? ddp.forward(step, x, true) : model.forward(step, x, true);
      Tensor loss = Losses.crossEntropy(logits, y, opts.labelSmoothing());
      optimizer.zeroGrad();
      loss.backward();
      if (opts.clipNorm() > 0) {
        model.clipGradNorm(opts.clipNorm());
      }
      optimizer.setLearningRate(schedule.at(globalStep));
      optimizer.step();
      return new double[] {loss.item(), Losses.countCorrect(logits, y)};
    }
  }

  /** A seed of its own for each rank (the same as alone when there is one). */
  private long perRank(long seed) {
    return seed * world + rank;
  }

  /**
   * With several ranks, how often (in steps) they agree on a stop request: each agreement is
   * a collective that makes every rank wait for the slowest, so not every step.
   */
  private static final int STOP_POLL_STEPS = 16;

  /** Whether {@code stop} says so; with several ranks, whether it says so on any (all stop together). */
  private boolean stopRequested(BooleanSupplier stop) {
    return anyRank(stop.getAsBoolean());
  }

  /** {@code mine}, or with several ranks whether any rank's is true (a collective: every rank calls it). */
  private boolean anyRank(boolean mine) {
    if (group == null) {
      return mine;
    }
    return group.allReduce(new double[] {mine ? 1 : 0}, ReduceOp.MAX)[0] > 0;
  }

  private Tensor onDevice(Arena a, Tensor t) {
    return device.isCpu() ? t : t.to(a, t.dtype(), device);
  }

  private Tensor layout(Arena a, Tensor x) {
    return opts.channelsLast() ? x.contiguous(a, MemoryFormat.CHANNELS_LAST) : x;
  }

  /**
   * Mean loss (without label smoothing), top-1 and top-5 accuracy on {@code data}, in eval
   * mode; top-k as timm's {@code accuracy()} (torch.topk's choice among ties). With several
   * ranks each evaluates every worldSize-th sample and the sums are reduced.
   */
  public Evaluation evaluate(Dataset data) {
    Objects.requireNonNull(data, "data");
    model.eval();
    double loss = 0;
    long correct = 0;
    long correct5 = 0;
    int[] inOrder = new int[Math.max(0, (data.size() - rank + world - 1) / world)];
    for (int i = 0; i < inOrder.length; i++) {
      inOrder[i] = rank + i * world;
    }
    try {
      if (inOrder.length > 0) {
        try (BatchLoader loader = new BatchLoader(data, inOrder, opts.evalBatch(), false, opts.loaderThreads())) {
          for (int k = 0; k < loader.batches(); k++) {
            try (BatchLoader.Batch b = loader.next(); Arena a = Arena.ofConfined()) {
              Tensor y = onDevice(a, b.labels(a));
              Tensor logits = model.forward(a, layout(a, onDevice(a, b.inputs(a))), false);
              loss += Losses.crossEntropy(logits, y, 0).item() * b.size();
              long[] c = Losses.countCorrectTopK(logits, y, 1, 5);
              correct += c[0];
              correct5 += c[1];
            }
          }
        }
      }
    } finally {
      model.train();
    }
    if (group != null) {
      double[] sums = group.allReduce(new double[] {loss, correct, correct5}, ReduceOp.SUM);
      loss = sums[0];
      correct = Math.round(sums[1]);
      correct5 = Math.round(sums[2]);
    }
    return new Evaluation(loss / data.size(), (double) correct / data.size(), (double) correct5 / data.size());
  }

  /**
   * Writes the checkpoint on rank 0 only (the ranks hold the same state). With several ranks,
   * every rank then learns whether it was written: a failed save fails every rank at once,
   * instead of leaving the others to go on as if it were written (and to wait for rank 0 in
   * the next collective).
   */
  private void save(Path file) throws IOException {
    Throwable failed = null;
    if (rank == 0) {
      try {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("global_step", Long.toString(globalStep));
        meta.put("epoch", Long.toString(globalStep / stepsPerEpoch));
        meta.put("seed", Long.toString(opts.seed()));
        Gson gson = new GsonBuilder().serializeSpecialFloatingPointValues().create();
        meta.put("options", gson.toJson(opts));
        meta.put("history", gson.toJson(history));
        Path dir = file.toAbsolutePath().getParent();
        if (dir != null) {
          Files.createDirectories(dir);
        }
        Checkpoint.save(file, model, optimizer, meta);
      } catch (IOException | RuntimeException | Error e) {
        failed = e;
      }
    }
    if (group != null) {
      try {
        if (anyRank(failed != null) && rank != 0) {
          throw new IOException("rank 0 failed to write the checkpoint " + file + " (rank 0 reports why)");
        }
      } catch (RuntimeException e) {
        if (failed == null) {
          throw e;
        }
        failed.addSuppressed(e); // the save's own failure is the one to report
      }
    }
    if (failed instanceof IOException e) {
      throw e;
    } else if (failed instanceof RuntimeException e) {
      throw e;
    } else if (failed instanceof Error e) {
      throw e;
    }
  }
}
