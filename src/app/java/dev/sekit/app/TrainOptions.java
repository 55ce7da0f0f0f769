package dev.sekit.app;

import dev.sekit.Device;
import dev.sekit.Sekit;
import dev.sekit.nn.Attention;
import dev.sekit.nn.AttentionConfig;
import dev.sekit.nn.Module;
import dev.sekit.nn.ResNet;
import dev.sekit.nn.ResidualBlock;
import dev.sekit.nn.SmallVoVNet;
import dev.sekit.train.Trainer;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Options shared by {@code train} and {@code ablate}. */
final class TrainOptions {
  @Option(names = "--model", defaultValue = "ese-vovnet-tiny",
      description = "Model: ese-vovnet-tiny (a VoVNet for 28x28 images) or resnet-tiny (a ResNet with one basic block "
          + "per stage, 16-128 channels, a 3x3 stem and no pooling); their attention is --attn. Default: ${DEFAULT-VALUE}.")
  String model;

  private static final Trainer.Options D = Trainer.Options.DEFAULTS;

  @Mixin CommonOptions common = new CommonOptions(D);

  @Option(names = "--device", description = "cpu or cuda. Default: ${DEFAULT-VALUE}.")
  String device = "cpu";

  @Option(names = "--data", description = "Directory of the Fashion-MNIST IDX files. Default: ${DEFAULT-VALUE}.")
  Path data = FashionMnist.DEBIAN_DIR;

  @Option(names = "--no-channels-last", description = "Train in NCHW instead of channels-last (NHWC).")
  boolean noChannelsLast;

  @Option(names = "--no-augment", description = "Disable random crop (pad 2) and horizontal flip.")
  boolean noAugment;

  @Option(names = "--sync-bn", description = "Data-parallel runs: BatchNorm normalises with the statistics of the "
      + "whole global batch over all workers (SyncBatchNorm) instead of each worker's share.")
  boolean syncBn;

  /** The trainer's options for this command line (the demo's defaults otherwise). */
  Trainer.Options options(long runSeed) {
    return common.builder(runSeed).randomCrop(noAugment ? 0 : D.cropPad(), FashionMnist.BLACK).flip(!noAugment)
        .channelsLast(!noChannelsLast).syncBatchNorm(syncBn).build();
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

  /** The models of {@code --model}. */
  static final List<String> MODELS = List.of("ese-vovnet-tiny", "resnet-tiny");

  /**
   * resnet-tiny: timm's ResNet with one BasicBlock per stage (a ResNet-10 layout) at a
   * quarter of ResNet-18's width (16, 32, 64, 128 planes), a 3x3 stride-1 stem and no max
   * pool, for 28x28 images (stage maps 28, 14, 7, 4); attention on every block, as the
   * SE-ResNets have it. About the cost of ese-vovnet-tiny per image.
   */
  static ResNet.Config tinyResNet(Attention attention) {
    return new ResNet.Config(ResidualBlock.Kind.BASIC, new int[] {1, 1, 1, 1}, new int[] {16, 32, 64, 128}, 1, 64,
        ResNet.Stem.SMALL, 16, false, AttentionConfig.of(attention), 0.0);
  }

  /** The {@code --model} network with {@code attention}, for single-channel images and the 10 classes. */
  Module buildModel(Arena arena, Attention attention) {
    checkModel();
    return switch (model) {
      case "resnet-tiny" -> ResNet.builder(tinyResNet(attention)).inChannels(1).numClasses(FashionMnist.CLASSES)
          .build(arena);
      default -> SmallVoVNet.build(arena, attention, 1, FashionMnist.CLASSES);
    };
  }

  void checkModel() {
    if (!MODELS.contains(model)) {
      throw new IllegalArgumentException("--model must be one of " + String.join(", ", MODELS) + ", got '" + model
          + "'");
    }
  }
}
