package dev.sekit.internal;

import dev.sekit.Tensor;
import dev.sekit.nn.Module;

/**
 * How sekit's public classes, in several packages, reach each other's native objects
 * without public API: {@link Tensor} and {@link Module} each register one accessor here when
 * their class initialises (the pattern of the JDK's SharedSecrets).
 */
public final class Bridge {
  private Bridge() {}

  /** Implemented by {@link Tensor}. */
  public interface Tensors {
    NativeTensor unwrap(Tensor t);

    Tensor wrap(NativeTensor n);
  }

  /** Implemented by {@link Module}. */
  public interface Modules {
    NativeModule unwrap(Module m);
  }

  private static volatile Tensors tensors;
  private static volatile Modules modules;

  public static void register(Tensors t) {
    tensors = t;
  }

  public static void register(Modules m) {
    modules = m;
  }

  /** {@code t}'s native tensor. */
  public static NativeTensor of(Tensor t) {
    return tensors().unwrap(t);
  }

  /** The public tensor for {@code n}. */
  public static Tensor tensor(NativeTensor n) {
    return tensors().wrap(n);
  }

  /** {@code m}'s native module. */
  public static NativeModule of(Module m) {
    return modules().unwrap(m);
  }

  private static Tensors tensors() {
    if (tensors == null) {
      initialize(Tensor.class);
    }
    return tensors;
  }

  private static Modules modules() {
    if (modules == null) {
      initialize(Module.class);
    }
    return modules;
  }

  private static void initialize(Class<?> c) {
    try {
      Class.forName(c.getName(), true, c.getClassLoader());
    } catch (ClassNotFoundException e) {
      throw new IllegalStateException(e);
    }
  }
}
