package dev.sekit.app;

import dev.sekit.train.Trainer;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

/**
 * The options {@code train}, {@code ablate} and {@code finetune} share, defaulting to the
 * command's {@link Trainer.Options} preset ({@code DEFAULTS} or {@code FINETUNE}).
 */
final class CommonOptions {
  private final Trainer.Options preset;

  @Option(names = "--epochs", description = "Epochs. Default: ${DEFAULT-VALUE}.")
  int epochs;

  @Option(names = "--batch", description = "Batch size. Default: ${DEFAULT-VALUE}.")
  int batch;

  @Option(names = "--lr", description = "Peak learning rate (cosine schedule with warm-up; when fine-tuning, the "
      + "head's). Default: ${DEFAULT-VALUE}.")
  double lr;

  @Option(names = "--optimizer", description = "SGD (Nesterov) or ADAMW. Default: ${DEFAULT-VALUE}.",
      converter = OptimizerConverter.class)
  Trainer.OptimizerKind optimizer;

  @Option(names = "--weight-decay", description = "Weight decay. Default: ${DEFAULT-VALUE}.")
  double weightDecay;

  @Option(names = "--label-smoothing", description = "Label smoothing. Default: ${DEFAULT-VALUE}.")
  double labelSmoothing;

  @Option(names = "--seed", description = "Seed of every random choice. Default: ${DEFAULT-VALUE}.")
  long seed;

  @Option(names = "--threads", description = "Intra-op threads. Default: ${DEFAULT-VALUE}.")
  int threads = 2;

  @Option(names = "--limit-train", description = "Use only the first N training samples (for quick runs).")
  Integer limitTrain;

  @Option(names = "--limit-test", description = "Evaluate on only the first N test samples (for quick runs).")
  Integer limitTest;

  CommonOptions(Trainer.Options preset) {
    this.preset = preset;
    epochs = preset.epochs();
    batch = preset.batchSize();
    lr = preset.lr();
    optimizer = preset.optimizer();
    weightDecay = preset.weightDecay();
    labelSmoothing = preset.labelSmoothing();
    seed = preset.seed();
  }

  /** The preset with these values (momentum only for SGD, the preset's) and {@code runSeed}. */
  Trainer.Options.Builder builder(long runSeed) {
    return preset.toBuilder().epochs(epochs).batchSize(batch).optimizer(optimizer).lr(lr)
        .momentum(optimizer == Trainer.OptimizerKind.SGD ? preset.momentum() : 0).weightDecay(weightDecay)
        .labelSmoothing(labelSmoothing).seed(runSeed);
  }

  /** "sgd" / "adamw" in any case. */
  static final class OptimizerConverter implements ITypeConverter<Trainer.OptimizerKind> {
    @Override
    public Trainer.OptimizerKind convert(String value) {
      try {
        return Trainer.OptimizerKind.valueOf(value.toUpperCase(java.util.Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new TypeConversionException("--optimizer must be sgd or adamw, got '" + value + "'");
      }
    }
  }
}
