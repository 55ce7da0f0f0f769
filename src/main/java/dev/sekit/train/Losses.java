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

  /**
   * Top-k counts as timm's {@code accuracy(logits, targets, topk=ks)}: for each k of
   * {@code ks}, how many rows of {@code logits} [N, K] have their target among the k largest
   * logits (all K when k &gt; K), the classes chosen once by {@code torch.topk} with the
   * largest k (so ties fall as they fall there).
   */
  public static long[] countCorrectTopK(Tensor logits, Tensor targets, int... ks) {
    Objects.requireNonNull(logits, "logits");
    Objects.requireNonNull(targets, "targets");
    Objects.requireNonNull(ks, "ks");
    if (ks.length == 0 || ks.length > 16) {
      throw new IllegalArgumentException("ks needs 1 to 16 values, got " + ks.length);
    }
    for (int k : ks) {
      if (k < 1) {
        throw new IllegalArgumentException("every k must be >= 1, got " + java.util.Arrays.toString(ks));
      }
    }
    return NativeTraining.countCorrectTopK(Bridge.of(logits), Bridge.of(targets), ks.clone());
  }

  /** How many rows of {@code logits} have their argmax at the target class. */
  public static long countCorrect(Tensor logits, Tensor targets) {
    Objects.requireNonNull(logits, "logits");
    Objects.requireNonNull(targets, "targets");
    return NativeTraining.countCorrect(Bridge.of(logits), Bridge.of(targets));
  }
}
