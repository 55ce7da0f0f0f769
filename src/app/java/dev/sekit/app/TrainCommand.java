package dev.sekit.app;

import dev.sekit.dist.ProcessGroup;
import dev.sekit.nn.Attention;
import dev.sekit.train.Trainer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code sekit train}: trains a tiny eSE-VoVNet (or --model resnet-tiny) on Fashion-MNIST. */
@Command(name = "train", mixinStandardHelpOptions = true,
    description = "Train a small VoVNet (or ResNet) on Fashion-MNIST; writes a checkpoint, a CSV/JSON log and a PNG plot.")
final class TrainCommand implements Callable<Integer> {
  /** Exit code after Ctrl-C / SIGTERM (the JVM is already shutting down). */
  static final int INTERRUPTED = 130;

  @Mixin TrainOptions options = new TrainOptions();

  @Option(names = "--attn", description = "Attention in the blocks (OSA or residual): ese, se or none. Default: ${DEFAULT-VALUE}.")
  String attn = "ese";

  @Option(names = "--out", description = "Output directory. Default: ${DEFAULT-VALUE}.")
  Path out = Path.of("runs/fashion-mnist");

  @Option(names = "--resume", description = "Continue from OUT/checkpoint.safetensors.")
  boolean resume;

  @Option(names = "--no-progress", description = "Print one line per epoch instead of a progress bar.")
  boolean noProgress;

  @Option(names = "--nproc-per-node", description = "Train data-parallel in N worker processes on this machine "
      + "(PyTorch's c10d with Gloo), each with its share of the cores (or of --threads); their output is prefixed "
      + "with their rank. Workers started by another launcher (torchrun-style variables MASTER_ADDR, MASTER_PORT, RANK, "
      + "WORLD_SIZE, LOCAL_RANK) join the same way on one or several machines. Default: -e.")
  int nprocPerNode = 1;

  @Option(names = "--master-port", description = "Port of rank 0's rendezvous store for --nproc-per-node. "
      + "Default: a free port.")
  int masterPort;

