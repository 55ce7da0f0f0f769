package dev.sekit.data;

import dev.sekit.Tensor;
import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeTraining;
import java.lang.foreign.Arena;
import java.util.Objects;

/** Data augmentation of whole batches, computed natively. */
public final class Augment {
  private Augment() {}

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
