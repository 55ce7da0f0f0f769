package dev.sekit.nn;

import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;

/** nn.MaxPool2d(kernel, stride, padding 0, ceil_mode); no parameters. */
public final class MaxPool2d extends Module {
  private MaxPool2d(Arena arena, int kernel, int stride, boolean ceil) {
    super(NativeModule.maxPool2d(open(arena), kernel, stride, ceil));
  }

  public static MaxPool2d of(Arena arena, int kernel, int stride, boolean ceilMode) {
    OsaBlock.positive("kernel", kernel);
    OsaBlock.positive("stride", stride);
    return new MaxPool2d(arena, kernel, stride, ceilMode);
  }
}
