package dev.sekit.nn;

import dev.sekit.internal.Bridge;
import dev.sekit.internal.NativeModule;
import java.lang.foreign.Arena;
import java.util.List;
import java.util.Objects;

/**
 * Modules run in order, named "0", "1", ... (PyTorch's nn.Sequential): the way to build a
 * network of sekit's blocks. The children are shared, not copied: their own handles stay
 * usable (for example to read one block's parameters).
 *
 * <pre>{@code
 * Sequential net = Sequential.of(arena,
 *     ConvNormAct.of(arena, 1, 32, 3, 1),
 *     OsaBlock.builder(32, 32, 64, 3).attention(Attention.ESE).build(arena),
 *     MaxPool2d.of(arena, 3, 2, true),
 *     ClassifierHead.of(arena, 64, 10, 0.0));
 * }</pre>
 */
public final class Sequential extends Module {
  private final List<Module> children;

  private Sequential(Arena arena, List<Module> children) {
    super(NativeModule.sequential(open(arena), children.stream().map(Bridge::of).toList()));
    this.children = children;
  }

  /** A Sequential of {@code modules}, owned by {@code arena}. */
  public static Sequential of(Arena arena, Module... modules) {
    Objects.requireNonNull(modules, "modules");
    if (modules.length == 0) {
      throw new IllegalArgumentException("a Sequential needs at least one module");
    }
    for (int i = 0; i < modules.length; i++) {
      Objects.requireNonNull(modules[i], "modules[" + i + "] is null");
    }
    return new Sequential(arena, List.of(modules));
  }

  /** The children, in order. */
  public List<Module> children() {
    return children;
  }
}
