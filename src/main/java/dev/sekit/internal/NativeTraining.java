package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** The training primitives of the library: loss, accuracy count, augmentation. */
public final class NativeTraining {
  private NativeTraining() {}

  /** Mean cross-entropy (one element, in the graph when the logits are), owned by the logits' arena. */
  public static NativeTensor crossEntropy(NativeTensor logits, NativeTensor targets, double labelSmoothing) {
    MemorySegment z = logits.enter();
    try {
      MemorySegment y = targets.enter();
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment out = f.pointer();
        Calls.check(sekit_h.sk_cross_entropy(z, y, labelSmoothing, out));
        return NativeTensor.adopt(out.get(ADDRESS, 0), logits.arena(), NativeTensor.Origin.of(logits, targets));
      } finally {
        targets.exit();
      }
    } finally {
      logits.exit();
    }
  }

  /** Rows whose argmax is the target. */
  public static long countCorrect(NativeTensor logits, NativeTensor targets) {
    MemorySegment z = logits.enter();
    try {
      MemorySegment y = targets.enter();
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment out = f.oneLong();
        Calls.check(sekit_h.sk_count_correct(z, y, out));
        return out.get(JAVA_LONG, 0);
      } finally {
        targets.exit();
      }
    } finally {
      logits.exit();
    }
  }

  /** Top-k counts for each of {@code ks}, as timm's accuracy() (torch.topk's choice among ties). */
  public static long[] countCorrectTopK(NativeTensor logits, NativeTensor targets, int[] ks) {
    MemorySegment z = logits.enter();
    try {
      MemorySegment y = targets.enter();
      try (Scratch.Frame f = Scratch.frame()) {
        MemorySegment k = f.longs(ks);
        MemorySegment out = f.allocate(8L * ks.length);
        Calls.check(sekit_h.sk_count_correct_topk(z, y, k, ks.length, out));
        return out.toArray(JAVA_LONG);
      } finally {
        targets.exit();
      }
    } finally {
      logits.exit();
    }
  }

  /** Pad, random crop and optional flip of each sample; a new tensor owned by {@code arena}. */
  public static NativeTensor randomCropFlip(Arena arena, NativeTensor x, int pad, double fill, boolean flip,
      long seed) {
    Owner.of(arena);
    MemorySegment h = x.enter();
    try (Scratch.Frame f = Scratch.frame()) {
      MemorySegment out = f.pointer();
      Calls.check(sekit_h.sk_random_crop_flip(h, pad, fill, Abi.bool(flip), seed, out));
      return NativeTensor.adopt(out.get(ADDRESS, 0), arena, NativeTensor.Origin.FRESH);
    } finally {
      x.exit();
    }
  }
}
