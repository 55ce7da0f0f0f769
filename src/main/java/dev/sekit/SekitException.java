package dev.sekit;

/**
 * An error reported by the native library (libtorch or the shim): a shape or dtype
 * that libtorch rejects, an allocation that failed, a device error.
 *
 * <p>Mistakes that Java can see before calling native code are reported as
 * {@link IllegalArgumentException}, {@link NullPointerException} or
 * {@link IllegalStateException} instead.
 */
public final class SekitException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The stable error codes of the C ABI. */
  public enum Code {
    INVALID_ARGUMENT(1),
    OUT_OF_MEMORY(2),
    DEVICE(3),
    INTERNAL(4);

    final int value;

    Code(int value) {
      this.value = value;
    }

    static Code of(int value) {
      for (Code c : values()) {
        if (c.value == value) {
          return c;
        }
      }
      return INTERNAL;
    }
  }

  private final Code code;

  public SekitException(Code code, String message) {
    super(message);
    this.code = code;
  }

  /** What kind of error the native side reported. */
  public Code code() {
    return code;
  }
}
