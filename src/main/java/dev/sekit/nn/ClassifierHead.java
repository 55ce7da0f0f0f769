package dev.sekit.nn;

import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;

/**
 * timm's ClassifierHead: global average pool → flatten → dropout → Linear named
 * {@code fc} (zero bias). Takes [N, C, H, W] (or pooled [N, C]) and gives [N, classes].
 */
public final class ClassifierHead extends Module {
  private ClassifierHead(Arena arena, int in, int classes, double dropRate) {
    super(NativeModule.classifierHead(open(arena), in, classes, dropRate));
  }

  public static ClassifierHead of(Arena arena, int inChannels, int classes, double dropRate) {
    OsaBlock.positive("inChannels", inChannels);
    OsaBlock.positive("classes", classes);
    if (!(dropRate >= 0 && dropRate < 1)) {
      throw new IllegalArgumentException("dropRate must be in [0, 1), got " + dropRate);
    }
    return new ClassifierHead(arena, inChannels, classes, dropRate);
  }
}
