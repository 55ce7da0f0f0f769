package dev.sekit.train;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeTraining;
import java.lang.foreign.Arena;
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

  /**
   * Pads each sample of {@code x} [N, C, H, W] by {@code pad} (with {@code fill}), crops it
   * back at a random offset and, when {@code flip}, mirrors it left-right with probability
   * 1/2. Deterministic in {@code seed}. The result belongs to {@code arena}.
   */
  public static Tensor randomCropFlip(Arena arena, Tensor x, int pad, double fill, boolean flip, long seed) {
    Objects.requireNonNull(arena, "arena");
    Objects.requireNonNull(x, "x");
    if (pad < 0) {
      throw new IllegalArgumentException("pad must be >= 0, got " + pad);
    }
    if (!arena.scope().isAlive()) {
      throw new IllegalStateException("the arena is already closed");
    }
    return Bridge.tensor(NativeTraining.randomCropFlip(arena, Bridge.of(x), pad, fill, flip, seed));
  }
}
