package dev.sekit.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;

import dev.sekit.SekitException;
import dev.sekit.internal.ffi.sekit_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.Consumer;

/** Helpers around the generated bindings: errors, out parameters, handle ownership. */
public final class Native {
  private Native() {}

  static {
    NativeLoader.ensureLoaded();
  }

  /** Loads the library (idempotent). */
  public static void init() {
    NativeLoader.ensureLoaded();
  }

  /** Throws a {@link SekitException} when {@code err} is not NULL, after freeing it. */
  public static void check(MemorySegment err) {
    if (err.address() == 0) {
      return;
    }
    int code;
    String message;
    try {
      code = sekit_h.sk_error_code(err);
      message = sekit_h.sk_error_message(err).reinterpret(Long.MAX_VALUE).getString(0);
    } finally {
      sekit_h.sk_error_free(err);
    }
    throw new SekitException(codeOf(code), message);
  }

  private static SekitException.Code codeOf(int code) {
    return switch (code) {
      case 1 -> SekitException.Code.INVALID_ARGUMENT;
      case 2 -> SekitException.Code.OUT_OF_MEMORY;
      case 3 -> SekitException.Code.DEVICE;
      default -> SekitException.Code.INTERNAL;
    };
  }

  /** One pointer-sized out parameter in {@code scratch}. */
  public static MemorySegment outPointer(Arena scratch) {
    MemorySegment out = scratch.allocate(ADDRESS);
    out.set(ADDRESS, 0, MemorySegment.NULL);
    return out;
  }

  private static final Consumer<MemorySegment> FREE_TENSOR = sekit_h::sk_tensor_free;
  private static final Consumer<MemorySegment> FREE_MODULE = sekit_h::sk_module_free;
  private static final Consumer<MemorySegment> FREE_OPTIMIZER = sekit_h::sk_optimizer_free;

  /**
   * Ties a freshly returned native tensor to {@code arena}: closing the arena frees it.
   * When the arena is already closed, the tensor is freed at once and the FFM error rethrown.
   */
  public static MemorySegment ownTensor(MemorySegment ptr, Arena arena) {
    return own(ptr, arena, FREE_TENSOR);
  }

  /** Same as {@link #ownTensor} for a module handle. */
  public static MemorySegment ownModule(MemorySegment ptr, Arena arena) {
    return own(ptr, arena, FREE_MODULE);
  }

  /** Same as {@link #ownTensor} for an optimizer handle. */
  public static MemorySegment ownOptimizer(MemorySegment ptr, Arena arena) {
    return own(ptr, arena, FREE_OPTIMIZER);
  }

  /**
   * Ties each of {@code ptrs} (fresh native tensors) to {@code arena}; if one cannot be, the
   * ones not yet tied are freed before the error propagates.
   */
  public static MemorySegment[] ownTensors(MemorySegment[] ptrs, Arena arena) {
    MemorySegment[] owned = new MemorySegment[ptrs.length];
    for (int i = 0; i < ptrs.length; i++) {
      try {
        owned[i] = ownTensor(ptrs[i], arena); // frees ptrs[i] itself on failure
      } catch (RuntimeException e) {
        for (int j = i + 1; j < ptrs.length; j++) {
          FREE_TENSOR.accept(ptrs[j]);
        }
        throw e;
      }
    }
    return owned;
  }

  /** Throws a clear IllegalStateException when {@code arena} is closed. */
  public static void requireOpen(Arena arena, String what) {
    if (!arena.scope().isAlive()) {
      throw new IllegalStateException(what + " is already closed");
    }
  }

  private static MemorySegment own(MemorySegment ptr, Arena arena, Consumer<MemorySegment> free) {
    try {
      return ptr.reinterpret(arena, free);
    } catch (RuntimeException e) {
      free.accept(ptr);
      throw e;
    }
  }

  /** A clear exception for a handle whose arena was closed. */
  public static void checkAlive(MemorySegment handle, String what) {
    if (!handle.scope().isAlive()) {
      throw new IllegalStateException(what + " was closed: the arena that owns it has been closed");
    }
  }
}
