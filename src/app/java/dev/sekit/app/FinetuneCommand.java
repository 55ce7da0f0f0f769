package dev.sekit.app;

import dev.sekit.MemoryFormat;
import dev.sekit.Sekit;
import dev.sekit.io.SafeTensors;
import dev.sekit.nn.Module;
import dev.sekit.nn.VoVNet;
import dev.sekit.train.ParamGroups;
import dev.sekit.train.Trainer;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code sekit finetune}: a timm VoVNet checkpoint, a new head for the user's classes,
 * frozen stages and a lower rate for the backbone, top-1/top-5 after every epoch, and a
 * checkpoint that {@code --resume} continues. Defaults are {@link Trainer.Options#FINETUNE}.
 */
@Command(name = "finetune", mixinStandardHelpOptions = true,
    description = {"Fine-tune a timm VoVNet checkpoint (safetensors) on labelled data: a new head for your classes, "
        + "frozen stages, a lower learning rate for the backbone; top-1 and top-5 after every epoch; a checkpoint "
        + "that --resume continues. Writes OUT/checkpoint.safetensors, OUT/model.safetensors (the fine-tuned "
        + "weights, timm's names) and OUT/log.csv.",
        "Data (--data): an image folder as torchvision's ImageFolder, DIR/train/CLASS/*.jpg|png and "
            + "DIR/val/CLASS/* (or DIR/test), read through timm's transforms at --size (training: random-resized "
            + "crop and flip, unless --no-augment; evaluation: resize by --crop-pct and centre crop); or a "
            + "directory with the IDX files of a training and a test split "
            + "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
            + "t10k-labels-idx1-ubyte[.gz], as MNIST and Fashion-MNIST ship); grey images are given the "
            + "model's three channels, normalised with ImageNet's mean and std, and padded with black to "
            + "32x32 at least."})
final class FinetuneCommand implements Callable<Integer> {
  private static final Trainer.Options D = Trainer.Options.FINETUNE;

  @Mixin CommonOptions common = new CommonOptions(D);

  @Option(names = "--model", required = true, description = "timm VoVNet name: ${COMPLETION-CANDIDATES}.",
      completionCandidates = ModelNames.class)
  String model;

  @Option(names = "--weights", required = true, description = "The timm checkpoint of --model (safetensors).")
  Path weights;

  @Option(names = "--data", required = true, description = "The labelled data (see above).")
  Path data;

  @Option(names = "--classes", split = ",", description = "Class names in label order (comma-separated), or "
      + "their number.")
  List<String> classes;

  @Option(names = "--backbone-lr-scale", description = "Learning rate of everything but the head, as a fraction "
      + "of --lr. Default: ${DEFAULT-VALUE}.")
  double backboneLrScale = Trainer.Options.FINETUNE_BACKBONE_LR_SCALE;

  @Option(names = "--freeze", split = ",", description = "Parameters not to train, by name prefix "
      + "(comma-separated), e.g. stem,stages.0. Default: none.")
  List<String> freeze = List.of();

  @Option(names = "--warmup-epochs", description = "Epochs of linear warm-up. Default: ${DEFAULT-VALUE}.")
  double warmupEpochs = D.warmupEpochs();

  @Option(names = "--size", description = "Image folders: the model's input size. Default: ${DEFAULT-VALUE}.")
  int size = 224;

  @Option(names = "--crop-pct", description = "Image folders: the evaluation transform's crop fraction (timm's "
      + "crop_pct). Default: ${DEFAULT-VALUE}.")
  double cropPct = 0.875;

  @Option(names = "--no-augment", description = "Image folders: train on the evaluation transform instead of "
      + "timm's random-resized crop and flip.")
  boolean noAugment;

  @Option(names = "--out", description = "Output directory. Default: ${DEFAULT-VALUE}.")
  Path out = Path.of("runs/finetune");

  @Option(names = "--resume", description = "Continue from OUT/checkpoint.safetensors.")
  boolean resume;

  @Option(names = "--no-progress", description = "Print one line per epoch instead of a progress bar.")
  boolean noProgress;

  /** The timm names {@code --model} takes. */
  static final class ModelNames extends ArrayList<String> {
    private static final long serialVersionUID = 1L;

    ModelNames() {
      super(VoVNet.configNames());
    }
  }

  /** The trainer's options for this command line ({@link Trainer.Options#FINETUNE} otherwise). */
  Trainer.Options options() {
    ParamGroups.Builder groups = ParamGroups.builder().backbone(backboneLrScale, "head");
    if (!freeze.isEmpty()) {
      groups.freeze(freeze.toArray(String[]::new));
    }
    return common.builder(common.seed).warmupEpochs(warmupEpochs).paramGroups(groups.build()).build();
  }

  @Override
  public Integer call() throws Exception {
    VoVNet.config(model); // a clear error before any loading
    if (!Files.isRegularFile(weights)) {
      throw new IllegalArgumentException("--weights: no such file " + weights);
    }
    Trainer.Options opts = options();
    Path ckpt = out.resolve("checkpoint.safetensors");
    if (resume && !Files.isRegularFile(ckpt)) {
      throw new IllegalArgumentException("--resume: no checkpoint at " + ckpt);
    }
    Sekit.setNumThreads(common.threads);
    Files.createDirectories(out);
    StopSignal stop = new StopSignal();
    try (FinetuneData.Split split = FinetuneData.load(data, classes, common.limitTrain, common.limitTest,
        new FinetuneData.Images(size, cropPct, !noAugment, common.seed));
        Arena arena = Arena.ofConfined()) {
      Sekit.manualSeed(common.seed);
      VoVNet net = VoVNet.pretrained(arena, model, weights, split.train().classes());
      System.out.printf(Locale.ROOT, "sekit finetune: %s from %s, %d classes, %,d training and %,d test samples, "
          + "%d epochs, batch %d, lr %s (backbone x%s)%s, %d thread(s), seed %d%n", model, weights,
          split.train().classes(), split.train().size(), split.test().size(), opts.epochs(), opts.batchSize(),
          opts.lr(), backboneLrScale, freeze.isEmpty() ? "" : ", frozen " + String.join(",", freeze), common.threads,
          common.seed);
      Trainer trainer = new Trainer(arena, net, split.train(), split.test(), opts);
      if (resume) {
        trainer.resume(ckpt);
      }
      Trainer.Listener progress = new TrainCommand.Listener(opts.epochs(), !noProgress) {
        @Override
        public void onEpochEnd(Trainer.EpochStats s) {
          super.onEpochEnd(s);
          System.out.printf(Locale.ROOT, "epoch %d/%d  test top-1 %.2f%%  top-5 %.2f%%%n", s.epoch(), opts.epochs(),
              100 * s.testAccuracy(), 100 * s.testTop5());
        }
      };
      Trainer.Result r = trainer.fit(ckpt, progress, stop);
      writeLog(r.history());
      if (!r.completed()) {
        System.out.println("stopped: checkpoint written to " + ckpt + "; continue with --resume");
        return TrainCommand.INTERRUPTED;
      }
      Path weightsOut = out.resolve("model.safetensors");
      saveModel(net, split.classNames(), weightsOut);
      Trainer.EpochStats last = r.history().get(r.history().size() - 1);
      System.out.printf(Locale.ROOT, "test top-1 %.2f%%, top-5 %.2f%% after %d epochs%n", 100 * last.testAccuracy(),
          100 * last.testTop5(), last.epoch());
      System.out.println("wrote " + ckpt + ", " + weightsOut + ", " + out.resolve("log.csv"));
      return 0;
    } finally {
      stop.close();
    }
  }

  /** The fine-tuned weights alone, NCHW float32 with timm's names, and the class names as metadata. */
  private static void saveModel(Module net, List<String> classNames, Path file) throws IOException {
    net.to(MemoryFormat.CONTIGUOUS);
    Map<String, String> meta = new LinkedHashMap<>();
    meta.put("format", "pt");
    meta.put("classes", new com.google.gson.Gson().toJson(classNames));
    SafeTensors.write(file, net.stateDict(), meta);
  }

  private void writeLog(List<Trainer.EpochStats> h) throws IOException {
    StringBuilder csv = new StringBuilder("epoch,train_loss,train_accuracy,test_loss,test_top1,test_top5,"
        + "samples_per_second,seconds\n");
    for (Trainer.EpochStats s : h) {
      csv.append(String.format(Locale.ROOT, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.1f,%.2f%n", s.epoch(), s.trainLoss(),
          s.trainAccuracy(), s.testLoss(), s.testAccuracy(), s.testTop5(), s.samplesPerSecond(), s.seconds()));
    }
    Files.writeString(out.resolve("log.csv"), csv);
  }
}
