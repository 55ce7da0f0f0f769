package dev.sekit.internal;

import dev.sekit.nn.Module;
import java.lang.foreign.MemorySegment;

/** Lets other sekit packages reach a Module's native handle without public API. */
public interface ModuleAccess {
  MemorySegment handle(Module m);

  static ModuleAccess get() {
    if (Holder.access == null) {
      try {
        Class.forName("dev.sekit.nn.Module", true, ModuleAccess.class.getClassLoader());
      } catch (ClassNotFoundException e) {
        throw new IllegalStateException(e);
      }
    }
    return Holder.access;
  }

  static void set(ModuleAccess a) {
    Holder.access = a;
  }

  /** Holder of the single instance, set by Module's static initialiser. */
  final class Holder {
    static volatile ModuleAccess access;

    private Holder() {}
  }
}
