package dev.sekit.app;

import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.nn.Attention;
import dev.sekit.train.Trainer;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options shared by {@code train} and {@code ablate}. */
final class TrainOptions {
  @Option(names = "--model", defaultValue = "ese-vovnet-tiny",
      description = "Model: ese-vovnet-tiny (a VoVNet for 28x28 images; its attention is --attn). Default: ${DEFAULT-VALUE}.")
  String model;

  @Option(names = "--epochs", description = "Epochs. Default: ${DEFAULT-VALUE}.")
  int epochs = 6;

  @Option(names = "--batch", description = "Batch size. Default: ${DEFAULT-VALUE}.")
  int batch = 128;

  @Option(names = "--lr", description = "Peak learning rate (cosine schedule with warm-up). Default: ${DEFAULT-VALUE}.")
  double lr = 0.1;

  @Option(names = "--optimizer", description = "sgd (Nesterov) or adamw. Default: ${DEFAULT-VALUE}.")
  String optimizer = "sgd";

  @Option(names = "--weight-decay", description = "Weight decay. Default: ${DEFAULT-VALUE}.")
  double weightDecay = 5e-4;

  @Option(names = "--label-smoothing", description = "Label smoothing. Default: ${DEFAULT-VALUE}.")
  double labelSmoothing = 0.1;

  @Option(names = "--seed", description = "Seed of every random choice. Default: ${DEFAULT-VALUE}.")
  long seed = 0;

  @Option(names = "--threads", description = "Intra-op threads. Default: ${DEFAULT-VALUE}.")
  int threads = 2;

  @Option(names = "--device", description = "cpu or cuda. Default: ${DEFAULT-VALUE}.")
  String device = "cpu";

  @Option(names = "--data", description = "Directory of the Fashion-MNIST IDX files. Default: ${DEFAULT-VALUE}.")
  Path data = Path.of("/usr/share/datasets/fashion-mnist");

  @Option(names = "--limit-train", description = "Use only the first N training images (for quick runs).")
  Integer limitTrain;

  @Option(names = "--limit-test", description = "Evaluate on only the first N test images (for quick runs).")
  Integer limitTest;

  @Option(names = "--no-channels-last", description = "Train in NCHW instead of channels-last (NHWC).")
  boolean noChannelsLast;

  @Option(names = "--no-augment", description = "Disable random crop (pad 2) and horizontal flip.")
  boolean noAugment;

  Trainer.Config config(long runSeed) {
    Trainer.Config d = Trainer.Config.defaults();
    return new Trainer.Config(epochs, batch, optimizer, lr, optimizer.equals("sgd") ? 0.9 : 0, weightDecay,
        labelSmoothing, d.warmupEpochs(), d.clipNorm(), noAugment ? 0 : d.cropPad(), !noAugment, runSeed,
        d.evalBatch(), !noChannelsLast);
  }

  Device device() {
    return switch (device) {
      case "cpu" -> Device.CPU;
      case "cuda" -> {
        if (!Sekit.cudaAvailable()) {
          throw new IllegalStateException("--device cuda: no usable CUDA device (this libsekit was built "
              + "against a CPU libtorch, or no GPU is visible); see the README's GPU section");
        }
        yield Device.cuda(0);
      }
      default -> throw new IllegalArgumentException("--device must be cpu or cuda, got '" + device + "'");
    };
  }

  static Attention attention(String s) {
    return switch (s) {
      case "ese" -> Attention.ESE;
      case "se" -> Attention.SE;
      case "none" -> Attention.NONE;
      default -> throw new IllegalArgumentException("--attn must be ese, se or none, got '" + s + "'");
    };
  }

  void checkModel() {
    if (!model.equals("ese-vovnet-tiny")) {
      throw new IllegalArgumentException("--model: only ese-vovnet-tiny is available, got '" + model + "'");
    }
  }
}
