package dev.sekit.train;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeTraining;
import java.util.Objects;

/** Losses and metrics, computed by libtorch. */
public final class Losses {
  private Losses() {}

  /**
   * Mean cross-entropy of {@code logits} [N, K] against class indices {@code targets} [N]
   * (int64), with label smoothing in [0, 1) as torch.nn.functional.cross_entropy. The loss
   * (one element) is in the autograd graph when the logits are; it belongs to the logits' arena.
   */
  public static Tensor crossEntropy(Tensor logits, Tensor targets, double labelSmoothing) {
    Objects.requireNonNull(logits, "logits");
    Objects.requireNonNull(targets, "targets");
    if (!(labelSmoothing >= 0 && labelSmoothing < 1)) {
      throw new IllegalArgumentException("labelSmoothing must be in [0, 1), got " + labelSmoothing);
    }
    return Bridge.tensor(NativeTraining.crossEntropy(Bridge.of(logits), Bridge.of(targets), labelSmoothing));
  }

  /** How many rows of {@code logits} have their argmax at the target class. */
  public static long countCorrect(Tensor logits, Tensor targets) {
    Objects.requireNonNull(logits, "logits");
    Objects.requireNonNull(targets, "targets");
    return NativeTraining.countCorrect(Bridge.of(logits), Bridge.of(targets));
  }
}