  @Option(names = "--dist-timeout", description = "Seconds a collective may wait for the other workers before "
      + "the run fails naming the lost one. Default: -e.")
  int distTimeout = 300;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    Attention attention = TrainOptions.attention(attn);
    if (nprocPerNode < 1) {
      throw new IllegalArgumentException("--nproc-per-node must be >= 1, got " + nprocPerNode);
    }
    if (distTimeout < 1) {
      throw new IllegalArgumentException("--dist-timeout must be >= 1, got " + distTimeout);
    }
    if (nprocPerNode > 1) {
      if (ProcessGroup.launched()) {
        throw new IllegalArgumentException("--nproc-per-node in a worker that a launcher started (WORLD_SIZE is set)");
      }
      int threads = spec.commandLine().getParseResult().hasMatchedOption("--threads") ? options.common.threads
          : Runtime.getRuntime().availableProcessors();
      return Launcher.run(SekitCli.args, nprocPerNode, masterPort, threads);
    }
    try (ProcessGroup group = joinGroup()) {
      return train(attention, group);
    }
  }

  /** The group of a worker that a launcher started (null when alone). */
  private ProcessGroup joinGroup() {
    if (!ProcessGroup.launched() || "1".equals(System.getenv("WORLD_SIZE").trim())) {
      return null;
    }
    return ProcessGroup.fromEnvironment(Duration.ofSeconds(distTimeout));
  }

  private Integer train(Attention attention, ProcessGroup group) throws Exception {
    boolean lead = group == null || group.rank() == 0;
    Files.createDirectories(out);
    Path ckpt = out.resolve("checkpoint.safetensors");
    StopSignal stop = new StopSignal();
    List<Trainer.EpochStats> history = new ArrayList<>();
    try {
      if (lead) {
        System.out.printf(Locale.ROOT, "sekit train: %s with %s attention, %d epochs, batch %d, %s, %d thread(s)%s, seed %d%n",
            options.model, attn, options.common.epochs, options.common.batch, options.device, options.common.threads,
            group == null ? "" : " in each of " + group.worldSize() + " processes"
                + (options.syncBn ? " (SyncBatchNorm)" : ""), options.common.seed);
      }
      Trainer.Listener listener = lead ? new Listener(options.common.epochs, !noProgress) : new Trainer.Listener() {};
      Runs.Outcome o = Runs.run(options, attention, options.common.seed, ckpt, resume, listener, stop, group);
      history.addAll(o.result().history());
      if (!lead) {
        return o.result().completed() ? 0 : INTERRUPTED;
      }
      if (!o.result().completed()) {
        System.out.println("stopped: checkpoint written to " + ckpt + "; continue with --resume");
        writeLogs(history, o, false); // no plot: the JVM is shutting down (AWT cannot start now)
        return INTERRUPTED;
      }
      writeLogs(history, o, true);
      Trainer.EpochStats last = history.get(history.size() - 1);
      System.out.printf(Locale.ROOT, "test accuracy %.2f%% after %d epochs (%.0f s of training, %.0f samples/s, %,d parameters)%n",
          100 * last.testAccuracy(), last.epoch(), o.seconds(), last.samplesPerSecond(), o.parameters());
      if (o.ddp() != null && o.ddp().reductions() > 0) {
        System.out.printf(Locale.ROOT, "data-parallel: %d bucket(s); backward waited %.2f ms per step for gradient "
            + "reductions not hidden behind it%n", o.ddp().buckets(), 1e3 * o.ddp().waitSeconds() / o.ddp().reductions());
      }
      System.out.println("wrote " + ckpt + ", " + out.resolve("log.csv") + ", " + out.resolve("summary.json")
          + ", " + out.resolve("curves.png"));
      return 0;
    } finally {
      stop.close();
    }
  }

  private void writeLogs(List<Trainer.EpochStats> h, Runs.Outcome o, boolean plot) {
    try {
      StringBuilder csv = new StringBuilder("epoch,train_loss,train_accuracy,test_loss,test_accuracy,samples_per_second,seconds\n");
      for (Trainer.EpochStats s : h) {
        csv.append(String.format(Locale.ROOT, "%d,%.6f,%.6f,%.6f,%.6f,%.1f,%.2f%n", s.epoch(), s.trainLoss(),
            s.trainAccuracy(), s.testLoss(), s.testAccuracy(), s.samplesPerSecond(), s.seconds()));
      }
      Files.writeString(out.resolve("log.csv"), csv);
      var summary = new java.util.LinkedHashMap<String, Object>();
      summary.put("model", options.model);
      summary.put("attention", attn);
      summary.put("parameters", o.parameters());
      summary.put("completed", o.result().completed());
      summary.put("options", options.options(options.common.seed));
      summary.put("history", h);
      Files.writeString(out.resolve("summary.json"), new com.google.gson.GsonBuilder().setPrettyPrinting()
          .serializeSpecialFloatingPointValues().create().toJson(summary));
      if (plot && !h.isEmpty()) {
        plot(h, out.resolve("curves.png"));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static void plot(List<Trainer.EpochStats> h, Path png) throws IOException {
    double[] x = h.stream().mapToDouble(Trainer.EpochStats::epoch).toArray();
    XYChart loss = new XYChartBuilder().width(600).height(400).title("Loss").xAxisTitle("epoch").yAxisTitle("cross-entropy (train: with label smoothing)").build();
    loss.addSeries("train", x, h.stream().mapToDouble(Trainer.EpochStats::trainLoss).toArray());
    loss.addSeries("test", x, h.stream().mapToDouble(Trainer.EpochStats::testLoss).toArray());
    XYChart acc = new XYChartBuilder().width(600).height(400).title("Accuracy").xAxisTitle("epoch").yAxisTitle("accuracy").build();
    acc.addSeries("train", x, h.stream().mapToDouble(Trainer.EpochStats::trainAccuracy).toArray());
    acc.addSeries("test", x, h.stream().mapToDouble(Trainer.EpochStats::testAccuracy).toArray());
    BitmapEncoder.saveBitmap(List.of(loss, acc), 1, 2, png.toString().replaceAll("\\.png$", ""),
        BitmapEncoder.BitmapFormat.PNG);
  }

  /** Progress bar per epoch with loss, accuracy and samples/s; a line per epoch at its end. */
  static class Listener implements Trainer.Listener {
    private final int epochs;
    private final boolean bar;
    private ProgressBar pb;
    private int steps;

    Listener(int epochs, boolean bar) {
      this.epochs = epochs;
      this.bar = bar;
    }

    @Override
    public void onEpochStart(int epoch, int steps) {
      this.steps = steps;
      if (bar) {
        pb = new ProgressBarBuilder().setTaskName(String.format(Locale.ROOT, "epoch %d/%d", epoch + 1, epochs))
            .setInitialMax(steps).setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(1000).setMaxRenderedLength(100)
            .continuousUpdate().build();
      }
    }

    @Override
    public void onStep(int epoch, int stepInEpoch, double loss, double accuracy, double samplesPerSecond) {
      if (pb != null) {
        pb.stepTo(stepInEpoch + 1);
        pb.setExtraMessage(String.format(Locale.ROOT, "loss %.3f acc %.1f%% %.0f/s", loss, 100 * accuracy,
            samplesPerSecond));
        if (stepInEpoch + 1 == steps) { // done: evaluation follows, without the bar
          pb.close();
          pb = null;
        }
      }
    }

    @Override
    public void onEpochEnd(Trainer.EpochStats s) {
      if (pb != null) {
        pb.close();
        pb = null;
      }
      System.out.printf(Locale.ROOT, "epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.0f samples/s  %.0f s%n",
          s.epoch(), epochs, s.trainLoss(), 100 * s.trainAccuracy(), s.testLoss(), 100 * s.testAccuracy(),
          s.samplesPerSecond(), s.seconds());
    }

    @Override
    public void onCheckpoint(Path file, boolean interrupted) {
      if (pb != null) {
        pb.close();
        pb = null;
      }
    }
  }
}
