package dev.sekit.train;

import static dev.sekit.internal.Native.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.Tensor;
import dev.sekit.internal.Native;
import dev.sekit.internal.TensorAccess;
import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
    TensorAccess ta = TensorAccess.get();
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_cross_entropy(ta.handle(logits), ta.handle(targets), labelSmoothing, out));
      return ta.adopt(out.get(ADDRESS, 0), logits.arena(),
          TensorAccess.union(ta.borrowed(logits), ta.borrowed(targets)));
    }
  }

  /** How many rows of {@code logits} have their argmax at the target class. */
  public static long countCorrect(Tensor logits, Tensor targets) {
    Objects.requireNonNull(logits, "logits");
    Objects.requireNonNull(targets, "targets");
    TensorAccess ta = TensorAccess.get();
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = scratch.allocate(JAVA_LONG);
      check(sekit_h.sk_count_correct(ta.handle(logits), ta.handle(targets), out));
      return out.get(JAVA_LONG, 0);
    }
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
    TensorAccess ta = TensorAccess.get();
    try (Arena scratch = Arena.ofConfined()) {
      MemorySegment out = Native.outPointer(scratch);
      check(sekit_h.sk_random_crop_flip(ta.handle(x), pad, fill, flip ? 1 : 0, seed, out));
      return ta.adopt(out.get(ADDRESS, 0), arena, java.util.List.of());
    }
  }
}
