package dev.sekit.internal;

import dev.sekit.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/** Lets other sekit packages reach Tensor's internals without making them public API. */
public interface TensorAccess {
  /** The live native handle (throws a clear IllegalStateException when closed). */
  MemorySegment handle(Tensor t);

  /** Wraps a native tensor pointer just returned by the shim; {@code arena} will free it. */
  Tensor adopt(MemorySegment ptr, Arena arena, List<MemorySegment.Scope> borrowed);

  /** Wraps a handle already tied to {@code arena} by {@link Native#ownTensors}. */
  Tensor wrapOwned(MemorySegment owned, Arena arena, List<MemorySegment.Scope> borrowed);

  /** Scopes of caller memory this tensor reads (directly or through its autograd graph). */
  List<MemorySegment.Scope> borrowed(Tensor t);

  /** a ∪ b, keeping order. */
  static List<MemorySegment.Scope> union(List<MemorySegment.Scope> a, List<MemorySegment.Scope> b) {
    if (b.isEmpty()) {
      return a;
    }
    java.util.ArrayList<MemorySegment.Scope> r = new java.util.ArrayList<>(a);
    for (MemorySegment.Scope s : b) {
      if (!r.contains(s)) {
        r.add(s);
      }
    }
    return r;
  }

  static TensorAccess get() {
    if (Holder.access == null) {
      try {
        Class.forName("dev.sekit.Tensor", true, TensorAccess.class.getClassLoader());
      } catch (ClassNotFoundException e) {
        throw new IllegalStateException(e);
      }
    }
    return Holder.access;
  }

  static void set(TensorAccess a) {
    Holder.access = a;
  }

  /** Holder of the single instance, set by Tensor's static initialiser. */
  final class Holder {
    static volatile TensorAccess access;

    private Holder() {}
  }
}
