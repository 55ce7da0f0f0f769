package dev.sekit.nn;

import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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

  private Sequential(Arena arena, List<Module> children, List<MemorySegment> handles) {
    super(create(arena, out -> {
      MemorySegment err = sekit_h.sk_sequential_new(out);
      if (err.address() != 0) {
        return err;
      }
      MemorySegment seq = out.get(java.lang.foreign.ValueLayout.ADDRESS, 0);
      for (MemorySegment child : handles) {
        err = sekit_h.sk_sequential_append(seq, child);
        if (err.address() != 0) {
          sekit_h.sk_module_free(seq);
          out.set(java.lang.foreign.ValueLayout.ADDRESS, 0, MemorySegment.NULL);
          return err;
        }
      }
      return err;
    }), arena);
    this.children = children;
  }

  /** A Sequential of {@code modules}, owned by {@code arena}. */
  public static Sequential of(Arena arena, Module... modules) {
    Objects.requireNonNull(modules, "modules");
    List<Module> list = List.of(modules); // rejects nulls
    if (list.isEmpty()) {
      throw new IllegalArgumentException("a Sequential needs at least one module");
    }
    // Every child handle is checked (alive, right thread) before the native Sequential exists.
    List<MemorySegment> handles = list.stream().map(Module::handle).toList();
    return new Sequential(arena, list, handles);
  }

  /** The children, in order. */
  public List<Module> children() {
    return children;
  }
}
